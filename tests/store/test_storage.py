"""The botbuilder Storage on SQL: round trips, eTag conflicts, and data that survives restarts."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.database import Database
from bot.store.storage import ETagConflict, SqlStorage


@pytest.fixture
def db(database_url: str):
    database = Database(database_url)
    database.create_schema()
    yield database
    database.close()


async def test_round_trip_and_etag_changes(db):
    storage = SqlStorage(db)
    await storage.write({"conversation/a": {"step": 1}})
    first = (await storage.read(["conversation/a"]))["conversation/a"]
    assert first["step"] == 1 and first["e_tag"]
    etag_before = first["e_tag"]
    first["step"] = 2
    await storage.write({"conversation/a": first})
    second = (await storage.read(["conversation/a"]))["conversation/a"]
    assert second["step"] == 2
    assert second["e_tag"] != etag_before and second["e_tag"] == first["e_tag"]


async def test_stale_etag_is_refused_not_overwritten(db):
    storage = SqlStorage(db)
    await storage.write({"k": {"cart": []}})
    reader_one = (await storage.read(["k"]))["k"]
    reader_two = (await storage.read(["k"]))["k"]
    reader_one["cart"] = ["socks"]
    await storage.write({"k": reader_one})
    reader_two["cart"] = ["hat"]
    with pytest.raises(ETagConflict):
        await storage.write({"k": reader_two})
    assert (await storage.read(["k"]))["k"]["cart"] == ["socks"]


async def test_wildcard_etag_overwrites_and_new_document_race_is_a_conflict(db):
    storage = SqlStorage(db)
    await storage.write({"k": {"v": 1}})
    await storage.write({"k": {"v": 2, "e_tag": "*"}})
    assert (await storage.read(["k"]))["k"]["v"] == 2
    with pytest.raises(ETagConflict):  # written as new, but someone created it meanwhile
        await storage.write({"k": {"v": 3}})


async def test_concurrent_writers_exactly_one_wins(db):
    storage = SqlStorage(db)
    await storage.write({"k": {"n": 0}})
    copies = [(await storage.read(["k"]))["k"] for _ in range(5)]
    results = await asyncio.gather(
        *(storage.write({"k": {**c, "n": i}}) for i, c in enumerate(copies)), return_exceptions=True
    )
    assert sum(1 for r in results if r is None) == 1
    assert all(isinstance(r, ETagConflict) for r in results if r is not None)


async def test_delete_and_missing_keys(db):
    storage = SqlStorage(db)
    await storage.write({"a": {"x": 1}, "b": {"x": 2}})
    await storage.delete(["a"])
    assert set(await storage.read(["a", "b", "nope"])) == {"b"}


async def test_data_survives_a_restart(database_url):
    first = Database(database_url)
    first.create_schema()
    await SqlStorage(first).write({"user/1": {"name": "Ana"}})
    first.close()
    second = Database(database_url)
    assert (await SqlStorage(second).read(["user/1"]))["user/1"]["name"] == "Ana"
    second.close()
