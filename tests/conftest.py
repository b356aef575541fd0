"""Shared fixtures: one loaded recogniser per run, a fresh store per test, the real app."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from bot.config import Settings
from bot.nlu import Recognizer
from bot.server import build_recognizer, create_app, teach_shop
from bot.store.database import Database
from bot.store.seed import seed_demo
from integrations.faq import StoreFaq
from tests.fakes.web_shopper import WebShopper

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    """The real bundled model, loaded once for the whole run."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('nlu') / 'faq.db'}")
    db.create_schema()
    seed_demo(db)
    recognizer = build_recognizer(Settings(_env_file=None))
    teach_shop(recognizer, db, StoreFaq(db))
    db.close()
    return recognizer


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite in a temporary folder, or the PostgreSQL server of TEST_DATABASE_URL, emptied."""
    if TEST_DATABASE_URL:
        db = Database(TEST_DATABASE_URL)
        SQLModel.metadata.drop_all(db.engine)
        db.close()
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url, public_base_url="http://shop.test")


@pytest.fixture
async def client(aiohttp_client, settings: Settings, recognizer: Recognizer):
    return await aiohttp_client(create_app(settings, recognizer))


@pytest.fixture
async def shopper(client) -> WebShopper:
    return await WebShopper.start(client)
