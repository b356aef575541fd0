"""The outbox's lanes: a slow provider delays no other channel, a slow recipient no other
recipient, and a recipient's messages still go in order."""
from __future__ import annotations

import asyncio
import time

import pytest

from bot.config import Settings
from service.app import create_app
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.providers import FakeGraph, FakeTwilio, twilio_form

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


async def test_a_hanging_graph_api_does_not_delay_whatsapp(patient_client, fake_graph: FakeGraph,
                                                          fake_twilio: FakeTwilio):
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
    assert first["body"].startswith("Hi") and rest and "ship" in rest[0]["body"].lower()
    assert rest[0]["received"] >= first["created"]  # her second reply left after the first was taken
