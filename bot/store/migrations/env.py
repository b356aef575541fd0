"""Alembic's environment for the store, run by `bot.store.schema` (`python app.py migrate`): the
models' metadata, on the connection the caller put in the config's attributes, or else on the
config's URL, or else on the `DATABASE_URL` of our settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlmodel import SQLModel

from bot.store import models  # noqa: F401  (registers the tables)
from bot.store.schema import include_name, render_item

config = context.config
options: dict[str, Any] = {  # the same for every way of running
    "target_metadata": SQLModel.metadata,
    "include_name": include_name,  # tables of ours only (not the scheduler's job store)
    "render_item": render_item,
    "render_as_batch": True,  # SQLite alters a table by copying it; PostgreSQL just alters
    "compare_type": True,
    "compare_server_default": True,
}


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from bot.config import Settings

    return Settings().database_url


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    from bot.store.database import make_engine

    engine = make_engine(database_url())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
