"""A botbuilder `Storage` on the SQL store, with eTag optimistic concurrency."""
from __future__ import annotations

from typing import Any
from uuid import uuid4

import jsonpickle
from botbuilder.core import Storage, StoreItem
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

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


class SqlStorage(Storage):
    """State documents in the `bot_state` table.

    A write whose value carries the eTag it was read with only succeeds if the row still has
    that eTag; otherwise it raises `ETagConflict`, so the caller retries instead of overwriting.
    A value with no eTag (a new document) or the eTag `*` is written unconditionally.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self, keys: list[str]) -> dict[str, Any]:
        keys = [k for k in keys if k]
        if not keys:
            return {}

        def load(session: Session) -> dict[str, Any]:
            rows = session.execute(select(StateRecord).where(StateRecord.key.in_(keys))).scalars()
            return {row.key: _with_etag(jsonpickle.decode(row.data), row.etag) for row in rows}

        return await self._db.run(load)

    async def write(self, changes: dict[str, Any]) -> None:
        if not changes:
            return
        encoded = {}
        for key, value in changes.items():
            expected = _etag_of(value)
            new_etag = uuid4().hex
            copy = value.copy() if isinstance(value, dict) else value
            if isinstance(copy, dict):
                copy.pop("e_tag", None)
            encoded[key] = (expected, new_etag, jsonpickle.encode(copy, make_refs=False))

        def save(session: Session) -> None:
            for key, (expected, new_etag, data) in encoded.items():
                if expected and expected != "*":
                    result = session.execute(
                        update(StateRecord)
                        .where(StateRecord.key == key, StateRecord.etag == expected)
                        .values(etag=new_etag, data=data, updated_at=utcnow())
                    )
                    if result.rowcount != 1:
                        raise ETagConflict(key)
                    continue
                existing = session.get(StateRecord, key)
                if existing is None:
                    session.add(StateRecord(key=key, etag=new_etag, data=data))
                    try:
                        session.flush()
                    except IntegrityError as exc:  # created by a concurrent writer
                        raise ETagConflict(key) from exc
                elif expected == "*":
                    existing.etag, existing.data, existing.updated_at = new_etag, data, utcnow()
                else:
                    # A value without an eTag for a key that exists: it was read before the
                    # document was created, so it is stale.
                    raise ETagConflict(key)

        await self._db.run(save)
        for key, (_, new_etag, _) in encoded.items():
            _with_etag(changes[key], new_etag)

    async def delete(self, keys: list[str]) -> None:
        keys = [k for k in keys if k]
        if keys:
            await self._db.run(lambda s: s.execute(delete(StateRecord).where(StateRecord.key.in_(keys))))
