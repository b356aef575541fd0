"""Outbox dispatchers: the one in this process, and the extra processes of `OUTBOX_WORKERS`.

One dispatcher is one event loop under one interpreter lock, and a large campaign keeps it
busy. On PostgreSQL, dispatchers in several processes share the work safely (claims take row
locks with SKIP LOCKED); the process that runs the scheduler starts `OUTBOX_WORKERS - 1` of them
as `python app.py outbox`, restarts one that dies, and stops them when it stops. SQLite serves
one process, so there the setting stays at one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from bot.channel import ChannelAdapter
from bot.config import Settings
from bot.delivery.outbox import Outbox, Sender
from bot.metrics import Metrics
from bot.store.database import Database

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parents[2] / "app.py"
RESTART_DELAY = 1.0
STOP_GRACE = 15.0


def dispatcher_count(settings: Settings, db: Database) -> int:
    """How many dispatchers run: `OUTBOX_WORKERS`, or one on SQLite."""
    if settings.outbox_workers > 1 and db.is_sqlite:
        log.warning(
            "OUTBOX_WORKERS above 1 needs PostgreSQL (SQLite serves one process); one dispatcher runs",
            extra={"outbox_workers": settings.outbox_workers},
        )
        return 1
    return settings.outbox_workers


def make_outbox(
    settings: Settings,
    db: Database,
    channels: dict[str, ChannelAdapter],
    dispatchers: int = 1,
    metrics: Metrics | None = None,
    senders: dict[str, Sender] | None = None,
) -> Outbox:
    """This process's dispatcher, with a lane per channel and per other sender (e-mail). A
    sender's rate limit is shared out between the dispatchers, so that together they keep to it."""
    rates = {name: rate / dispatchers for name, rate in settings.rate_limits.items()}
    return Outbox(
        db,
        channels,
        settings.outbox_max_attempts,
        settings.outbox_retry_base_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        rate_limits=rates,
        stop_grace=settings.send_timeout_seconds,
        metrics=metrics,
        senders=senders,
    )


class DispatcherProcesses:
    """Keeps `count` processes of `python app.py outbox` running until stopped."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep(slot)) for slot in range(self.count)]

    async def _keep(self, slot: int) -> None:
        while not self._stopping:
            # The child learns its parent's pid from the environment: it exits if this process dies.
            env = {**os.environ, "OUTBOX_PARENT_PID": str(os.getpid()), "OUTBOX_WORKERS": str(self.count + 1)}
            proc = await asyncio.create_subprocess_exec(sys.executable, str(APP), "outbox", env=env)
            self._procs[slot] = proc
            log.info("outbox dispatcher started", extra={"pid": proc.pid})
            code = await proc.wait()
            if self._stopping:
                return
            log.warning("outbox dispatcher exited; starting another", extra={"pid": proc.pid, "code": code})
            await asyncio.sleep(RESTART_DELAY)

    async def stop(self) -> None:
        self._stopping = True
        running = [proc for proc in self._procs.values() if proc.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                log.warning("outbox dispatcher did not stop; killing it", extra={"pid": proc.pid})
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def watch_parent(stop: asyncio.Event, interval: float = 1.0) -> None:
    """Sets `stop` when the process that started this one is gone (a dispatcher must not outlive
    its scheduler, even one killed without a chance to stop it)."""
    parent = os.environ.get("OUTBOX_PARENT_PID")
    if not parent:
        return
    while not stop.is_set():
        if os.getppid() != int(parent):
            log.warning("the process that started this dispatcher is gone; stopping")
            stop.set()
            return
        await asyncio.sleep(interval)
