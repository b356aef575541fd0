"""A botbuilder `Storage` on the SQL store, with eTag optimistic concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import jsonpickle
from botbuilder.core import Storage, StoreItem
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from bot.store.database import Database
from bot.store.models import StateRecord, utcnow


class ETagConflict(Exception):
    """A state write carried an eTag that is no longer current: someone wrote in between."""


def _etag_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("e_tag")
    return getattr(value, "e_tag", None)


def _with_etag(value: Any, etag: str) -> Any:
    if isinstance(value, dict):
        value["e_tag"] = etag
    elif isinstance(value, StoreItem) or hasattr(value, "e_tag"):
        value.e_tag = etag
    return value


def encode_document(value: Any) -> str:
    """A state document as stored (its eTag is kept in its own column)."""
    copy = value.copy() if isinstance(value, dict) else value
    if isinstance(copy, dict):
        copy.pop("e_tag", None)
    return jsonpickle.encode(copy, make_refs=False)


@dataclass
class TurnBuffer:
    """State documents read when a turn starts, and the writes to commit when it ends.

    `stored` keeps each document's text as read, so a state can tell whether it changed by
    encoding itself once, and `encoded` keeps that encoding for the write.
    """

    loaded: dict[str, Any]
    known: set[str]
    stored: dict[str, str] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    encoded: dict[str, str] = field(default_factory=dict)


_STATE = StateRecord.__table__
_READ = select(_STATE.c.key, _STATE.c.etag, _STATE.c.data).where(_STATE.c.key.in_(bindparam("keys", expanding=True)))
_EXISTS = select(_STATE.c.key).where(_STATE.c.key == bindparam("key_"))
_CREATE = insert(_STATE).values(
    key=bindparam("key_"), etag=bindparam("etag_"), data=bindparam("data_"), updated_at=bindparam("now")
)
_REPLACE = (
    update(_STATE)
    .where(_STATE.c.key == bindparam("key_"))
    .values(etag=bindparam("etag_"), data=bindparam("data_"), updated_at=bindparam("now"))
)
_REPLACE_IF = _REPLACE.where(_STATE.c.etag == bindparam("expected"))

_turn_buffer: ContextVar[TurnBuffer | None] = ContextVar("turn_buffer", default=None)


class SqlStorage(Storage):
    """State documents in the `bot_state` table.

    A write whose value carries the eTag it was read with only succeeds if the row still has
    that eTag; otherwise it raises `ETagConflict`, so the caller retries instead of overwriting.
    A value with no eTag (a new document) or the eTag `*` is written unconditionally.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def read_sync(session: Session, keys: list[str], stored: dict[str, str] | None = None) -> dict[str, Any]:
        """The documents under `keys`; `stored`, if given, receives their text as stored."""
        documents = {}
        for key, etag, data in session.connection().execute(_READ, {"keys": keys}):
            documents[key] = _with_etag(jsonpickle.decode(data), etag)
            if stored is not None:
                stored[key] = data
        return documents

    @staticmethod
    def write_sync(session: Session, changes: dict[str, Any], encoded: dict[str, str] | None = None) -> None:
        """Write in the caller's transaction; raises `ETagConflict` on a stale eTag. `encoded`
        may hold documents already encoded (see `encode_document`)."""
        connection = session.connection()
        for key, value in changes.items():
            expected = _etag_of(value)
            new_etag = uuid4().hex
            data = (encoded or {}).get(key) or encode_document(value)
            values = {"key_": key, "etag_": new_etag, "data_": data, "now": utcnow()}
            if expected and expected != "*":
                if connection.execute(_REPLACE_IF, {**values, "expected": expected}).rowcount != 1:
                    raise ETagConflict(key)
            elif connection.execute(_EXISTS, {"key_": key}).first() is None:
                try:
                    connection.execute(_CREATE, values)
                except IntegrityError as exc:  # created by a concurrent writer
                    raise ETagConflict(key) from exc
            elif expected == "*":
                connection.execute(_REPLACE, values)
            else:
                # No eTag for a key that exists: it was read before the document was created.
                raise ETagConflict(key)
            _with_etag(value, new_etag)

    @contextmanager
    def turn(
        self, loaded: dict[str, Any], keys: list[str], stored: dict[str, str] | None = None
    ) -> Iterator[TurnBuffer]:
        """Within this block, reads of `keys` come from `loaded` and writes wait in the buffer,
        to be committed with the turn's other results in one transaction."""
        buffer = TurnBuffer(loaded, set(keys), stored or {})
        token = _turn_buffer.set(buffer)
        try:
            yield buffer
        finally:
            _turn_buffer.reset(token)

    async def read(self, keys: list[str]) -> dict[str, Any]:
        keys = [k for k in keys if k]
        buffer = _turn_buffer.get()
        if buffer is not None and set(keys) <= buffer.known:
            return {
                k: buffer.pending.get(k, buffer.loaded.get(k))
                for k in keys
                if k in buffer.pending or k in buffer.loaded
            }
        if not keys:
            return {}
        return await self._db.run(lambda s: self.read_sync(s, keys))

    async def write(self, changes: dict[str, Any]) -> None:
        if not changes:
            return
        buffer = _turn_buffer.get()
        if buffer is not None and set(changes) <= buffer.known:
            buffer.pending.update(changes)
            for key in changes:
                buffer.encoded.pop(key, None)
            return
        await self._db.run(lambda s: self.write_sync(s, changes))

    def stored_text(self, key: str) -> str | None:
        """The document under `key` as the current turn read it (None outside a turn, or if
        there was none)."""
        buffer = _turn_buffer.get()
        return buffer.stored.get(key) if buffer is not None else None

    async def write_encoded(self, key: str, value: Any, encoded: str) -> None:
        """`write` of one document the caller has encoded already."""
        buffer = _turn_buffer.get()
        if buffer is not None and key in buffer.known:
            buffer.pending[key] = value
            buffer.encoded[key] = encoded
            return
        await self._db.run(lambda s: self.write_sync(s, {key: value}, {key: encoded}))

    async def delete(self, keys: list[str]) -> None:
        keys = [k for k in keys if k]
        if keys:
            await self._db.run(lambda s: s.execute(delete(StateRecord).where(col(StateRecord.key).in_(keys))))
