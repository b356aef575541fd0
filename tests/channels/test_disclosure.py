"""BOT_DISCLOSURE: a shopper is told once per channel, at first contact, that a bot answers."""

from __future__ import annotations

import pytest

from service.app import create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed

SAID = "automated assistant; ask for a person at any time"


@pytest.fixture
def settings(settings):
    return changed(settings, bot_disclosure="on")  # the other tests' settings leave it off


@pytest.fixture
def channel_settings(channel_settings):
    return changed(channel_settings, bot_disclosure="on")


async def test_web_shows_it_once_before_the_first_answer(shopper):
    first = await shopper.say("hi")
    said, answer = first[0]["text"].split("\n\n", 1)
    assert SAID in said and "Northwind Outfitters" in said
    assert answer.startswith("Hi!") and first[0]["choices"]  # the answer, its buttons, after it
    second = await shopper.say("hi")
    assert SAID not in "\n".join(m["text"] or "" for m in second)


async def test_whatsapp_once_per_channel_and_in_the_shoppers_language(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+14155550301")
    first = await wa.say("你好")
    assert first.startswith("您正在與 Northwind Outfitters 的自動化購物小幫手對話") and "您好" in first
    assert "自動化" not in await wa.say("你好")
    sms = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550301")  # the same shopper, a new channel
    assert sms.mine() == [] and "自動化購物小幫手" in await sms.say("你好")


async def test_off_or_a_text_of_the_retailers_own(aiohttp_client, settings, recognizer):
    off = await aiohttp_client(create_app(changed(settings, bot_disclosure="off"), recognizer))
    shopper = await WebShopper.start(off)
    assert SAID not in "\n".join(m["text"] or "" for m in await shopper.say("hi"))
    own = await aiohttp_client(create_app(changed(settings, bot_disclosure="A bot answers here."), recognizer))
    shopper = await WebShopper.start(own)
    assert (await shopper.say("hi"))[0]["text"].startswith("A bot answers here.\n\nHi!")
