"""The SQL database: engine, schema creation, a way to run blocking work off the event loop, and
telling a store that does not answer (a 503 for the caller) from one that refuses a record."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import queue
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import JSON, ColumnElement, Table, any_, bindparam, event, insert
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, create_engine

from bot import clock
from bot.store import models, schema
from bot.store.models import StateRecord

T = TypeVar("T")
log = logging.getLogger(__name__)
# What a turn read ahead in its read transaction, for the code it runs next (see `Database.read_ahead`).
_AHEAD: ContextVar[dict[Hashable, Any] | None] = ContextVar("read_ahead", default=None)
MISSING: Any = object()  # nothing read ahead under a key


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` is the database closing the connection under us (a restart, a failover, an
    administrator's pg_terminate_backend); SQLAlchemy then discards that connection and the pool's
    other ones, and the next checkout connects afresh. A `StoreUnavailable` made from such an
    error counts as one."""
    if isinstance(exc, StoreUnavailable) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# How long a caller waits for the store before it gives up with `StoreUnavailable`: also SQLite's
# busy timeout. Providers give up on a webhook after about 15 s (Twilio), so a few seconds.
DEFAULT_STORE_TIMEOUT = 5.0
# SQLite's result codes (the low byte) that mean "not now", not "not this record".
_SQLITE_OUTAGE_CODES = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_NOLFS,
}


class StoreUnavailable(Exception):
    """The store did not answer within its timeout, or refused the connection: the caller answers
    503, and a provider retries (its message is deduplicated when it comes again)."""


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the store cannot be reached now, as opposed to refusing this one record
    (a constraint, a value it cannot hold) or a bug in the statement."""
    if isinstance(exc, StoreUnavailable | PoolTimeout | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if code is not None:  # SQLite also calls a missing table or a syntax error "operational"
            return code & 0xFF in _SQLITE_OUTAGE_CODES
        return True  # PostgreSQL: a lost or refused connection, a cancelled statement
    return False


def make_engine(url: str, timeout: float = DEFAULT_STORE_TIMEOUT) -> Engine:
    """Create an engine for a SQLAlchemy URL; SQLite files get WAL mode and their folder. A
    statement waits at most `timeout` seconds for a lock (SQLite) or a connection."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: SQL errors would otherwise log message texts and phone numbers.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout}, hide_parameters=True)

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
    return create_engine(
        parsed,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        hide_parameters=True,
        pool_timeout=timeout,
        connect_args={"connect_timeout": max(1, math.ceil(timeout))},
    )


def one_of(column, name: str, postgres: bool) -> ColumnElement[bool]:
    """`column IN (:name)` for a prepared statement, the list given at execution. On PostgreSQL it
    is `column = ANY(:name)`, one array parameter: psycopg caches the parsing of short statements
    only, and an IN list of a campaign batch made every execution parse hundreds of placeholders."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def among(session: Session, column, values) -> ColumnElement[bool]:
    """`column IN values`, the values bound now (an array parameter on PostgreSQL, as above)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


def insert_many(session: Session, table: Table, rows: list[dict]) -> None:
    """Insert rows that all have the same keys. On PostgreSQL through COPY, in the session's
    transaction: psycopg's executemany steps through each row in Python, and a campaign batch
    is hundreds of rows."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    names = list(rows[0])
    as_json = [isinstance(table.c[name].type, JSON) for name in names]
    quote = session.get_bind().dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(name) for name in names)}) FROM STDIN"
    driver = session.connection().connection.driver_connection
    assert driver is not None  # a connection in use has its driver's
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[name]) if encode and row[name] is not None else row[name]
                    for name, encode in zip(names, as_json)
                ]
            )


class PriorityExecutor(Executor):
    """Worker threads that take urgent work first, then the rest in order of arrival."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run `fn(*args, **kwargs)` on a worker thread. A `priority` keyword (default 1, lower
        first) is the executor's own and not passed on."""
        priority = kwargs.pop("priority", 1)
        future: Future[T] = Future()
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

    `timeout` bounds how long a statement waits for a lock or a connection, and how long a caller
    that passes a deadline to `run` waits at most; a store that does not answer in time raises
    `StoreUnavailable`. `check` asks the store on its own thread, so it answers even while the
    worker threads are stuck behind a lock.
    """

    def __init__(self, url: str, timeout: float = DEFAULT_STORE_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self.engine = make_engine(url, timeout)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._executor = PriorityExecutor(1 if self.is_sqlite else 8, "db")
        self._lock_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-locks")
        # Advisory locks are session-level: they live and die with this one connection. When the
        # database drops it, a new one is made and the generation counts up; a lock taken on an
        # earlier generation is gone, and its holder has to take it again.
        self._lock_connection: Connection | None = None
        self._lock_generation = 0
        self._kept: dict[str, int] = {}  # locks taken for the life of the process: key -> generation
        self._probe_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-probe")

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold a PostgreSQL advisory lock on `key`, so that processes sharing the database take
        turns; on SQLite, which serves one process, the caller's in-process lock is enough."""
        if self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        while (generation := await loop.run_in_executor(self._lock_thread, self._take, key)) is None:
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            await loop.run_in_executor(self._lock_thread, self._release, key, generation)

    def try_lock(self, key: str) -> bool:
        """Take the PostgreSQL advisory lock `key` for the life of this process, if free. The lock
        dies with its connection if the database drops it: see `holds`."""
        return self._lock_thread.submit(self._keep, key).result()

    def holds(self, key: str) -> bool:
        """Whether this process still holds the lock `key` of `try_lock`: False once the database
        dropped the connection it was taken on (found out here, and a new connection made)."""
        return self._lock_thread.submit(self._still_kept, key).result()

    def _keep(self, key: str) -> bool:
        generation = self._take(key)
        if generation is not None:
            self._kept[key] = generation
        return generation is not None

    def _still_kept(self, key: str) -> bool:
        if self._kept.get(key) != self._lock_generation or self._lock_connection is None:
            return False  # taken on an earlier connection, or this one was dropped since
        try:
            self._lock_connection.execute(sql_text("SELECT 1"))
        except DBAPIError as exc:
            if not connection_lost(exc):
                raise
            self._drop_lock_connection()
            return False
        return True

    def _take(self, key: str) -> int | None:
        """Try the lock; the generation of the connection holding it, or None if it is taken.
        A connection found dead is replaced, and the lock tried on the new one."""
        for attempt in range(2):
            connection = self._locks()
            try:
                taken = connection.execute(_TRY_LOCK, {"key": key}).scalar()
            except DBAPIError as exc:
                if not connection_lost(exc) or attempt:
                    raise
                self._drop_lock_connection()
                continue
            return self._lock_generation if taken else None
        raise AssertionError("unreachable")

    def _release(self, key: str, generation: int) -> None:
        if generation != self._lock_generation or self._lock_connection is None:
            return  # it died with the connection it was taken on
        try:
            self._lock_connection.execute(_UNLOCK, {"key": key})
        except DBAPIError as exc:
            if not connection_lost(exc):
                raise
            self._drop_lock_connection()  # and the lock with it

    def _locks(self) -> Connection:
        # One connection holds every lock of this process; session-level locks stay with it.
        if self._lock_connection is None:
            self._lock_connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._lock_generation += 1
        return self._lock_connection

    def _drop_lock_connection(self) -> None:
        """The database closed the lock connection: every advisory lock of this process is gone."""
        log.warning(
            "advisory lock connection lost; locks are taken again on a new one",
            extra={"generation": self._lock_generation, "kept": sorted(self._kept)},
        )
        connection, self._lock_connection = self._lock_connection, None
        assert connection is not None  # dropped after it failed
        try:
            connection.invalidate()
            connection.close()
        except DBAPIError:  # closing a dead connection may fail as well; it is gone either way
            pass

    def create_schema(self) -> None:
        """Make the store ready for this version: an empty database gets today's tables, stamped
        with the newest migration; one behind is upgraded on SQLite and refused on PostgreSQL,
        where `python app.py migrate` runs first (see `bot.store.schema.prepare`).

        Raises:
            SchemaError: the store needs `python app.py migrate`, or cannot be migrated.
        """
        schema.prepare(self.engine)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction, here and now (blocking)."""
        with self.session() as session:
            result = fn(session)
            session.commit()
            return result

    @contextmanager
    def read_ahead(self, values: dict[Hashable, Any]) -> Iterator[None]:
        """Offer `values`, read in a transaction that has ended, to the code this task runs
        inside the block (`ahead`), until that code runs a transaction of its own: it may change
        what they were read from, so they are dropped then."""
        token = _AHEAD.set(values)
        try:
            yield
        finally:
            _AHEAD.reset(token)

    @staticmethod
    def ahead(key: Hashable) -> Any:
        """The value read ahead under `key`, given once; `MISSING` if there is none (any more)."""
        values = _AHEAD.get()
        return values.pop(key, MISSING) if values else MISSING

    async def run(self, fn: Callable[[Session], T], urgent: bool = False, deadline: float | None = None) -> T:
        """Run `fn` in one transaction on the database's worker threads.

        Raises:
            StoreUnavailable: the store could not be reached, or did not answer within
                `deadline` seconds (work not yet begun is then dropped).
        """
        if ahead := _AHEAD.get():
            ahead.clear()  # this transaction may change what was read ahead
        future = self._executor.submit(clock.carried(self.transaction), fn, priority=0 if urgent else 1)
        try:
            if deadline is None:
                return await asyncio.wrap_future(future)
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline)
        except TimeoutError:
            raise StoreUnavailable(f"the store did not answer within {deadline:g} s") from None
        except Exception as exc:
            if is_outage(exc) and not isinstance(exc, StoreUnavailable):
                cause = exc.orig if isinstance(exc, DBAPIError) else exc
                raise StoreUnavailable(f"the store is unavailable ({type(cause).__name__})") from exc
            raise

    async def check(self, write: bool = True) -> str | None:
        """None when the store answers within `timeout` (and, with `write`, would take a write);
        otherwise what is wrong, in a few words."""
        return await self._ask(lambda: self._probe(write))

    async def schema_problem(self) -> str | None:
        """None when the store is stamped with the newest schema revision (one small read, on the
        probe thread); otherwise what is wrong, in a few words."""
        return await self._ask(self._schema_probe)

    async def _ask(self, probe: Callable[[], str | None]) -> str | None:
        """Run `probe` on the probe thread within `timeout`: its answer, or what went wrong."""
        future = self._probe_thread.submit(probe)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            return f"did not answer within {self.timeout:g} s"
        except Exception as exc:  # the answer is the report; nothing to raise
            if isinstance(exc, DBAPIError):
                reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            else:
                reason = str(exc) or type(exc).__name__
            return reason[:200]

    def _schema_probe(self) -> str | None:
        with self.engine.connect() as connection:
            try:
                return schema.behind(schema.current_revision(connection))
            finally:
                connection.rollback()

    def _probe(self, write: bool) -> None:
        with self.engine.connect() as connection:
            if not self.is_sqlite:
                writable = connection.exec_driver_sql("SELECT NOT pg_is_in_recovery()").scalar()
                if write and not writable:
                    raise RuntimeError("read-only: the server is a standby")
                if write:
                    # The lock an insert of an inbound message takes, with a shorter wait than the
                    # caller's: a table another session holds (a migration, a long LOCK) is named.
                    # (The connection's transaction began with the query above.)
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(self.timeout * 700)}")
                    table = models.MessageRecord.__table__.name
                    try:
                        connection.exec_driver_sql(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
                    finally:
                        connection.rollback()
                return
            connection.exec_driver_sql("SELECT 1").scalar()
            if write:
                # Take the write lock and give it back at once: it tells a locked file from a free one.
                # A shorter busy wait than the caller's, so the answer names the lock.
                driver = connection.connection.driver_connection
                assert driver is not None  # a connection in use has its driver's
                if driver.in_transaction:
                    driver.rollback()
                driver.execute(f"PRAGMA busy_timeout = {int(self.timeout * 700)}")
                try:
                    driver.execute("BEGIN IMMEDIATE")
                    driver.execute("ROLLBACK")
                finally:
                    driver.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._lock_thread.shutdown(wait=True)
        self._probe_thread.shutdown(wait=False, cancel_futures=True)
        if self._lock_connection is not None:
            # Really close it (not back to a pool): its session-level advisory locks go with it.
            self._lock_connection.invalidate()
            self._lock_connection.close()
        self.engine.dispose()


_TRY_LOCK = sql_text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = sql_text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


def stored_secret(db: Database, name: str) -> bytes:
    """A random secret kept in the store, so signed links and sessions survive restarts."""
    key = f"secret/{name}"

    def get_or_create(session: Session) -> str:
        row = session.get(StateRecord, key)
        if row is None:
            row = StateRecord(key=key, etag="secret", data=secrets.token_hex(32))
            session.add(row)
        return row.data

    try:
        return db.transaction(get_or_create).encode()
    except IntegrityError:  # another process made it first (web workers starting together): theirs
        return db.transaction(get_or_create).encode()
