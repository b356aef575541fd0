"""Reminders (abandoned cart, restock) carry a tracked link like campaigns: sending one records an
impression, opening it the first time a click, then it lands on the shop; a forged link is a 404
and records nothing. The dashboard's click-through counts them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.marketing.reminders import notify_restocked, remind_carts
from bot.messages import OutboundMessage
from bot.store.models import AnalyticsEvent, ChannelIdentity, MessageRecord, Variant, WaitlistEntry, utcnow
from bot.store.seed import DEMO_CUSTOMER_ID
from service.app import DB, create_app
from service.marketing_api import SCHEDULER
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import AUTH, TOKEN, changed

BASE = "https://shop.example.com"


@pytest.fixture
async def shop(aiohttp_client, channel_settings, recognizer):
    # both reminders inside WhatsApp's 24-hour window, so both go free-form, with their link
    settings = changed(channel_settings, admin_token=TOKEN, quiet_hours="", cart_reminder_delays="1h,3h")
    return await aiohttp_client(create_app(settings, recognizer))


async def kinds(client) -> list[tuple[str, str | None]]:
    return await client.app[DB].run(
        lambda s: [
            (e.kind, e.subject)
            for e in s.exec(
                select(AnalyticsEvent)
                .where(col(AnalyticsEvent.kind).in_(["offer_shown", "offer_clicked"]))
                .order_by(col(AnalyticsEvent.id))
            ).all()
        ]
    )


async def sent_links(client, key_prefix: str) -> list[str]:
    """The tracked links of the messages queued under keys starting so, oldest first."""
    rows = await client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord)
            .where(col(MessageRecord.idempotency_key).startswith(key_prefix))
            .order_by(col(MessageRecord.id))
        ).all()
    )
    links = [link.url for row in rows for link in OutboundMessage.from_dict(row.payload or {}).links]
    assert len(links) == len(rows)  # each carries one
    return links


async def jobs(client, fn, at):
    p = client.app[SCHEDULER].p
    return await client.app[DB].run(lambda s: fn(s, p.policy, p.reminders, at))


async def figures(client, days: int = 2) -> dict:
    today = utcnow().date()
    resp = await client.get(f"/api/analytics?from={today}&to={today + timedelta(days=days)}", headers=AUTH)
    assert resp.status == 200
    return (await resp.json())["ctr"]


async def test_cart_reminders_carry_a_link_counted_once(shop, fake_twilio):
    wa = TwilioShopper(shop, fake_twilio, "whatsapp", "+14155550301")
    await wa.say("Do you have the Trail Blazer Runner in size 9?")
    assert "Added 1 × Trail Blazer Runner" in await wa.say("1")
    now = utcnow()
    assert (await jobs(shop, remind_carts, now + timedelta(hours=2))) == {"queued": 1}
    [link] = await sent_links(shop, "cart_reminder:")
    assert link.startswith(f"{BASE}/r/cart_reminder:")
    key = link.removeprefix(f"{BASE}/r/").split("/")[0]
    assert await kinds(shop) == [("offer_shown", key)]

    path = link.removeprefix(BASE)
    forged = path[:-1] + ("0" if not path.endswith("0") else "1")
    resp = await shop.get(forged, allow_redirects=False)
    assert resp.status == 404
    other = await shop.get(path.replace("cart_reminder:", "cart_reminder:9"), allow_redirects=False)
    assert other.status == 404  # a signature is good for its own key only
    assert await kinds(shop) == [("offer_shown", key)]  # nothing recorded for them

    for _ in range(2):  # opened twice: one click
        resp = await shop.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/"
    assert await kinds(shop) == [("offer_shown", key), ("offer_clicked", key)]
    assert (await figures(shop))["offers"] == {
        "sent": 1,
        "clicked": 1,
        "rate": 1.0,
        "discounts_sent": 0,
        "used": 0,
        "use_rate": None,
    }

    # the second reminder, with the code: shown, not opened
    assert (await jobs(shop, remind_carts, now + timedelta(hours=4))) == {"queued": 1}
    first, second = await sent_links(shop, "cart_reminder:")
    assert first == link and second != link and ":2:" in second
    assert (await figures(shop))["offers"] == {
        "sent": 2,
        "clicked": 1,
        "rate": 0.5,
        "discounts_sent": 1,
        "used": 0,
        "use_rate": 0.0,
    }
    # recommendations and campaigns are counted apart
    assert (await figures(shop))["campaign_links"] == {"sent": 0, "clicked": 0, "rate": None}


async def test_a_restock_notice_link_opens_the_product(shop):
    web = await WebShopper.start(shop)
    await web.say("hi")

    def wait_for_a_sold_out_variant(session):
        variant = session.exec(select(Variant).where(Variant.stock == 0).order_by(col(Variant.sku))).first()
        assert variant is not None  # the demo catalog has sold-out sizes
        customer_id = session.exec(
            select(ChannelIdentity.customer_id).where(
                ChannelIdentity.channel == "web", ChannelIdentity.customer_id != DEMO_CUSTOMER_ID
            )
        ).one()  # the shopper who just wrote
        session.add(WaitlistEntry(customer_id=customer_id, variant_sku=variant.sku))
        variant.stock = 3
        return variant.product_sku

    product = await shop.app[DB].run(wait_for_a_sold_out_variant)
    assert (await jobs(shop, notify_restocked, utcnow())) == {"queued": 1}
    [link] = await sent_links(shop, "restock:")
    key = link.removeprefix(f"{BASE}/r/").split("/")[0]
    resp = await shop.get(link.removeprefix(BASE), allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == f"/?product={product}"
    assert await kinds(shop) == [("offer_shown", key), ("offer_clicked", key)]
    assert (await figures(shop, 0))["offers"]["rate"] == 1.0
