"""A store that cannot take a write in time: webhooks answer 503 with Retry-After within the store
timeout (providers retry, and lose nothing), `/readyz` says so, and once the lock is gone the
provider's retry is stored and answered once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, func, select
from sqlmodel import Session

from bot.store.models import MessageRecord
from service.app import DB, create_app
from tests.fakes.phone import TwilioShopper, twilio_form
from tests.proactive.test_campaigns import changed

NUMBER = "+14155550188"


@pytest.fixture
def locker(database_url):
    """Another process's hold on the store: every write waits until `release`."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    connection = engine.connect()

    class Locker:
        def hold(self) -> None:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN EXCLUSIVE")
            else:
                connection.exec_driver_sql("BEGIN")
                connection.exec_driver_sql(f"LOCK TABLE {MessageRecord.__table__.name} IN ACCESS EXCLUSIVE MODE")

        def release(self) -> None:
            connection.exec_driver_sql("COMMIT")

    yield Locker()
    connection.close()
    engine.dispose()


async def test_a_locked_store_is_a_fast_503_and_the_retry_is_answered_once(
    aiohttp_client, channel_settings, recognizer, fake_twilio, locker
):
    client = await aiohttp_client(create_app(changed(channel_settings, store_timeout_seconds=1.0), recognizer))
    shopper = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    assert (await client.get("/readyz")).status == 200
    form = twilio_form("whatsapp", NUMBER, "hi", "SM" + "7" * 32)

    locker.hold()
    try:
        started = time.monotonic()
        resp = await shopper.post(form)
        waited = time.monotonic() - started
        assert resp.status == 503 and resp.headers["Retry-After"] == "5", await resp.text()
        assert waited < 10, waited  # Twilio gives up on a webhook after 15 s
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["status"] == "unavailable"
    finally:
        locker.release()

    assert (await client.get("/readyz")).status == 200
    resp = await shopper.post(form)  # Twilio's retry of the same message
    assert resp.status == 200
    first = await shopper.replies(0.3)
    assert first  # answered now
    again = await shopper.post(form)  # and a retry of the retry is not answered twice
    assert again.status == 200 and await shopper.replies(0.3) == ""

    def inbound(session: Session) -> int:
        return session.execute(
            select(func.count()).select_from(MessageRecord).where(MessageRecord.direction == "in")
        ).scalar_one()

    assert await client.app[DB].run(inbound) == 1  # stored once, for all three tries


async def test_a_flood_is_stored_and_answered_with_one_notice(
    aiohttp_client, channel_settings, recognizer, fake_twilio
):
    settings = changed(channel_settings, sender_rate_limit=4, sender_rate_window_seconds=60)
    client = await aiohttp_client(create_app(settings, recognizer))
    shopper = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    other = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550189")
    answers = [await shopper.say(f"do you sell socks {n}?") for n in range(7)]
    assert all(answers[:4]) and all("faster than I can read" not in a for a in answers[:4])
    assert "faster than I can read" in answers[4]
    assert answers[5] == "" and answers[6] == ""  # one notice, then silence
    assert await other.say("hi")  # someone else is not limited

    def stored(session: Session) -> list[tuple[str, str | None]]:
        rows = session.execute(
            select(MessageRecord.text, MessageRecord.error_reason)
            .where(MessageRecord.direction == "in")
            .order_by(MessageRecord.id)
        ).all()
        return [tuple(r) for r in rows]

    rows = await client.app[DB].run(stored)
    mine = [r for r in rows if r[0].startswith("do you sell socks")]
    assert len(mine) == 7  # every message is kept
    assert [reason for _, reason in mine] == [None] * 4 + ["rate_limited"] * 3
