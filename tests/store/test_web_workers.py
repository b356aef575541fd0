"""WEB_WORKERS: several serving processes behind one port on PostgreSQL keep one shopper's turns
in order (a burst split over the workers loses and doubles nothing); SQLite falls back to one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from bot.store.database import Database
from bot.store.models import Cart, CartItem, Variant
from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent.parent
ADD = '/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python app.py` with WEB_WORKERS, its log kept."""

    def __init__(self, database_url: str, workers: int, log_path: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "MESSENGER_"))}
        env.update(
            {
                "DATABASE_URL": database_url,
                "PORT": str(self.port),
                "WEB_WORKERS": str(workers),
                "LOG_LEVEL": "INFO",
                "QUIET_HOURS": "",
                "BOT_DISCLOSURE": "off",
                "SENDER_RATE_LIMIT": "0",
            }
        )  # a burst of one shopper, not a flood to refuse
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, workers: int) -> None:
        """Until every worker answers: each binds its socket only once its app has started."""
        deadline = time.monotonic() + 120
        answered: set[str | None] = set()
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                connector = aiohttp.TCPConnector(force_close=True)
                async with aiohttp.ClientSession(connector=connector) as http, http.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        answered.add(resp.headers.get("X-Served-By"))
            except aiohttp.ClientError:
                pass
            if len(answered) >= workers:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not every worker answered ({answered}):\n" + self.log_path.read_text())

    def logged(self, msg: str) -> list[dict]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == msg:
                lines.append(entry)
        return lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()


async def burst(url: str, count: int) -> tuple[str, Counter]:
    """One shopper's `count` adds at once, each on its own connection; which worker served each."""
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/web/session") as resp:
        token = (await resp.json())["token"]
    served: Counter = Counter()

    async def add(n: int) -> None:
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection: the kernel picks the worker
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.post(
                f"{url}/api/web/messages",
                json={"id": f"add{n}", "text": ADD},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            served[resp.headers.get("X-Served-By")] += 1

    await asyncio.gather(*(add(n) for n in range(count)))
    return token, served


def restock(database_url: str) -> None:
    db = Database(database_url)
    db.create_schema()

    def change(session):
        session.get(Variant, "TEE-CLASSIC-M-WHT").stock = 100

    db.transaction(change)
    db.close()


def cart_quantity(database_url: str) -> int:
    db = Database(database_url)
    quantity = db.transaction(
        lambda s: s.exec(
            select(CartItem.quantity).join(Cart, Cart.id == CartItem.cart_id).where(Cart.status == "open")
        ).one()
    )
    db.close()
    return quantity


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="several web workers share a database only on PostgreSQL")
async def test_one_shoppers_burst_split_over_two_workers_loses_and_doubles_nothing(tmp_path, settings):
    server = Server(settings.database_url, 2, tmp_path / "server.log")
    try:
        await server.ready(2)
        restock(settings.database_url)
        _, served = await burst(server.url, 30)
    finally:
        server.stop()
    assert set(served) == {"worker-0", "worker-1"}, served  # both took part
    assert cart_quantity(settings.database_url) == 30  # every add counted once, under the shopper's lock
    assert len(server.logged("scheduler is leading")) == 1  # one worker leads the scheduler


async def test_web_workers_on_sqlite_fall_back_to_one_with_a_warning(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    server = Server(url, 2, tmp_path / "server.log")
    try:
        await server.ready(1)
        _, served = await burst(server.url, 3)
    finally:
        server.stop()
    assert served == Counter({None: 3})  # one ordinary server, no workers
    assert server.logged("WEB_WORKERS above 1 needs PostgreSQL (SQLite serves one process); one web worker runs")
