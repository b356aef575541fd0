"""The outbox's lanes: a slow provider delays no other channel, a slow recipient no other
recipient, and a recipient's messages still go in order."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.config import Settings
from bot.delivery.outbox import queue_to_customer
from bot.messages import OutboundMessage
from bot.store.database import Database
from bot.store.models import MessageRecord
from service.app import create_app
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.providers import FakeGraph, FakeTwilio, twilio_form
from tests.proactive.test_campaign_crash import add_sms_shoppers

ALICE, BOB = "+14155550101", "+14155550102"


@pytest.fixture
async def patient_client(aiohttp_client, channel_settings: Settings, recognizer):
    """The app with a send timeout longer than the fakes' slowness: slow sends succeed, late."""
    settings = channel_settings.model_copy(update={"send_timeout_seconds": 10.0})
    return await aiohttp_client(create_app(settings, recognizer))


async def reply_time(fake: FakeTwilio, wa: TwilioShopper, text: str, timeout: float = 15) -> float:
    """Seconds from the shopper's message to the first reply reaching the provider."""
    before = len(wa.mine())
    started = time.monotonic()
    assert (await wa.post(twilio_form("whatsapp", wa.number, text))).status == 200
    while len(wa.mine()) <= before:
        assert time.monotonic() - started < timeout, "no reply"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_hanging_graph_api_does_not_delay_whatsapp(
    patient_client, fake_graph: FakeGraph, fake_twilio: FakeTwilio
):
    fb = MessengerShopper(patient_client, fake_graph, "2400000000000009")
    wa = TwilioShopper(patient_client, fake_twilio, "whatsapp", ALICE)
    assert await wa.say("hi")  # warm: the WhatsApp client session is open
    fake_graph.delay = 3.0  # every Graph call hangs 3 s (typing indicator, then the message)
    assert (await fb.post_events(fb.text_event("hi"))).status == 200
    await fake_graph.wait_for(1)  # the Messenger reply is being sent, and hangs

    elapsed = await reply_time(fake_twilio, wa, "hello")
    assert elapsed < 1.0, f"the WhatsApp reply waited {elapsed:.2f} s behind Messenger"
    assert not fb.mine()  # Messenger was still hanging meanwhile
    assert MessengerShopper.texts(await fb.replies()).startswith("Hi")  # and gets there, once
    assert len(fb.mine()) == 1


async def test_a_slow_recipient_holds_up_no_one_else_and_keeps_their_order(patient_client, fake_twilio: FakeTwilio):
    alice = TwilioShopper(patient_client, fake_twilio, "whatsapp", ALICE)
    bob = TwilioShopper(patient_client, fake_twilio, "whatsapp", BOB)
    assert await bob.say("hi")
    fake_twilio.slow("whatsapp:" + ALICE, 3.0)  # Alice's phone (or carrier) takes 3 s per message
    assert (await alice.post(twilio_form("whatsapp", ALICE, "hi"))).status == 200
    await fake_twilio.wait_for(2)  # Alice's first reply is on its way
    assert (await alice.post(twilio_form("whatsapp", ALICE, "how long does shipping take?"))).status == 200

    elapsed = await reply_time(fake_twilio, bob, "hello")
    assert elapsed < 1.0, f"Bob's reply waited {elapsed:.2f} s behind Alice's"

    await alice.replies()
    first, *rest = [r for r in fake_twilio.delivered() if r["to"] == "whatsapp:" + ALICE]
    # (a reply with choices goes as WhatsApp Content: its text is what the shopper is shown)
    first_text, rest_text = first["body"] or first["shown"], rest and (rest[0]["body"] or rest[0]["shown"])
    assert first_text.startswith("Hi") and rest_text and "ship" in rest_text.lower()
    assert rest[0]["received"] >= first["created"]  # her second reply left after the first was taken


async def test_a_stopped_app_hands_back_what_it_claimed_and_the_next_one_sends_each_once(
    aiohttp_client, channel_settings: Settings, recognizer, fake_twilio: FakeTwilio, database_url: str
):
    """Stopping (SIGTERM) lets the send in flight finish and puts what was claimed and not yet
    sent back to pending at once, rather than leaving it leased; the next app sends it, once."""
    settings = channel_settings.model_copy(update={"send_timeout_seconds": 10.0})
    db = Database(database_url)
    db.create_schema()
    alice, bob = add_sms_shoppers(db, 2, "+1646")
    for key, customer, text in (
        ("a1", "crash0000000", "first"),
        ("a2", "crash0000000", "second"),
        ("a3", "crash0000000", "third"),
        ("b1", "crash0000001", "other shopper"),
    ):
        db.transaction(
            lambda s, key=key, customer=customer, text=text: queue_to_customer(
                s, customer, key, OutboundMessage(text=text, kind="update"), channel="sms"
            )
        )
    for customer, number in (("crash0000000", alice), ("crash0000001", bob)):
        db.transaction(
            lambda s, customer=customer, number=number: s.execute(
                update(MessageRecord).where(MessageRecord.customer_id == customer).values(address=number)
            )
        )

    def statuses() -> dict[str, tuple[str, object]]:
        with db.session() as session:
            rows = session.exec(select(MessageRecord).where(MessageRecord.direction == "out")).all()
            return {row.text or "": (row.status, row.next_attempt_at) for row in rows}

    fake_twilio.slow(alice, 1.5)  # Alice's first message is in flight when the app is told to stop
    client = await aiohttp_client(create_app(settings, recognizer))
    await fake_twilio.wait_for(2)  # Alice's first and Bob's are on their way; her others wait their turn
    assert statuses()["second"][0] == "sending" and statuses()["third"][0] == "sending"  # claimed
    started = time.monotonic()
    await client.close()  # what SIGTERM runs: cleanup
    assert time.monotonic() - started < 8
    after = statuses()
    assert after["first"][0] == "sent" and after["other shopper"][0] == "sent"  # finished in flight
    assert after["second"] == ("pending", None) and after["third"] == ("pending", None)  # handed back
    assert sorted(r["body"] for r in fake_twilio.requests) == ["first", "other shopper"]

    fake_twilio.slow_for.clear()
    await aiohttp_client(create_app(settings, recognizer))  # the next app (or the next deployment)
    await fake_twilio.wait_for(4)
    await asyncio.sleep(0.5)  # nothing more comes
    sent = Counter(r["body"] for r in fake_twilio.delivered())
    assert sent == {"first": 1, "second": 1, "third": 1, "other shopper": 1}
    assert [r["body"] for r in fake_twilio.delivered() if r["to"] == alice] == ["first", "second", "third"]
    assert {status for status, _ in statuses().values()} == {"sent"}
    db.close()
