"""The shopper's time zone: from the phone number on first contact, changed in chat, and read by
quiet hours, through the real app and the fake Twilio."""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.conversation import timezones
from bot.store.models import Customer, MessageRecord, utcnow
from service.app import DB, create_app
from tests.fakes.phone import TwilioShopper
from tests.proactive.test_campaigns import AUTH, _queued, changed, wait_until

NEW_YORK, LOS_ANGELES, LOS_ANGELES_2, TAIPEI = "+12125550140", "+12135550141", "+13105550142", "+886223456143"
TOLL_FREE = "+18005550144"  # reaches every North American zone


async def zone_of(client, number: str) -> str | None:
    return await client.app[DB].run(lambda s: s.exec(select(Customer.timezone).where(Customer.phone == number)).one())


@pytest.mark.parametrize(
    "said, zone",
    [
        ("I'm in Taipei", "Asia/Taipei"),
        ("i am in los angeles now", "America/Los_Angeles"),
        ("my time zone is Los Angeles", "America/Los_Angeles"),
        ("My timezone is Asia/Tokyo.", "Asia/Tokyo"),
        ("set my time zone to London", "Europe/London"),
        ("我在台北", "Asia/Taipei"),
        ("我住在高雄", "Asia/Taipei"),
        ("我的時區是東京", "Asia/Tokyo"),
        ("I'm in a hurry", None),
        ("I'm in size 9", None),
        ("Do you ship to Taipei?", None),
        ("I'm in Atlantis", None),
    ],
)
def test_the_recogniser_knows_only_explicit_places(said, zone):
    assert timezones.recognise(said) == zone


def test_a_number_in_one_zone_gives_it_and_others_none():
    assert timezones.from_phone(NEW_YORK) == "America/New_York"
    assert timezones.from_phone(LOS_ANGELES) == timezones.from_phone(LOS_ANGELES_2) == "America/Los_Angeles"
    assert timezones.from_phone(TAIPEI) == "Asia/Taipei"
    assert timezones.from_phone(TOLL_FREE) is None  # several zones
    assert timezones.from_phone("+447700900100") is None  # a range with no known zone
    assert timezones.from_phone("not a number") is None


async def test_first_contact_sets_the_zone_and_the_shopper_can_change_it(channel_client, fake_twilio):
    for channel, number, zone in [
        ("whatsapp", NEW_YORK, "America/New_York"),
        ("sms", LOS_ANGELES, "America/Los_Angeles"),
        ("whatsapp", LOS_ANGELES_2, "America/Los_Angeles"),
        ("whatsapp", TAIPEI, "Asia/Taipei"),
        ("sms", TOLL_FREE, None),
    ]:
        await TwilioShopper(channel_client, fake_twilio, channel, number).say("hi")
        assert await zone_of(channel_client, number) == zone, number

    ny = TwilioShopper(channel_client, fake_twilio, "whatsapp", NEW_YORK)
    out = await ny.say("I'm in Taipei")
    assert "Asia/Taipei" in out
    assert utcnow().astimezone(ZoneInfo("Asia/Taipei")).strftime("%H:") in out  # the local time there
    assert await zone_of(channel_client, NEW_YORK) == "Asia/Taipei"
    await ny.say("hello again")  # a later message never puts the number's zone back
    assert await zone_of(channel_client, NEW_YORK) == "Asia/Taipei"

    tw = TwilioShopper(channel_client, fake_twilio, "sms", TOLL_FREE)
    out = await tw.say("我在台北")
    assert "Asia/Taipei" in out and "時區" in out
    assert await zone_of(channel_client, TOLL_FREE) == "Asia/Taipei"


async def test_a_journey_in_progress_asks_its_question_again(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", LOS_ANGELES)
    await wa.say("hi")
    question = await wa.say("Do you have the Trail Blazer Runner in size 9?")
    assert "Add one to your cart?" in question
    out = await wa.say("my time zone is New York")
    assert "America/New_York" in out and out.endswith(question)
    assert await zone_of(channel_client, LOS_ANGELES) == "America/New_York"


async def test_quiet_in_taipei_postpones_only_the_taipei_shopper(
    aiohttp_client, channel_settings, recognizer, fake_twilio
):
    taipei_now = utcnow().astimezone(ZoneInfo("Asia/Taipei"))
    # Quiet hours around this moment in Taipei: 13 hours earlier, New York is wide awake.
    quiet = f"{taipei_now - timedelta(hours=1):%H:%M}-{taipei_now + timedelta(hours=2):%H:%M}"
    settings = changed(
        channel_settings,
        admin_token="marketing-secret",
        quiet_hours=quiet,
        default_timezone="UTC",
        cart_scan_interval_seconds=0.2,
    )
    client = await aiohttp_client(create_app(settings, recognizer))
    ny = TwilioShopper(client, fake_twilio, "whatsapp", NEW_YORK)
    tw = TwilioShopper(client, fake_twilio, "whatsapp", TAIPEI)
    for shopper in (ny, tw):
        await shopper.say("subscribe")
        await shopper.say("yes")
    spec = {"name": "Flash", "segment": {"channel": "whatsapp"}, "messages": {"en": "Flash sale!"}}
    campaign = await (await client.post("/api/campaigns", json=spec, headers=AUTH)).json()
    await client.post(f"/api/campaigns/{campaign['id']}/schedule", headers=AUTH)
    await wait_until(lambda: _queued(client, campaign["id"]))
    await wait_until(lambda: _flash(fake_twilio, "whatsapp:" + NEW_YORK))
    record = await wait_until(
        lambda: client.app[DB].run(
            lambda s: s.exec(
                select(MessageRecord).where(
                    MessageRecord.address == TAIPEI, MessageRecord.idempotency_key.like(f"campaign:{campaign['id']}:%")
                )
            ).first()
        )
    )
    assert record.status == "pending"  # postponed, not dropped
    wait = record.next_attempt_at.replace(tzinfo=UTC) - utcnow()
    assert timedelta(hours=1) < wait <= timedelta(hours=2, minutes=1)
    assert not await _flash(fake_twilio, "whatsapp:" + TAIPEI)

    # The New York shopper moves to Taipei: the next campaign waits for their morning too.
    await ny.say("I'm in Taipei")
    second = await (await client.post("/api/campaigns", json={**spec, "name": "Flash 2"}, headers=AUTH)).json()
    await client.post(f"/api/campaigns/{second['id']}/schedule", headers=AUTH)
    later = await wait_until(
        lambda: client.app[DB].run(
            lambda s: s.exec(
                select(MessageRecord).where(
                    MessageRecord.address == NEW_YORK, MessageRecord.idempotency_key.like(f"campaign:{second['id']}:%")
                )
            ).first()
        )
    )
    assert later.status == "pending" and later.next_attempt_at is not None


async def _flash(fake, to: str) -> list:
    return [r for r in fake.delivered() if r["to"] == to and r["body"] == "Flash sale!"]
