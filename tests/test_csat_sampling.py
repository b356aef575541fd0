"""One in CSAT_SAMPLE_RATE of the conversations the bot handled alone get the rating question
once they ended (30 minutes without a shopper's message); the answer counts in the CSAT figure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from bot import clock
from bot.csat import sampled
from bot.i18n import text_in
from bot.store.models import AnalyticsEvent, CsatAnswer, Dispatch, HandoffTicket, MessageRecord, as_utc
from service.app import DB, SERVICES, create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import AUTH, TOKEN, changed

QUESTION = text_in("en", "csat.bot")


def rated_client(aiohttp_client, settings, recognizer, rate: float):
    return aiohttp_client(create_app(changed(settings, admin_token=TOKEN, csat_sample_rate=rate), recognizer))


async def age(client, minutes: int = 31) -> None:
    """Move every stored message and turn back in time, as if the shopper had gone quiet."""

    def shift(session: Session) -> None:
        back = timedelta(minutes=minutes)
        for record in session.exec(select(MessageRecord)).all():
            record.created_at -= back
        for event in session.exec(select(AnalyticsEvent)).all():
            if event.received_at is not None:
                event.received_at -= back

    await client.app[DB].run(shift)


async def run_job(client) -> int:
    return await client.app[SERVICES].csat_sampler.run()


async def asked(shopper: WebShopper) -> int:
    return sum(1 for m in await shopper.history() if m["text"] == QUESTION)


async def test_an_ended_bot_conversation_is_asked_once_and_the_answer_counts(aiohttp_client, settings, recognizer):
    client = await rated_client(aiohttp_client, settings, recognizer, 1.0)
    shopper = await WebShopper.start(client)
    await shopper.say("hi")
    await shopper.say("what are your opening hours?")
    assert await run_job(client) == 0  # not ended yet
    assert await asked(shopper) == 0

    await age(client)
    assert await run_job(client) == 1
    assert await asked(shopper) == 1
    question = next(m for m in await shopper.history() if m["text"] == QUESTION)
    assert [c["value"] for c in question["choices"]] == ["1", "2", "3", "4", "5"]
    assert await run_job(client) == 0  # a second run does not ask again
    assert await asked(shopper) == 1

    replies = await shopper.say("4")
    assert shopper.texts() == text_in("en", "handoff.csat_thanks"), replies
    answers = await client.app[DB].run(lambda s: list(s.exec(select(CsatAnswer)).all()))
    assert [(a.score, a.source, a.ticket_id) for a in answers] == [(4, "bot", None)]

    # The answer was no normal turn; the next "5" is an ordinary message (the question lapsed).
    await shopper.say("5")
    assert shopper.texts() != text_in("en", "handoff.csat_thanks")
    assert len(await client.app[DB].run(lambda s: list(s.exec(select(CsatAnswer)).all()))) == 1

    today = datetime.now(UTC).date().isoformat()
    resp = await client.get(f"/api/analytics?from={today}&to={today}", headers=AUTH)
    assert resp.status == 200
    csat = (await resp.json())["csat"]
    assert csat["answers"] == 1 and csat["average"] == 4.0 and csat["distribution"]["4"] == 1
    # The rating made no conversation of its own, and no handoff.
    resolution = (await resp.json())["self_resolution"]
    assert resolution["handed_off"] == 0


async def test_another_message_lets_the_question_lapse(aiohttp_client, settings, recognizer):
    client = await rated_client(aiohttp_client, settings, recognizer, 1.0)
    shopper = await WebShopper.start(client)
    await shopper.say("what are your opening hours?")
    await age(client)
    assert await run_job(client) == 1
    await shopper.say("hello again")
    assert shopper.texts() != text_in("en", "handoff.csat_thanks")
    await shopper.say("3")
    assert await client.app[DB].run(lambda s: list(s.exec(select(CsatAnswer)).all())) == []


async def test_rate_zero_asks_nobody(aiohttp_client, settings, recognizer):
    client = await rated_client(aiohttp_client, settings, recognizer, 0.0)
    shopper = await WebShopper.start(client)
    await shopper.say("what are your opening hours?")
    await age(client)
    assert await run_job(client) == 0
    assert await asked(shopper) == 0
    assert await client.app[DB].run(lambda s: list(s.exec(select(Dispatch)).all())) == []


async def test_a_handed_off_conversation_is_not_asked_by_the_sampler(aiohttp_client, settings, recognizer):
    client = await rated_client(aiohttp_client, settings, recognizer, 1.0)
    shopper = await WebShopper.start(client)
    await shopper.say("I want to talk to a person")
    tickets = await client.app[DB].run(lambda s: list(s.exec(select(HandoffTicket)).all()))
    assert len(tickets) == 1
    await age(client)
    assert await run_job(client) == 0
    assert await asked(shopper) == 0


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_the_sample_is_deterministic_and_near_the_rate(rate):
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    picks = [sampled(f"customer-{n}", start, rate) for n in range(4000)]
    assert picks == [sampled(f"customer-{n}", start, rate) for n in range(4000)]
    assert abs(sum(picks) / len(picks) - rate) < 0.03


# --- when the question may go on a phone channel: never in quiet hours, never outside the window

TAIPEI_NUMBER = "+886223456150"  # a number in one zone: Asia/Taipei (UTC+8, no daylight saving)


async def phone_talk(aiohttp_client, channel_settings, recognizer, fake_twilio, quiet: str):
    """A WhatsApp shopper in Taipei who asked one question just now; returns the client and when."""
    settings = changed(channel_settings, admin_token=TOKEN, csat_sample_rate=1.0, quiet_hours=quiet)
    client = await aiohttp_client(create_app(settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", TAIPEI_NUMBER)
    await wa.say("what are your opening hours?")
    last = await client.app[DB].run(
        lambda s: s.exec(select(MessageRecord.created_at).where(MessageRecord.direction == "in")).one()
    )
    return client, as_utc(last)


async def ask_at(client, moment: datetime) -> tuple[int, list[Dispatch]]:
    """The sampler's run at `moment` (the store's clock set there too); what it queued, and every
    question recorded so far."""
    sampler = client.app[SERVICES].csat_sampler
    with clock.simulated(moment):
        queued = await client.app[DB].run(lambda s: sampler.ask(s, moment))
    return queued, await client.app[DB].run(lambda s: list(s.exec(select(Dispatch)).all()))


def local_hour(moment: datetime) -> int:
    return moment.astimezone(ZoneInfo("Asia/Taipei")).hour


async def test_the_question_waits_out_the_shoppers_quiet_hours(
    aiohttp_client, channel_settings, recognizer, fake_twilio
):
    client, last = await phone_talk(aiohttp_client, channel_settings, recognizer, fake_twilio, "21:00-08:00")
    # Every quarter hour from the conversation's end (30 minutes) to the close of the window.
    moments = [last + timedelta(minutes=31 + 15 * n) for n in range(4 * 23)]
    night = next(m for m in moments if local_hour(m) >= 21 or local_hour(m) < 8)
    day = next(m for m in moments if 8 <= local_hour(m) < 21)
    queued, recorded = await ask_at(client, night)
    assert (queued, recorded) == (0, [])  # nothing queued, nor recorded as skipped: a later run may ask
    queued, recorded = await ask_at(client, day)
    assert queued == 1 and [(d.source, d.status, d.channel) for d in recorded] == [("csat", "queued", "whatsapp")]
    question = await client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(MessageRecord.idempotency_key == recorded[0].key)).one()
    )
    assert question.text == QUESTION and question.next_attempt_at is None  # goes at once, in the day


@pytest.mark.parametrize("after", [timedelta(hours=24, minutes=1), timedelta(hours=30)])
async def test_no_question_once_the_24_hour_window_has_closed(
    aiohttp_client, channel_settings, recognizer, fake_twilio, after
):
    client, last = await phone_talk(aiohttp_client, channel_settings, recognizer, fake_twilio, "")
    queued, recorded = await ask_at(client, last + after)
    assert (queued, recorded) == (0, [])
    # the same conversation inside the window is asked (the sample picks it): only the time differs
    queued, recorded = await ask_at(client, last + timedelta(hours=23, minutes=59))
    assert queued == 1 and [d.status for d in recorded] == ["queued"]
