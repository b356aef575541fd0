"""Abandoned-cart reminders and back-in-stock notices, end to end through the fakes."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlmodel import select

from bot.store.models import Cart, Customer, MessageRecord, Order, Variant
from integrations.catalog import StoreCatalog
from service.app import DB, create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import AUTH, changed, wait_until


@pytest.fixture
def reminder_settings(channel_settings):
    return changed(
        channel_settings,
        admin_token="marketing-secret",
        quiet_hours="",
        cart_reminder_delays="1s,2s",
        cart_scan_interval_seconds=0.2,
    )


async def test_two_cart_reminders_then_the_checkout_honours_the_code(
    aiohttp_client, reminder_settings, recognizer, fake_twilio
):
    client = await aiohttp_client(create_app(reminder_settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550201")
    await wa.say("subscribe")
    await wa.say("yes")  # a subscription is confirmed
    await wa.say("Do you have the Trail Blazer Runner in size 9?")
    assert "Added 1 × Trail Blazer Runner" in await wa.say("1")

    first = await wait_until(lambda: _reminders(wa, 1), timeout=10)
    assert "You left 1 × Trail Blazer Runner in your cart" in first[0]["body"]
    assert "1. Check out" in first[0]["body"]
    second = await wait_until(lambda: _reminders(wa, 2), timeout=10)
    assert "COMEBACK10" in second[1]["body"] and "10% off" in second[1]["body"]
    await asyncio.sleep(1.5)  # at most two per cart
    assert len(await _reminders(wa, 0) or []) == 2

    wa.seen = len(wa.mine())
    out = await wa.say("checkout")
    if "shipping address" in out:
        out = await wa.say("10 Downing Street, London SW1A 2AA")
    assert "receipt" in out
    out = await wa.say("skip")
    assert "Total:" in out and "Place the order?" in out
    out = await wa.say("yes")
    assert "Code COMEBACK10 is applied." in out
    order, cart = await client.app[DB].run(
        lambda s: (
            s.exec(select(Order).order_by(Order.id.desc())).first(),
            s.exec(select(Cart).order_by(Cart.id.desc())).first(),
        )
    )
    assert order.discount_code == "COMEBACK10" and order.discount_cents > 0
    assert order.shipping_cents == 0  # over $50 after the discount
    assert order.total_cents + order.discount_cents == 10 * order.discount_cents  # 10% off
    assert cart.status == "checked_out"
    metrics = await (await client.get("/api/metrics", headers=AUTH)).json()
    assert metrics["carts"] == {"carts_reminded": 1, "carts_recovered": 1, "recovery_rate": 1.0}


async def test_a_shopper_who_never_opted_in_is_reminded_inside_the_window(
    aiohttp_client, reminder_settings, recognizer, fake_twilio
):
    """A reminder about their own cart while they are talking to us is a service message on
    WhatsApp: free-form, no opt-in needed. Outside the window it would need one (and a template)."""
    client = await aiohttp_client(
        create_app(
            changed(reminder_settings, cart_reminder_delays="1s,1h", whatsapp_cart_template_sid="HX" + "c" * 32),
            recognizer,
        )
    )
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550205")
    await wa.say("Do you have the Trail Blazer Runner in size 9?")
    assert "Added 1 × Trail Blazer Runner" in await wa.say("1")
    consent = await client.app[DB].run(
        lambda s: s.exec(select(Customer.marketing_consent).where(Customer.phone == "+14155550205")).one()
    )
    assert consent is None  # never asked, never said yes

    first = await wait_until(lambda: _reminders(wa, 1), timeout=10)
    assert "You left 1 × Trail Blazer Runner in your cart" in first[0]["body"]
    assert first[0]["content_sid"] is None  # free-form, inside the window
    metrics = await (await client.get("/api/metrics", headers=AUTH)).json()
    assert metrics["proactive"] == {"cart_reminder:queued": 1}


async def _reminders(wa: TwilioShopper, at_least: int):
    found = [r for r in wa.mine() if "in your cart" in (r["body"] or "") or "still waiting" in (r["body"] or "")]
    return found if len(found) >= at_least else None


async def test_no_reminder_for_an_emptied_cart_or_without_consent(
    aiohttp_client, reminder_settings, recognizer, fake_twilio
):
    client = await aiohttp_client(create_app(reminder_settings, recognizer))
    emptied = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550202")
    await emptied.say("subscribe")
    await emptied.say("yes")  # a subscription is confirmed
    await emptied.say("Do you have the Trail Blazer Runner in size 9?")
    await emptied.say("1")
    await emptied.say("remove it from my cart")
    await emptied.say("1")
    no_consent = TwilioShopper(client, fake_twilio, "sms", "+14155550203")
    await no_consent.say("Do you have the Trail Blazer Runner in size 9?")
    await no_consent.say("1")
    await asyncio.sleep(3.5)
    assert not await _reminders(emptied, 1)
    assert not await _reminders(no_consent, 1)
    metrics = await (await client.get("/api/metrics", headers=AUTH)).json()
    assert metrics["proactive"].get("cart_reminder:skipped") == 1  # the SMS shopper, who never opted in


async def test_back_in_stock_tells_the_waitlist_once(aiohttp_client, reminder_settings, recognizer, fake_twilio):
    client = await aiohttp_client(create_app(reminder_settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550204")
    await wa.say("hi")
    db = client.app[DB]
    variant = await db.run(lambda s: s.exec(select(Variant).where(Variant.stock == 0).order_by(Variant.sku)).first())
    customer_id = await db.run(lambda s: s.exec(select(Customer.id).where(Customer.phone == "+14155550204")).one())
    assert await StoreCatalog(db).join_waitlist(customer_id, [variant.sku]) == 1

    resp = await client.put(f"/api/inventory/{variant.sku}", json={"stock": 4}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["waitlist"] == {"queued": 1}
    notice = await wa.replies()
    assert "is back in stock" in notice and f"({variant.size}, {variant.colour})" in notice
    assert "1. Add to cart" in notice
    assert "Added 1 ×" in await wa.say("1")

    # Sold out and back again: the entry is closed, nobody is told twice.
    await client.put(f"/api/inventory/{variant.sku}", json={"stock": 0}, headers=AUTH)
    again = await client.put(f"/api/inventory/{variant.sku}", json={"stock": 2}, headers=AUTH)
    assert (await again.json())["waitlist"] == {}
    await asyncio.sleep(0.5)
    assert "back in stock" not in await wa.replies()

    bad = await client.put(f"/api/inventory/{variant.sku}", json={"stock": -1}, headers=AUTH)
    assert bad.status == 400
    assert (await client.put("/api/inventory/NOPE", json={"stock": 1}, headers=AUTH)).status == 404


async def _join_aero_waitlist_on_the_web(client) -> WebShopper:
    web = await WebShopper.start(client)
    await web.say("Do you have the Aero Runner in size 9 in white?")
    assert "sold out" in web.texts()
    await web.tap("Yes")
    return web


async def test_a_web_shopper_finds_the_restock_notice_in_the_web_chat(
    aiohttp_client, reminder_settings, recognizer, fake_twilio
):
    client = await aiohttp_client(create_app(reminder_settings, recognizer))
    web = await _join_aero_waitlist_on_the_web(client)
    # Told the truth: the notice waits in this chat; a phone channel is offered.
    assert "the notice will be waiting in this chat" in web.texts()
    assert "Get it on WhatsApp" in web.buttons() and "Get it by SMS" in web.buttons()
    seen = max(m["id"] for m in await web.history())

    resp = await client.put("/api/inventory/RUN-AERO-9-WHT", json={"stock": 3}, headers=AUTH)
    assert (await resp.json())["waitlist"] == {"queued": 1}
    later = [m for m in await web.history(after=seen) if m["direction"] == "out"]
    assert len(later) == 1 and "Aero Runner (9, white) is back in stock" in later[0]["text"]
    assert [c["title"] for c in later[0]["choices"]] == ["Add to cart"]
    # Read by the widget: delivered, and nothing went to a phone.
    status = await client.app[DB].run(lambda s: s.get(MessageRecord, later[0]["id"]).status)
    assert status == "delivered"
    assert not fake_twilio.delivered()
    web.last = later
    await web.tap("Add to cart")
    assert "Added 1 × Aero Runner (9, white)" in web.texts()


async def test_a_web_shopper_who_takes_the_phone_offer_gets_the_notice_on_whatsapp(
    aiohttp_client, reminder_settings, recognizer, fake_twilio
):
    client = await aiohttp_client(create_app(reminder_settings, recognizer))
    web = await _join_aero_waitlist_on_the_web(client)
    await web.tap("Get it on WhatsApp")
    code = re.search(r"send the code (\d{6})", web.texts()).group(1)
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550206")
    assert "Link this chat" in await wa.say(code)
    assert "You're linked" in await wa.say("yes")

    await web.say("thanks")  # back on the web: the notice still goes to the phone
    await client.put("/api/inventory/RUN-AERO-9-WHT", json={"stock": 3}, headers=AUTH)
    assert "Aero Runner (9, white) is back in stock" in await wa.replies()
    notices = await client.app[DB].run(
        lambda s: s.exec(select(MessageRecord.channel).where(MessageRecord.idempotency_key.like("restock:%"))).all()
    )
    assert notices == ["whatsapp"]


async def test_a_notice_whatsapp_cannot_take_waits_in_the_web_chat(
    aiohttp_client, reminder_settings, recognizer, fake_twilio
):
    """Linked to WhatsApp, but silent there for two days and no restock template set: the notice
    cannot go to WhatsApp, so it waits in the shopper's web chat rather than being lost."""
    from datetime import timedelta

    from bot.store.models import utcnow

    client = await aiohttp_client(create_app(reminder_settings, recognizer))
    web = await _join_aero_waitlist_on_the_web(client)
    await web.tap("Get it on WhatsApp")
    code = re.search(r"send the code (\d{6})", web.texts()).group(1)
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550207")
    await wa.say(code)
    await client.app[DB].run(
        lambda s: [
            setattr(m, "created_at", utcnow() - timedelta(days=2))
            for m in s.exec(select(MessageRecord).where(MessageRecord.direction == "in")).all()
        ]
    )

    resp = await client.put("/api/inventory/RUN-AERO-9-WHT", json={"stock": 3}, headers=AUTH)
    assert (await resp.json())["waitlist"] == {"queued": 1}
    notice = await client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(MessageRecord.idempotency_key.like("restock:%"))).one()
    )
    assert notice.channel == "web" and "back in stock" in notice.text
    assert "back in stock" not in await wa.replies()
