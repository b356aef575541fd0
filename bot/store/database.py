"""The SQL database: engine, schema creation and a way to run blocking work off the event loop."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
import itertools
import queue
import threading
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

from bot.store import models  # noqa: F401  (registers the tables)

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLAlchemy URL; SQLite files get WAL mode and their folder."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: SQL errors would otherwise log message texts and phone numbers.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


class PriorityExecutor(Executor):
    """Worker threads that take urgent work first, then the rest in order of arrival."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, /, *args, priority: int = 1, **kwargs) -> Future:
        future: Future = Future()
        self._queue.put((priority, next(self._order), future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            _, _, future, fn, args, kwargs = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the waiting coroutine
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _ in self._threads:
            self._queue.put((9, next(self._order), None, None, (), {}))
        if wait:
            for thread in self._threads:
                thread.join()


class Database:
    """Owns the engine and worker threads, so blocking SQL never runs on the event loop.

    SQLite gets one worker thread: it serialises writers anyway, and one thread avoids
    "database is locked" retries. Other databases get a small pool. Storing an inbound message,
    which a webhook waits for before it answers, goes ahead of dialog work.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._executor = PriorityExecutor(1 if self.is_sqlite else 8, "db")

    def create_schema(self) -> None:
        SQLModel.metadata.create_all(self.engine)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction, here and now (blocking)."""
        with self.session() as session:
            result = fn(session)
            session.commit()
            return result

    async def run(self, fn: Callable[[Session], T], urgent: bool = False) -> T:
        """Run `fn` in one transaction on the database's worker threads."""
        future = self._executor.submit(self.transaction, fn, priority=0 if urgent else 1)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
