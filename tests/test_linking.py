"""One shopper across channels, end to end through the real webhooks and the fake providers."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlparse

from sqlmodel import select

from bot.store.models import Cart, CartItem, Customer, LinkToken, MergeRecord, Variant, utcnow
from service.app import DB, create_app
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed

ADD = '/add_to_cart {{"product":"{p}","size":"{s}","colour":"{c}"}}'


async def add(shopper, product: str, size: str, colour: str):
    return await shopper.say(ADD.format(p=product, s=size, c=colour))


async def confirmed(shopper, text: str) -> str:
    """Send a link (or code) from a phone chat and say yes to the question it brings."""
    question = await shopper.say(text)
    assert "Link this chat with" in question and "Only say yes if you asked for this yourself" in question
    return await shopper.say("yes")


async def cart_quantities(client, customer_id: str | None = None) -> dict[str, int]:
    def load(session):
        query = select(CartItem.variant_sku, CartItem.quantity, Cart.customer_id).join(
            Cart, Cart.id == CartItem.cart_id
        )
        rows = session.exec(query.where(Cart.status == "open")).all()
        return {sku: qty for sku, qty, cid in rows if customer_id in (None, cid)}

    return await client.app[DB].run(load)


async def test_web_to_whatsapp_by_link_then_checkout_there(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    await add(web, "TEE-CLASSIC", "M", "white")
    await add(web, "SOCK-RUN", "M", "white")
    config = await channel_client.get("/api/web/config", headers=web.headers)
    assert set((await config.json())["link_channels"]) == {"whatsapp", "sms"}  # no Messenger page name set
    resp = await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)
    offer = await resp.json()
    url = urlparse(offer["url"])
    assert url.netloc == "wa.me" and url.path == "/15550001111" and len(offer["code"]) == 6
    prefilled = parse_qs(url.query)["text"][0]
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900123")
    out = await confirmed(wa, prefilled)
    assert "You're linked" in out and "web chat" in out and "2 items" in out
    out = await wa.say("checkout")
    assert "shipping address" in out
    await wa.say("1 Castle Street, Edinburgh EH1 2NG")
    await wa.say("skip")
    out = await wa.say("yes")
    assert re.search(r"Order #\d+ is placed", out)
    # the web transcript now reads as one conversation across both channels
    history = await web.history()
    assert any(m["direction"] == "in" and m["text"] == "checkout" for m in history)


async def test_checkout_begun_on_web_is_finished_on_whatsapp(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    await add(web, "TEE-CLASSIC", "L", "white")
    await web.say("checkout")
    assert "shipping address" in web.texts()
    await web.say("continue on WhatsApp")
    # The link is a side request: the checkout stays and asks for the address again.
    assert "code" in web.texts() and web.last[-1]["text"].startswith("What's the shipping address?")
    code = re.search(r"code (\d{6})", web.texts()).group(1)
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900124")
    out = await confirmed(wa, code)
    assert "You're linked" in out and "shipping address" in out  # the checkout asks again, here
    out = await wa.say("1 Castle Street, Edinburgh EH1 2NG")
    assert "receipt" in out
    out = await wa.say("skip")  # no receipt contact
    assert "1 Castle Street" in out
    out = await wa.say("yes")
    assert re.search(r"Order #\d+ is placed", out)


async def test_messenger_to_sms_by_code(channel_client, fake_graph, fake_twilio):
    fb = MessengerShopper(channel_client, fake_graph, "2400000000000009")
    await fb.say(ADD.format(p="HAT-BEANIE", s="OS", c="grey"))
    sent = await fb.say("can I continue by text message?")
    code = re.search(r"code (\d{6})", MessengerShopper.texts(sent)).group(1)
    sms = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550199")
    out = await confirmed(sms, code)
    assert "You're linked" in out and "Messenger" in out
    out = await sms.say("view my cart")
    assert "Beanie" in out


async def test_two_customers_with_carts_are_merged(channel_client, fake_twilio):
    db = channel_client.app[DB]
    web = await WebShopper.start(channel_client)
    await add(web, "TEE-CLASSIC", "M", "white")
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900125")
    await wa.say(ADD.format(p="TEE-CLASSIC", s="M", c="white"))
    await wa.say(ADD.format(p="SOCK-RUN", s="M", c="white"))
    await wa.say("STOP")  # opted out on WhatsApp: stays opted out after the merge
    resp = await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)
    token_text = unquote(urlparse((await resp.json())["url"]).query.split("text=")[1])
    assert "You're linked" in await confirmed(wa, token_text)
    customers = await db.run(lambda s: s.exec(select(Customer).where(Customer.id != "demo-shopper")).all())
    assert len(customers) == 1 and customers[0].marketing_consent is False
    quantities = await cart_quantities(channel_client, customers[0].id)
    assert quantities["TEE-CLASSIC-M-WHT"] == 2 and quantities["SOCK-RUN-M-WHT"] == 1
    record = await db.run(lambda s: s.exec(select(MergeRecord)).one())
    assert record.kept_id == customers[0].id and record.summary["cart_items"] == 2


async def test_expired_reused_and_guessed_tokens_are_refused(channel_client, fake_twilio):
    db = channel_client.app[DB]
    web = await WebShopper.start(channel_client)
    await add(web, "TEE-CLASSIC", "M", "white")
    offer = await (await channel_client.post("/api/web/link", json={"channel": "sms"}, headers=web.headers)).json()
    first = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550101")
    assert "You're linked" in await confirmed(first, offer["code"])
    stranger = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550102")
    assert "already used" in await stranger.say(offer["code"])
    assert await cart_quantities(channel_client) == {"TEE-CLASSIC-M-WHT": 1}  # nothing came to the stranger

    offer = await (await channel_client.post("/api/web/link", json={"channel": "sms"}, headers=web.headers)).json()

    def expire(session):
        session.exec(select(LinkToken).where(LinkToken.code == offer["code"])).one().expires_at = utcnow() - timedelta(
            seconds=1
        )

    await db.run(expire)
    assert "expired" in await stranger.say(offer["code"])
    guesser = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550103")
    replies = [await guesser.say(f"{n:06d}", settle=0.1) for n in range(123450, 123456)]
    assert "isn't right" in replies[0] and "Too many wrong codes" in replies[-1]
    bad = await channel_client.post("/api/web/link", json={"channel": "carrier-pigeon"}, headers=web.headers)
    assert bad.status == 400


async def test_fifty_concurrent_adds_across_two_channels(aiohttp_client, channel_settings, recognizer, fake_twilio):
    # Fifty messages at once from one shopper: the flood limit (SENDER_RATE_LIMIT) is off here.
    channel_client = await aiohttp_client(create_app(changed(channel_settings, sender_rate_limit=0), recognizer))
    db = channel_client.app[DB]

    def restock(session):
        session.get(Variant, "TEE-CLASSIC-M-WHT").stock = 100

    await db.run(restock)
    web = await WebShopper.start(channel_client)
    await web.say("hi")
    offer = await (await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)).json()
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900126")
    assert "You're linked" in await confirmed(wa, offer["code"])
    command = ADD.format(p="TEE-CLASSIC", s="M", c="white")

    async def via_web():
        await web.say(command)

    async def via_whatsapp():
        from tests.fakes.providers import twilio_form

        assert (await wa.post(twilio_form("whatsapp", wa.number, command))).status == 200

    await asyncio.gather(*([via_web() for _ in range(25)] + [via_whatsapp() for _ in range(25)]))
    for _ in range(300):
        if (await cart_quantities(channel_client)).get("TEE-CLASSIC-M-WHT") == 50:
            break
        await asyncio.sleep(0.1)
    assert await cart_quantities(channel_client) == {"TEE-CLASSIC-M-WHT": 50}


async def test_what_we_know_and_forget_me(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900127")
    await wa.say(ADD.format(p="TEE-CLASSIC", s="M", c="white"))
    out = await wa.say("what do you know about me?")
    assert "+44•••27" in out and "447700900127" not in out
    out = await wa.say("delete my data")
    assert "Delete everything?" in out
    out = await wa.say("yes")
    assert "deleted" in out
    customer = await channel_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.erased_at.is_not(None))).one()
    )
    assert customer.phone is None
    out = await wa.say("view my cart")  # a new customer now: nothing of the old one
    assert "Your cart is empty" in out


async def test_a_shopper_chooses_where_updates_go(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    await web.say("hello")
    offer = await (await channel_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)).json()
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+447700900128")
    assert "You're linked" in await confirmed(wa, offer["code"])
    await web.say("what do you know about me")
    assert "Updates go to: Web chat" in web.texts()
    await web.tap("Send updates here")
    assert "will come to this chat" in web.texts()
    await wa.say("hi")  # WhatsApp is now the channel used last, but web chat was chosen
    customer = await channel_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.id != "demo-shopper")).one()
    )
    assert customer.preferred_channel == "web" and customer.last_channel == "whatsapp"
