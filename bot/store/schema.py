"""The store's schema over time: Alembic revisions in `bot/store/migrations/versions`, applied by
`python app.py migrate`. A fresh store is created from the models and stamped with the newest
revision (cheap: tests make many); an existing one is brought forward by its revisions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from bot.store import models  # noqa: F401  (registers the tables)

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema as it was when revisions began; stores made before it are adopted
VERSION_TABLE = "alembic_version"
# Taken for the length of the transaction that creates or migrates a PostgreSQL store, so two
# processes starting at once on a fresh database, or two migrate runs, go one after the other.
_LOCK = sql_text("SELECT pg_advisory_xact_lock(hashtextextended('schema-migrate', 0))")
log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The store's schema is not one this version can use as it is, or can migrate."""


@dataclass
class Outcome:
    """What `upgrade` did: `action` is created, adopted, upgraded or none."""

    action: str
    before: str | None
    after: str
    applied: list[str] = field(default_factory=list)  # "0002 (what it does)", oldest first

    def describe(self) -> str:
        if self.action == "none":
            return f"the store is at the newest revision ({self.after}); nothing to do"
        lines = {
            "created": "created the store's schema from empty",
            "adopted": f"the store predates migrations and has the baseline schema: stamped {BASELINE}",
            "upgraded": f"upgraded the store from revision {self.before}",
        }[self.action]
        steps = "".join(f"\n  applied {step}" for step in self.applied)
        return f"{lines}{steps}\nnow at revision {self.after}"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration, without an ini file: our migrations, and the connection (or URL)
    to run them on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    newest = scripts().get_current_head()
    if newest is None:
        raise SchemaError("no migration revisions found")
    return newest


def include_name(name: str | None, type_: str, _parents: dict) -> bool:
    """Autogenerate looks at our tables only: not the scheduler's job store, nor anything else
    that shares the database."""
    return type_ != "table" or name in SQLModel.metadata.tables


def render_item(type_: str, obj, _context) -> str | bool:
    """Revisions spell SQLModel's column types as the SQLAlchemy types they store as, so they do
    not depend on SQLModel."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def differences(connection: Connection) -> list:
    """What autogenerate finds between the database on `connection` and the models: empty when
    they agree."""
    context = MigrationContext.configure(
        connection,
        opts={
            "include_name": include_name,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return compare_metadata(context, SQLModel.metadata)


def prepare(engine: Engine) -> None:
    """Make the store ready for this version at start-up. An empty database gets the models'
    tables and is stamped with the newest revision. A store behind it is upgraded on SQLite (one
    process, the demo); on PostgreSQL it is refused: `python app.py migrate` runs first, once.

    Raises:
        SchemaError: the store is not at the newest revision and is not upgraded here.
    """
    with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(_LOCK)
        tables = set(inspect(connection).get_table_names())
        if not tables & set(SQLModel.metadata.tables):
            _create(connection, tables)
            return
        current = _current(connection, tables)
        if current == head():
            return
        if postgres:
            raise SchemaError(
                f"the store is at revision {current or 'none (made before migrations)'} and this "
                f"version needs {head()}: run `python app.py migrate` first"
            )
    with _migration(engine) as connection:
        tables = set(inspect(connection).get_table_names())
        outcome = _upgrade(connection, tables, _current(connection, tables))
        log.info(
            "store schema upgraded",
            extra={"before": outcome.before, "after": outcome.after, "applied": outcome.applied},
        )


def upgrade(engine: Engine) -> Outcome:
    """Bring the store to the newest revision, in one transaction where the database allows
    (PostgreSQL): from empty by running every revision, from a store made before migrations by
    adopting it at the baseline, or from an older revision.

    Raises:
        SchemaError: the store is at a revision this version does not know, or predates
            migrations without the baseline schema.
    """
    with _migration(engine) as connection:
        tables = set(inspect(connection).get_table_names())
        return _upgrade(connection, tables, _current(connection, tables))


def autogenerate(engine: Engine, message: str) -> Path:
    """Write a new revision with what the models have and the store (at the newest revision) lacks;
    review it before committing. Returns its file.

    Raises:
        SchemaError: the store is not at the newest revision.
    """
    number = len(list(scripts().walk_revisions())) + 1
    with engine.begin() as connection:
        tables = set(inspect(connection).get_table_names())
        current = _current(connection, tables)
        if current != head():
            raise SchemaError(
                f"the store is at revision {current or 'none'}, not the newest ({head()}): "
                "run `python app.py migrate` on it first, then compare"
            )
        script = command.revision(
            alembic_config(connection), message=message, autogenerate=True, rev_id=f"{number:04d}"
        )
    scripts.cache_clear()
    if not isinstance(script, Script):
        raise SchemaError("autogenerate wrote no single revision")
    return Path(script.path)


@contextmanager
def _migration(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for running revisions. PostgreSQL: under the migration lock.
    SQLite: without enforcing foreign keys while it runs, since a batch operation copies a table
    and drops the original, which other tables' rows refer to; they are checked at the end."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # only outside a transaction
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if not sqlite:
                    connection.execute(_LOCK)
                yield connection
                if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                    raise SchemaError(
                        f"after the migration {len(broken)} rows refer to rows that are missing "
                        f"(first: table {broken[0][0]}, row {broken[0][1]})"
                    )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def current_revision(connection: Connection) -> str | None:
    """The revision the store is stamped with: None when it has none (empty, or made before
    migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def behind(current: str | None) -> str | None:
    """None when `current` is the newest revision; otherwise what is wrong, in a sentence."""
    target = head()
    if current == target:
        return None
    if current is not None and current not in {rev.revision for rev in scripts().walk_revisions()}:
        return f"the store is at revision {current}, which this version does not know (its newest is {target})"
    return f"the store is at revision {current or 'none'} and this version needs {target}: run `python app.py migrate`"


def _current(connection: Connection, tables: set[str]) -> str | None:
    if VERSION_TABLE not in tables:
        return None
    return MigrationContext.configure(connection).get_current_revision()


def _create(connection: Connection, tables: set[str]) -> None:
    """None of our tables: create them from the models, and record the newest revision."""
    if VERSION_TABLE in tables:  # left behind by someone who dropped our tables
        connection.execute(sql_text(f"DELETE FROM {VERSION_TABLE}"))
    SQLModel.metadata.create_all(connection)
    MigrationContext.configure(connection).stamp(scripts(), "head")


def _upgrade(connection: Connection, tables: set[str], current: str | None) -> Outcome:
    target = head()
    if current == target:
        return Outcome("none", current, target)
    if current is not None and current not in {rev.revision for rev in scripts().walk_revisions()}:
        raise SchemaError(
            f"the store is at revision {current}, which this version does not know "
            f"(its newest is {target}): was it migrated by a newer version?"
        )
    action = "upgraded"
    if current is None and tables & set(SQLModel.metadata.tables):
        missing = _missing_from_baseline(connection)
        if missing:
            raise SchemaError(
                "the store predates migrations and lacks part of the baseline schema ("
                + ", ".join(missing[:10])
                + (", ..." if len(missing) > 10 else "")
                + "); start it once with the last version before migrations, which adds missing columns, then migrate"
            )
        MigrationContext.configure(connection).stamp(scripts(), BASELINE)
        current, action = BASELINE, "adopted"
    elif current is None:
        action = "created"
    pending = [rev for rev in scripts().iterate_revisions(target, current or "base")]
    command.upgrade(alembic_config(connection), "head")
    applied = [f"{rev.revision} ({rev.doc})" for rev in reversed(pending)]
    return Outcome(action, None if action == "created" else current, target, applied)


def _missing_from_baseline(connection: Connection) -> list[str]:
    """The baseline's tables, columns and indexes that a store made before migrations lacks."""
    have = _names(connection)
    missing = []
    for table, (columns, indexes) in _baseline_names().items():
        if table not in have:
            missing.append(f"table {table}")
            continue
        missing += [f"column {table}.{name}" for name in sorted(columns - have[table][0])]
        missing += [f"index {name}" for name in sorted(indexes - have[table][1])]
    return missing


@cache
def _baseline_names() -> dict[str, tuple[set[str], set[str]]]:
    """The baseline revision's tables with their column and index names, from running it on an
    empty in-memory SQLite database."""
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), BASELINE)
            return _names(connection)
    finally:
        engine.dispose()


def _names(connection: Connection) -> dict[str, tuple[set[str], set[str]]]:
    inspector = inspect(connection)
    return {
        table: (
            {c["name"] for c in inspector.get_columns(table)},
            {i["name"] for i in inspector.get_indexes(table) if i["name"]},
        )
        for table in inspector.get_table_names()
        if table != VERSION_TABLE
    }


def database_name(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the store (DATABASE_URL is not a database URL)"
