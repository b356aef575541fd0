"""Linking cannot be turned against a shopper: a link or code that reaches a chat only asks that
chat to confirm, and guessing codes is limited without locking out anyone who typed none.
End to end through the real webhooks, the web chat API and the fake providers."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import func, select

from bot.config import Settings
from bot.conversation import linking
from bot.store.models import LinkToken, MergeRecord, as_utc
from service.app import DB, create_app
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.web_shopper import WebShopper

ADD = '/add_to_cart {{"product":"{p}","size":"{s}","colour":"{c}"}}'
VICTIM_ADDRESS = "221 Baker Street, London NW1 6XE"


async def merges(client) -> int:
    return await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(MergeRecord)).one())


async def asked_at(client, **where) -> str:
    """When the token was made, as the question shows it (the shop's zone, America/New_York)."""
    column, value = next(iter(where.items()))
    token = await client.app[DB].run(
        lambda s: s.exec(select(LinkToken).where(getattr(LinkToken, column) == value)).one()
    )
    return as_utc(token.created_at).astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")


async def shopper_with_an_order(say) -> None:
    """A shopper with a placed order, a saved address and something new in the cart;
    `say(text)` sends a message and returns the replies' text."""
    await say(ADD.format(p="TEE-CLASSIC", s="M", c="white"))
    await say("checkout")
    await say(VICTIM_ADDRESS)
    await say("skip")  # no receipt contact
    assert re.search(r"Order #\d+ is placed", await say("yes"))
    await say(ADD.format(p="HAT-BEANIE", s="OS", c="grey"))


async def web_say(web: WebShopper, text: str) -> str:
    await web.say(text)
    return web.texts()


async def sees_nothing_of_the_victim(web: WebShopper) -> None:
    """What the attacker's web session gets from the real API: none of the victim's data."""
    await web.say("what do you know about me?")
    known = web.texts()
    assert "Shipping address: none saved" in known and "orders: 0" in known and "+44" not in known
    await web.say("view my cart")
    assert "Your cart is empty" in web.texts()
    history = " ".join(m["text"] or "" for m in await web.history())
    assert "Baker" not in history and "Beanie" not in history and "Order #" not in history


async def test_a_web_link_pushed_to_a_whatsapp_shopper_merges_nothing_without_yes(channel_client, fake_twilio):
    victim = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900131")
    await shopper_with_an_order(victim.say)
    attacker = await WebShopper.start(channel_client)
    await attacker.say("hi")
    offer = await (
        await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=attacker.headers)
    ).json()
    prefilled = parse_qs(urlparse(offer["url"]).query)["text"][0]

    question = await victim.say(prefilled)  # all the victim did: send the prefilled message
    at = await asked_at(channel_client, code=offer["code"])
    assert f"Link this chat with the web chat that asked for a link at {at}?" in question
    assert "Only say yes if you asked for this yourself" in question and "[Yes]" in question
    assert "Beanie" not in question and "Baker" not in question  # nothing of either side's data
    await sees_nothing_of_the_victim(attacker)  # silence: nothing merged

    # Anything else is an ordinary message; the question stays open and still nothing merges.
    assert "Beanie" in await victim.say("view my cart")
    await sees_nothing_of_the_victim(attacker)
    assert "Link this chat with" in await victim.say(prefilled)  # asked again, in the same chat
    assert "nothing was linked" in await victim.say("no")
    await sees_nothing_of_the_victim(attacker)
    assert await merges(channel_client) == 0
    # No spent the token: neither a later yes nor the link again does anything.
    assert "You're linked" not in await victim.say("yes")
    assert "already used" in await victim.say(prefilled)
    await sees_nothing_of_the_victim(attacker)
    assert "Beanie" in await victim.say("view my cart")  # the victim keeps their own cart


async def test_a_whatsapp_link_opened_in_a_victims_browser_merges_nothing_without_yes(channel_client, fake_twilio):
    victim = await WebShopper.start(channel_client)
    await shopper_with_an_order(lambda text: web_say(victim, text))
    attacker = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900132")
    out = await attacker.say("can I continue on the web?")
    token = re.search(r"\?link=([A-Za-z0-9_-]+)", out).group(1)

    # What the widget sends for /?link=TOKEN, in the victim's own browser session.
    await victim.say(f"Link code: {token}")
    at = await asked_at(channel_client, token=token)
    question = victim.texts()
    assert f"Link this chat with the WhatsApp chat +44•••32 that asked for a link at {at}?" in question
    assert "447700900132" not in question and victim.buttons() == ["Yes", "No"]
    attacker_sees = await attacker.say("what do you know about me?")
    assert "Shipping address: none saved" in attacker_sees and "orders: 0" in attacker_sees
    await victim.tap("No")
    assert "nothing was linked" in victim.texts()
    out = await attacker.say("what do you know about me?")
    assert "Shipping address: none saved" in out and "orders: 0" in out and "web chat" not in out
    assert "Your cart is empty" in await attacker.say("view my cart")
    assert await merges(channel_client) == 0
    await victim.say("view my cart")
    assert "Beanie" in victim.texts()


async def test_yes_links_a_whatsapp_chat_and_the_web(channel_client, fake_twilio):
    """The legitimate way round: asked for on WhatsApp, opened on the web, confirmed there."""
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900133")
    await wa.say(ADD.format(p="HAT-BEANIE", s="OS", c="grey"))
    token = re.search(r"\?link=([A-Za-z0-9_-]+)", await wa.say("continue on the web")).group(1)
    web = await WebShopper.start(channel_client)
    await web.say(f"Link code: {token}")
    await web.tap("Yes")
    assert "You're linked" in web.texts() and "WhatsApp" in web.texts() and "1 item" in web.texts()
    await web.say("view my cart")
    assert "Beanie" in web.texts()
    assert await merges(channel_client) == 1


async def test_numbered_and_chinese_answers(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    await web.say(ADD.format(p="TEE-CLASSIC", s="M", c="white"))
    offer = await (await channel_client.post("/api/web/link", json={"channel": "sms"}, headers=web.headers)).json()
    sms = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550141")
    assert "1. Yes" in await sms.say(offer["code"])
    assert "You're linked" in await sms.say("1")

    web = await WebShopper.start(channel_client)
    await web.say("你好")
    offer = await (await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)).json()
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+886912345678")
    question = await wa.say(offer["code"])  # a new chat: in the language of whoever asked for it
    assert "要把這個對話和網頁聊天連結嗎" in question and "只有在是您本人要求" in question
    assert "已連結" in await wa.say("好")
    assert await merges(channel_client) == 2


@pytest.fixture
async def messenger_client(aiohttp_client, channel_settings: Settings, recognizer):
    settings = channel_settings.model_copy(update={"messenger_page_name": "northwind"})
    return await aiohttp_client(create_app(settings, recognizer))


async def test_opening_an_m_me_link_alone_only_asks(messenger_client, fake_graph):
    client = messenger_client
    victim = MessengerShopper(client, fake_graph, "2400000000000031")
    await victim.say(ADD.format(p="HAT-BEANIE", s="OS", c="grey"))
    attacker = await WebShopper.start(client)
    await attacker.say("hi")
    offer = await (await client.post("/api/web/link", json={"channel": "messenger"}, headers=attacker.headers)).json()
    ref = parse_qs(urlparse(offer["url"]).query)["ref"][0]

    # Opening the link: Messenger sends an OPEN_THREAD referral, nothing typed.
    referral = {
        "sender": {"id": victim.psid},
        "recipient": {"id": "PAGE"},
        "timestamp": 1764000000001,
        "referral": {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"},
    }
    assert (await victim.post_events(referral)).status == 200
    sent = await victim.replies()
    assert "Link this chat with the web chat" in MessengerShopper.texts(sent)
    assert [q["payload"] for q in MessengerShopper.quick_replies(sent)] == [linking.CONFIRM, linking.CANCEL]
    assert await merges(client) == 0
    await attacker.say("view my cart")
    assert "Your cart is empty" in attacker.texts()

    # Only the tap on Yes joins them.
    assert "You're linked" in MessengerShopper.texts(await victim.say("Yes", quick_reply=linking.CONFIRM))
    assert await merges(client) == 1
    await attacker.say("view my cart")
    assert "Beanie" in attacker.texts()


async def test_forty_numbers_guessing_lock_out_nobody_else(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    await web.say(ADD.format(p="TEE-CLASSIC", s="M", c="white"))
    offer = await (await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)).json()
    right = offer["code"]
    wrong = [f"{n:06d}" for n in range(100000, 100300) if f"{n:06d}" != right]

    async def guesser(i: int) -> list[str]:
        shopper = TwilioShopper(channel_client, fake_twilio, "whatsapp", f"+44770090{i:04d}")
        return [await shopper.say(wrong[i * 5 + k], settle=0) for k in range(5)]

    replies = await asyncio.gather(*(guesser(i) for i in range(40)))
    for mine in replies:
        # Told "too many" only after wrong codes of its own, and never before its first guess.
        assert "isn't right" in mine[0]
        first_block = next((k for k, r in enumerate(mine) if "Too many wrong codes" in r), None)
        assert first_block is None or first_block >= linking.MAX_WRONG_CODES_UNDER_ATTACK
    assert sum("Too many wrong codes" in r for mine in replies for r in mine) > 0  # the attack was slowed
    innocent = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900199")
    assert "Link this chat with the web chat" in await innocent.say(right)
    assert "You're linked" in await innocent.say("yes")


async def test_a_code_tried_where_it_does_not_belong_dies(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    offer = await (await channel_client.post("/api/web/link", json={"channel": "sms"}, headers=web.headers)).json()
    for i in range(linking.MAX_TOKEN_FAILURES):  # typed on WhatsApp, where an SMS code does not work
        wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", f"+44770091{i:04d}")
        assert "isn't right" in await wa.say(offer["code"])
    sms = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550142")
    assert "no longer works" in await sms.say(offer["code"])
    assert await merges(channel_client) == 0


async def test_a_shopper_is_told_how_long_to_wait(channel_client, fake_twilio):
    guesser = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550143")
    replies = [await guesser.say(f"{n:06d}", settle=0) for n in range(200000, 200006)]
    assert all("isn't right" in r for r in replies[:5])
    assert "Too many wrong codes from this chat. Please wait 10 minutes" in replies[5]
