"""Schema migrations: running them from empty makes the same store as `create_schema` does, the
newest revision matches the models, and `python app.py migrate` upgrades once and then does
nothing. On SQLite, and on the PostgreSQL server of TEST_DATABASE_URL when it is set."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import ClauseElement

from bot.store import schema
from bot.store.database import Database, make_engine
from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not TEST_DATABASE_URL, reason="PostgreSQL migrations need a server (set TEST_DATABASE_URL)"
        ),
    ),
]


@pytest.fixture
def new_url(request, tmp_path: Path) -> Iterator:
    """Makes URLs of empty databases on the backend of the test's parameter: SQLite files, or
    PostgreSQL schemas of their own (dropped afterwards) on the server of TEST_DATABASE_URL."""
    schemas: list[str] = []

    def make(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / name}.db"
        namespace = f"migrate_test_{name}_{uuid4().hex[:8]}"
        schemas.append(namespace)
        _admin(f'CREATE SCHEMA "{namespace}"')
        url = make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={namespace}"})
        return url.render_as_string(hide_password=False)

    yield make
    for namespace in schemas:
        _admin(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


def _admin(statement: str) -> None:
    engine = make_engine(TEST_DATABASE_URL)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def reflected(engine: Engine) -> dict:
    """Everything the database says about its tables, in a form that compares with `==`."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        dialect = connection.dialect
        found = {}
        for table in sorted(inspector.get_table_names()):
            found[table] = {
                "columns": [
                    (
                        c["name"],
                        c["type"].compile(dialect=dialect),
                        c["nullable"],
                        c["default"],
                        c.get("autoincrement"),
                        c.get("computed"),
                        c.get("identity"),
                    )
                    for c in inspector.get_columns(table)
                ],
                "primary key": _plain(inspector.get_pk_constraint(table)),
                "indexes": sorted(_plain(inspector.get_indexes(table)), key=repr),
                "unique": sorted(_plain(inspector.get_unique_constraints(table)), key=repr),
                "foreign keys": sorted(_plain(inspector.get_foreign_keys(table)), key=repr),
                "checks": sorted(_plain(inspector.get_check_constraints(table)), key=repr),
            }
        return found


def _plain(value):
    """Reflected values with SQL expressions (a partial index's WHERE) as their text."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, ClauseElement):
        return " ".join(str(value).split())
    return value


@pytest.mark.parametrize("new_url", BACKENDS, indirect=True)
def test_migrations_from_empty_make_the_schema_create_schema_makes(new_url):
    migrated = make_engine(new_url("migrated"))
    outcome = schema.upgrade(migrated)
    assert outcome.action == "created" and outcome.after == schema.head()
    fresh = Database(new_url("fresh"))
    fresh.create_schema()
    try:
        by_migrations, by_create_schema = reflected(migrated), reflected(fresh.engine)
    finally:
        migrated.dispose()
        fresh.close()

    assert by_migrations == by_create_schema
    # Not two empty answers: the tables, the version and the outbox's partial index are there.
    assert {"customer", "message", "shop_order", schema.VERSION_TABLE} <= set(by_migrations)
    due = next(i for i in by_migrations["message"]["indexes"] if i["name"] == "ix_message_due")
    assert due["column_names"] == ["channel", "id"]
    where = str(due["dialect_options"])
    assert "status" in where and "'pending'" in where and "'sending'" in where


@pytest.mark.parametrize("new_url", BACKENDS, indirect=True)
def test_the_newest_revision_matches_the_models(new_url):
    engine = make_engine(new_url("head"))
    try:
        schema.upgrade(engine)
        with engine.connect() as connection:
            assert schema.differences(connection) == []
        with engine.begin() as connection:  # and it would see a difference
            connection.execute(text("DROP INDEX ix_message_status"))
        with engine.connect() as connection:
            assert [d[0] for d in schema.differences(connection)] == ["add_index"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("new_url", BACKENDS, indirect=True)
def test_a_store_made_before_migrations_is_adopted(new_url):
    from alembic import command

    engine = make_engine(new_url("legacy"))
    try:
        # The baseline's tables with no version table: as the start-up of an earlier version left them.
        with engine.begin() as connection:
            command.upgrade(schema.alembic_config(connection), schema.BASELINE)
            connection.execute(text(f"DROP TABLE {schema.VERSION_TABLE}"))
        outcome = schema.upgrade(engine)
        assert (outcome.action, outcome.after) == ("adopted", schema.head())
        assert [step.split()[0] for step in outcome.applied] == [  # the revisions after the baseline
            rev.revision for rev in reversed(list(schema.scripts().iterate_revisions("head", schema.BASELINE)))
        ]
        assert schema.upgrade(engine).action == "none"
    finally:
        engine.dispose()


def test_create_schema_upgrades_an_old_sqlite_store_and_refuses_an_unknown_revision(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customer (id VARCHAR PRIMARY KEY)"))  # lacks most columns
    db = Database(url)
    with pytest.raises(schema.SchemaError, match="lacks part of the baseline"):
        db.create_schema()
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE customer"))
    db.create_schema()
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'ffffffff'"))
    with pytest.raises(schema.SchemaError, match="does not know"):
        db.create_schema()
    db.close()
    engine.dispose()


def migrate(database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "app.py", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_command_upgrades_once_then_does_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'store' / 'shop.db'}"
    first = migrate(url)
    assert first.returncode == 0, first.stderr
    assert "created the store's schema from empty" in first.stdout
    assert f"now at revision {schema.head()}" in first.stdout

    second = migrate(url)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout and "applied" not in second.stdout

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'ffffffff'"))
    engine.dispose()
    refused = migrate(url)
    assert refused.returncode == 2
    assert "migrate failed" in refused.stderr and "ffffffff" in refused.stderr
    assert "Traceback" not in refused.stderr
