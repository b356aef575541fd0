"""Marking an order shipped: the admin API and `python app.py order ship`, one function behind
both; the shopper told through the outbox on their channel, through the fakes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.delivery.estimates import add_business_days
from bot.i18n import date_text
from bot.store.models import Dispatch, MessageRecord, Order, utcnow
from integrations.shipments import parcel
from service.app import DB, create_app
from tests.dialogs.test_checkout import add, place_order
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import AUTH, TOKEN, changed, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
TRACKING = "1Z999AA10123456784"


def arrives_after_shipping(language: str = "en") -> str:
    return date_text(language, add_business_days(datetime.now(ZoneInfo("America/New_York")).date(), 5))


@pytest.fixture
async def shop(aiohttp_client, channel_settings, recognizer):
    return await aiohttp_client(create_app(changed(channel_settings, admin_token=TOKEN, quiet_hours=""), recognizer))


async def pay(client, path: str) -> None:
    resp = await client.post(path.split("?")[0], data={"sig": path.split("sig=")[1]})
    assert resp.status == 200, await resp.text()


def ship(client, number, body, headers=AUTH):
    return client.post(f"/api/orders/{number}/shipment", json=body, headers=headers)


@pytest.mark.parametrize(
    "carrier, tracking, name, url",
    [
        ("ups", "1z 999 aa1 0123456784", "UPS", "https://www.ups.com/track?tracknum=1Z999AA10123456784"),
        (
            "USPS",
            "9400111899223456789012",
            "USPS",
            "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223456789012",
        ),
        ("Fed Ex", "123456789012", "FedEx", "https://www.fedex.com/fedextrack/?trknbr=123456789012"),
        (
            "dhl",
            "JD014600006281230704",
            "DHL",
            "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id=JD014600006281230704",
        ),
        ("Royal Mail", "AB123456789GB", "Royal Mail", None),
    ],
)
def test_known_carriers_get_a_tracking_link(carrier, tracking, name, url):
    shipment = parcel(carrier, tracking)
    assert (shipment.carrier, shipment.tracking_url) == (name, url)
    assert " " not in shipment.tracking_number and shipment.tracking_number == shipment.tracking_number.upper()


async def test_the_admin_api_ships_a_paid_order_and_tells_the_web_shopper(shop):
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    number, path = await place_order(shopper)

    assert (await ship(shop, number, {"carrier": "UPS", "tracking_number": TRACKING}, headers={})).status == 401
    bad = [
        ({"carrier": "UPS"}, 400),
        ({"carrier": "UPS", "tracking_number": TRACKING, "eta": "soon"}, 400),
        ({"carrier": "", "tracking_number": TRACKING}, 400),
        ({"carrier": "UPS", "tracking_number": "<b>"}, 400),
        ({"carrier": 5, "tracking_number": TRACKING}, 400),
        (["UPS"], 400),
    ]
    for body, status in bad:
        resp = await ship(shop, number, body)
        assert resp.status == status and "error" in await resp.json(), body
    not_json = await shop.post(f"/api/orders/{number}/shipment", data=b"{", headers=AUTH)
    assert not_json.status == 400
    assert (await ship(shop, 99999, {"carrier": "UPS", "tracking_number": TRACKING})).status == 404
    assert (await ship(shop, "abc", {"carrier": "UPS", "tracking_number": TRACKING})).status == 404
    unpaid = await ship(shop, number, {"carrier": "UPS", "tracking_number": TRACKING})
    assert unpaid.status == 409 and "not paid" in (await unpaid.json())["error"]

    await pay(shop, path)
    resp = await ship(shop, number, {"carrier": "ups", "tracking_number": TRACKING})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "shipped" and body["carrier"] == "UPS" and body["notice"] == "queued"
    assert body["tracking_url"] == f"https://www.ups.com/track?tracknum={TRACKING}"
    again = await ship(shop, number, {"carrier": "UPS", "tracking_number": TRACKING})
    assert again.status == 409 and "shipped already" in (await again.json())["error"]

    # The web-only shopper finds the notice in the chat, with the tracking link.
    notices = [m for m in await shopper.history() if m["text"] and "has shipped" in m["text"]]
    assert len(notices) == 1
    assert f"Good news: order #{number} has shipped with UPS, tracking number {TRACKING}." in notices[0]["text"]
    assert notices[0]["links"] == [{"title": "Track parcel", "url": body["tracking_url"]}]
    await shopper.say("when will it arrive?")
    assert (
        f"Order #{number} is on its way with UPS (tracking number {TRACKING}) and arrives by "
        f"{arrives_after_shipping()}."
    ) == shopper.texts()
    assert shopper.last[0]["links"][0]["url"] == body["tracking_url"]


async def test_a_whatsapp_shopper_is_told_on_whatsapp_once(shop, fake_twilio):
    """The whole checkout on WhatsApp: a code, the receipt contact, the shipping and the date."""
    wa = TwilioShopper(shop, fake_twilio, "whatsapp", "+14155550301")
    await wa.say("Do you have the Trail Blazer Runner in size 9?")
    await wa.say("1")
    assert "Code COMEBACK10 is on your cart: 10% off" in await wa.say("apply code COMEBACK10")
    await wa.say("checkout")
    assert "receipt" in await wa.say("10 Downing Street, London SW1A 2AA")
    confirm = await wa.say("ana@example.com")
    assert "Subtotal: $109.00" in confirm and "Code COMEBACK10 (10% off): −$10.90" in confirm
    assert "Shipping: free" in confirm and "Total: $98.10" in confirm and "Receipt to: ana@example.com" in confirm
    placed = date_text("en", add_business_days(datetime.now(ZoneInfo("America/New_York")).date(), 6))
    assert f"Arrives by {placed}" in confirm
    out = await wa.say("yes")
    number = int(re.search(r"Order #(\d+) is placed", out).group(1))
    assert "Shipping is free." in out and "Code COMEBACK10 is applied." in out
    path = re.search(r"https://shop\.example\.com(/pay/[^\s)]+)", out).group(1)
    await pay(shop, path)
    assert f"Payment received for order #{number}" in await wa.replies()

    resp = await ship(shop, number, {"carrier": "FedEx", "tracking_number": "123456789012"})
    assert resp.status == 200
    notice = await wa.replies()
    assert f"order #{number} has shipped with FedEx, tracking number 123456789012" in notice
    assert f"arrives by {arrives_after_shipping()}" in notice
    assert "Track parcel: https://www.fedex.com/fedextrack/?trknbr=123456789012" in notice
    assert "on its way with FedEx (tracking number 123456789012)" in await wa.say("when will it arrive?")
    keys = await shop.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord.idempotency_key).where(MessageRecord.idempotency_key.like("shipment:%"))
        ).all()
    )
    assert len(keys) == 1 and keys[0].startswith("shipment:")  # one per order


async def test_messenger_gets_the_shipping_notice_with_its_tag_outside_the_window(shop, fake_graph):
    fb = MessengerShopper(shop, fake_graph, "PSID-SHIP")
    await fb.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await fb.say("checkout")
    await fb.say("5 Rue de Rivoli, 75001 Paris")
    await fb.say("Skip", quick_reply="Skip")
    sent = await fb.say("yes", quick_reply="Yes")
    number = int(re.search(r"Order #(\d+)", MessengerShopper.texts(sent)).group(1))
    order = await shop.app[DB].run(lambda s: s.exec(select(Order).order_by(Order.id.desc())).first())
    await pay(shop, order.payment_url.removeprefix("https://shop.example.com"))
    await fb.replies()
    await shop.app[DB].run(
        lambda s: [  # the shopper last wrote three days ago
            setattr(m, "created_at", utcnow() - timedelta(days=3))
            for m in s.exec(select(MessageRecord).where(MessageRecord.direction == "in")).all()
        ]
    )

    assert (await ship(shop, number, {"carrier": "DHL", "tracking_number": "JD014600006281230704"})).status == 200
    sent = await fb.replies()
    shipped = [m for m in sent if "has shipped" in json.dumps(m)]
    assert shipped and all(m["messaging_type"] == "MESSAGE_TAG" and m["tag"] == "POST_PURCHASE_UPDATE" for m in shipped)


async def test_the_command_line_ships_and_the_running_server_sends_the_notice(shop, fake_twilio, channel_settings):
    wa = TwilioShopper(shop, fake_twilio, "whatsapp", "+14155550302")
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await wa.say("checkout")
    await wa.say("10 Downing Street, London SW1A 2AA")
    await wa.say("skip")
    out = await wa.say("yes")
    number = re.search(r"Order #(\d+) is placed", out).group(1)
    await pay(shop, re.search(r"https://shop\.example\.com(/pay/[^\s)]+)", out).group(1))
    await wa.replies()

    # The same settings as the server's (no quiet hours), or the notice waits for the morning.
    env = {
        **os.environ,
        "DATABASE_URL": channel_settings.database_url,
        "ADMIN_TOKEN": "",
        "LOG_LEVEL": "WARNING",
        "QUIET_HOURS": "",
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "app.py", "order", "ship", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = await asyncio.to_thread(cli, "99999", "--carrier", "UPS", "--tracking", TRACKING)
    assert missing.returncode == 2 and "no order #99999" in missing.stderr
    bad = await asyncio.to_thread(cli, number, "--carrier", "UPS", "--tracking", "?")
    assert bad.returncode == 2 and "tracking_number" in bad.stderr
    done = await asyncio.to_thread(cli, number, "--carrier", "usps", "--tracking", "9400111899223456789012")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tracking_url"].startswith("https://tools.usps.com/")
    notice = await wait_until(lambda: _shipped(wa), timeout=10)
    assert f"order #{number} has shipped with USPS" in notice
    dispatch = await shop.app[DB].run(lambda s: s.exec(select(Dispatch).where(Dispatch.source == "shipment")).one())
    assert dispatch.status == "queued" and dispatch.marketing is False


async def _shipped(wa: TwilioShopper) -> str | None:
    texts = [r["body"] or "" for r in wa.mine() if "has shipped" in (r["body"] or "")]
    return texts[0] if texts else None
