"""The probes an orchestrator asks, through the real app: /livez (the process answers),
/readyz (the store takes a write, the model is loaded, the schema is the newest revision)."""

from __future__ import annotations

from sqlalchemy import text

from bot.store import schema
from bot.store.database import make_engine


async def test_livez_answers_without_the_store(client):
    resp = await client.get("/livez")
    assert resp.status == 200
    assert await resp.json() == {"status": "alive"}


async def test_readyz_names_its_parts(client):
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"status": "ready", "store": "ok", "model": "loaded", "schema": "ok"}


def stamp(database_url: str, revision: str | None) -> None:
    """Record `revision` as the store's (None: no revision, as a store made before migrations)."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DELETE FROM {schema.VERSION_TABLE}"))
            if revision is not None:
                connection.execute(
                    text(f"INSERT INTO {schema.VERSION_TABLE} (version_num) VALUES (:rev)"), {"rev": revision}
                )
    finally:
        engine.dispose()


async def test_readyz_is_503_while_the_store_is_not_at_the_newest_revision(client, database_url):
    stamp(database_url, None)  # behind every revision: the store needs `migrate`
    resp = await client.get("/readyz")
    assert resp.status == 503 and resp.headers["Retry-After"]
    body = await resp.json()
    assert body["status"] == "unavailable" and body["store"] == "ok" and body["model"] == "loaded"
    assert f"needs {schema.head()}" in body["schema"] and "python app.py migrate" in body["schema"]

    stamp(database_url, "ffffffff")  # one a newer version wrote
    body = await (await client.get("/readyz")).json()
    assert "ffffffff" in body["schema"] and "does not know" in body["schema"]

    stamp(database_url, schema.head())
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/healthz")).status == 200
