"""Shared fixtures: one loaded recogniser per run, a fresh store per test, the real app."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import text
from sqlmodel import SQLModel

import channels.registry  # noqa: F401  (the channels make themselves known to the core)
from bot.config import Settings
from bot.nlu import Recognizer
from bot.store.database import Database
from bot.store.seed import seed_demo
from integrations.faq import StoreFaq
from service.app import build_recognizer, create_app, teach_shop
from tests.fakes.providers import FakeGraph, FakeTwilio, FakeWhatsAppCloud
from tests.fakes.stripe import FakeStripe, with_stripe
from tests.fakes.web_shopper import WebShopper

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def nlu_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fit cache of this run: the recogniser below fills it, command lines started by tests
    (NLU_CACHE_DIR) load from it."""
    return tmp_path_factory.mktemp("nlu-cache")


@pytest.fixture(scope="session")
def demo_recognizer(tmp_path_factory: pytest.TempPathFactory, nlu_cache_dir: Path) -> Recognizer:
    """The real bundled model, loaded once for the whole run, taught the demo shop."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('nlu') / 'faq.db'}")
    db.create_schema()
    seed_demo(db)
    recognizer = build_recognizer(Settings(_env_file=None, nlu_cache_dir=str(nlu_cache_dir)))
    teach_shop(recognizer, db, StoreFaq(db))
    db.close()
    return recognizer


@pytest.fixture
def recognizer(demo_recognizer: Recognizer) -> Iterator[Recognizer]:
    """The session's recogniser; an app a test starts teaches it that store's catalog and FAQ
    (and a sync, a platform's), so the demo shop's are put back afterwards for the next test."""
    catalog, faq = demo_recognizer._catalog, demo_recognizer._base_faq
    yield demo_recognizer
    demo_recognizer._intents = demo_recognizer._base_intents
    demo_recognizer._faq = demo_recognizer._base_faq = faq
    demo_recognizer._learnt_words()  # the FAQ's words, then the catalog as it was
    demo_recognizer.set_catalog(*catalog)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite in a temporary folder, or the PostgreSQL server of TEST_DATABASE_URL, emptied."""
    if TEST_DATABASE_URL:
        db = Database(TEST_DATABASE_URL)
        SQLModel.metadata.drop_all(db.engine)
        with db.engine.begin() as connection:  # the scheduler's job store too
            connection.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
        db.close()
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    # BOT_DISCLOSURE off: the tests read a new shopper's first answer as it is; tests/channels/
    # test_disclosure.py turns it on.
    return Settings(_env_file=None, database_url=database_url, public_base_url="http://shop.test", bot_disclosure="off")


@pytest.fixture
async def client(aiohttp_client, settings: Settings, recognizer: Recognizer):
    return await aiohttp_client(create_app(settings, recognizer))


@pytest.fixture
async def shopper(client) -> WebShopper:
    return await WebShopper.start(client)


@pytest.fixture
async def fake_twilio():
    fake = await FakeTwilio().start()
    yield fake
    await fake.close()


@pytest.fixture
async def fake_graph():
    fake = await FakeGraph().start()
    yield fake
    await fake.close()


@pytest.fixture
def channel_settings(database_url: str, fake_twilio: FakeTwilio, fake_graph: FakeGraph) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        public_base_url="https://shop.example.com",
        twilio_account_sid=FakeTwilio.account_sid,
        twilio_auth_token=FakeTwilio.auth_token,
        twilio_whatsapp_from="whatsapp:+15550001111",
        twilio_sms_from="+15550001111",
        twilio_api_base=fake_twilio.url,
        twilio_content_api_base=fake_twilio.url,
        messenger_page_access_token=FakeGraph.page_token,
        messenger_app_secret=FakeGraph.app_secret,
        messenger_verify_token=FakeGraph.verify_token,
        graph_api_base=fake_graph.url,
        send_timeout_seconds=1.0,
        outbox_retry_base_seconds=0.05,
        outbox_max_attempts=4,
        bot_disclosure="off",
    )


@pytest.fixture
async def channel_client(aiohttp_client, channel_settings: Settings, recognizer: Recognizer):
    return await aiohttp_client(create_app(channel_settings, recognizer))


@pytest.fixture
async def fake_cloud():
    fake = await FakeWhatsAppCloud().start()
    yield fake
    await fake.close()


@pytest.fixture
def cloud_settings(database_url: str, fake_cloud: FakeWhatsAppCloud, fake_twilio: FakeTwilio) -> Settings:
    """WhatsApp through the Cloud API (GRAPH_API_BASE at its fake), and SMS through Twilio."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        public_base_url="https://shop.example.com",
        twilio_account_sid=FakeTwilio.account_sid,
        twilio_auth_token=FakeTwilio.auth_token,
        twilio_sms_from="+15550001111",
        twilio_api_base=fake_twilio.url,
        twilio_content_api_base=fake_twilio.url,
        whatsapp_cloud_token=FakeWhatsAppCloud.token,
        whatsapp_cloud_app_secret=FakeWhatsAppCloud.app_secret,
        whatsapp_cloud_verify_token=FakeWhatsAppCloud.verify_token,
        whatsapp_cloud_phone_number_id=FakeWhatsAppCloud.phone_number_id,
        whatsapp_cloud_display_number="+1 555 000 2222",
        graph_api_base=fake_cloud.url,
        send_timeout_seconds=1.0,
        outbox_retry_base_seconds=0.05,
        outbox_max_attempts=4,
        bot_disclosure="off",
    )


@pytest.fixture
async def cloud_client(aiohttp_client, cloud_settings: Settings, recognizer: Recognizer):
    return await aiohttp_client(create_app(cloud_settings, recognizer))


@pytest.fixture
async def browser():
    """Debian's headless Chromium, driven by Playwright (which cannot download browsers here)."""
    assert CHROMIUM, "Chromium is required: apt-get install chromium (see .ci/run)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield PolicyBypass(browser)
        await browser.close()


class PolicyBypass:
    """The browser, whose pages skip our Content-Security-Policy unless a test asks otherwise:
    Playwright's wait_for_function evaluates a string in the page, which the policy (no
    'unsafe-eval') refuses. The policy itself is tested with it on (tests/channels/test_page_security.py)."""

    def __init__(self, browser) -> None:
        self._browser = browser

    async def new_page(self, **options):
        options.setdefault("bypass_csp", True)
        return await self._browser.new_page(**options)

    async def new_context(self, **options):
        options.setdefault("bypass_csp", True)
        return await self._browser.new_context(**options)

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture
async def fake_stripe():
    fake = await FakeStripe().start()
    yield fake
    await fake.close()


@pytest.fixture
async def stripe_client(aiohttp_client, settings: Settings, recognizer: Recognizer, fake_stripe: FakeStripe):
    """The app with PAYMENTS=stripe against the fake Stripe."""
    return await aiohttp_client(create_app(with_stripe(settings, fake_stripe), recognizer))
