"""Shipping through EasyPost (SHIPPING=easypost) end to end through the real app against a fake
EasyPost: the address checked and the carrier's date at checkout, a tracker per shipped order,
signed tracker webhooks that move the order on once and never backwards and tell the shopper on
their channel, and a return whose prepaid label goes to the chat and whose refund follows the
carrier's scan."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import func, select

from bot.config import Settings
from bot.delivery.estimates import add_business_days
from bot.i18n import EN, TEXTS, ZH, date_text
from bot.store.models import MessageRecord, Order, ProviderEvent, ReturnRequest, utcnow
from integrations.easypost_shipping import address_fields, arrival, signature
from service.app import DB, create_app
from tests.dialogs.test_checkout import add
from tests.fakes.easypost import (
    API_KEY,
    FROM_ADDRESS_ID,
    WEBHOOK_SECRET,
    FakeEasyPost,
    easypost_signature,
    event_body,
)
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.stripe import SECRET_KEY, FakeStripe, stripe_signature
from tests.fakes.stripe import WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from tests.fakes.stripe import event_body as stripe_event
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import TOKEN, changed
from tests.proactive.test_shipments import pay, ship

ADDRESS = "179 N Harbor Dr, Redondo Beach, CA 90277"
TRACKING = "1Z999AA10123456784"
ZONE = ZoneInfo("America/New_York")


@pytest.fixture
async def fake_easypost():
    fake = await FakeEasyPost().start()
    yield fake
    await fake.close()


@pytest.fixture
async def fake_stripe():
    fake = await FakeStripe().start()
    yield fake
    await fake.close()


def with_easypost(settings: Settings, fake: FakeEasyPost, **more) -> Settings:
    return changed(
        settings,
        shipping="easypost",
        easypost_api_key=API_KEY,
        easypost_webhook_secret=WEBHOOK_SECRET,
        easypost_from_address_id=FROM_ADDRESS_ID,
        easypost_api_base=fake.url,
        admin_token=TOKEN,
        quiet_hours="",
        **more,
    )


@pytest.fixture
async def shop(aiohttp_client, settings, recognizer, fake_easypost):
    return await aiohttp_client(create_app(with_easypost(settings, fake_easypost), recognizer))


@pytest.fixture
async def phone_shop(aiohttp_client, channel_settings, recognizer, fake_easypost):
    return await aiohttp_client(create_app(with_easypost(channel_settings, fake_easypost), recognizer))


async def checkout(shopper: WebShopper, address: str = ADDRESS) -> tuple[int, str]:
    """Check out to `address` without a receipt contact: the order number and the pay link's path."""
    await shopper.say("checkout")
    await shopper.say(address)
    if "receipt" in shopper.texts():
        await shopper.say("skip")
    assert "Place the order?" in shopper.texts(), shopper.texts()
    await shopper.tap("Yes")
    match = re.search(r"Order #(\d+) is placed", shopper.texts())
    assert match, shopper.texts()
    url = urlsplit(shopper.last[-1]["links"][0]["url"])
    return int(match.group(1)), f"{url.path}?{url.query}"


async def hook(client, body: bytes, sig: str | None = None):
    headers = {"Content-Type": "application/json"}
    if sig != "":
        headers["X-Hmac-Signature"] = easypost_signature(body) if sig is None else sig
    return await client.post("/webhooks/easypost", data=body, headers=headers)


async def order_of(client, number: int) -> Order:
    return await client.app[DB].run(lambda s: s.get(Order, number - 1000))


async def events(client) -> int:
    return await client.app[DB].run(
        lambda s: s.exec(
            select(func.count()).select_from(ProviderEvent).where(ProviderEvent.provider == "easypost")
        ).one()
    )


async def chat(shopper: WebShopper, wanted: str, times: int = 1) -> list[str]:
    """The web chat's texts once `wanted` appears `times` times (the outbox delivers in the background)."""
    texts: list[str] = []
    for _ in range(100):
        texts = [m["text"] or "" for m in await shopper.history()]
        if sum(wanted in t for t in texts) >= times:
            break
        await asyncio.sleep(0.05)
    return texts


async def shipped(client, shopper: WebShopper, fake: FakeEasyPost, carrier: str = "ups") -> tuple[int, str]:
    """An order placed, paid and shipped: its number and its tracker's id."""
    await add(shopper, "add the linen sundress size S")
    number, path = await checkout(shopper)
    await pay(client, path)
    resp = await ship(client, number, {"carrier": carrier, "tracking_number": TRACKING})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["tracker"].startswith("trk_")
    return number, body["tracker"]


# --- the pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fields",
    [
        (ADDRESS, {"street1": "179 N Harbor Dr", "city": "Redondo Beach", "state": "CA", "zip": "90277"}),
        (
            "417 Montgomery St,  Floor 5, San Francisco, ca 94104-1129, USA",
            {
                "street1": "417 Montgomery St",
                "street2": "Floor 5",
                "city": "San Francisco",
                "state": "CA",
                "zip": "94104-1129",
            },
        ),
        ("221 Baker Street, London NW1 6XE", None),
        ("10 Main St, Springfield", None),
        ("10 Main St, Springfield, Illinois", None),
    ],
)
def test_a_one_line_address_reads_as_easyposts_fields(text, fields):
    assert address_fields(text) == (None if fields is None else {**fields, "country": "US"})


def test_the_cheapest_dated_rate_gives_the_date():
    shipped = date(2026, 12, 4)  # a Friday
    rates = [
        {"rate": "38.10", "delivery_days": 1, "delivery_date": None},
        {"rate": "6.45", "delivery_days": 3, "delivery_date": None},
        {"rate": "2.00", "delivery_days": None, "delivery_date": None},  # no date: not used
    ]
    assert arrival(rates, shipped) == date(2026, 12, 9)  # three business days after Friday
    rates[1]["delivery_date"] = "2026-12-10T17:00:00Z"
    assert arrival(rates, shipped) == date(2026, 12, 10)
    assert arrival([{"rate": "5", "delivery_days": None}], shipped) is None
    assert date_text("en", date(2026, 12, 10)) == "Thu 10 Dec"
    assert date_text(ZH, date(2026, 12, 10)) == "12月10日（週四）"


def test_the_signature_is_hmac_sha256_hex_over_the_raw_body_with_the_normalised_secret():
    body = b'{"id":"evt_1"}'
    assert signature(body, "s\u0065\u0301cret") == signature(body, "s\u00e9cret")  # NFKD first
    assert signature(body, WEBHOOK_SECRET) == easypost_signature(body)
    assert signature(body, WEBHOOK_SECRET).startswith("hmac-sha256-hex=")


@pytest.mark.parametrize(
    "key",
    [
        "checkout.address_unreadable",
        "checkout.address_undeliverable",
        "shipment.out_for_delivery",
        "shipment.pickup",
        "shipment.delivered",
        "shipment.problem",
        "return.label",
        "return.refunding",
        "btn.return_label",
    ],
)
def test_the_shipping_texts_are_in_english_and_traditional_chinese(key):
    assert TEXTS[key][EN] and TEXTS[key][ZH] and TEXTS[key][ZH] != TEXTS[key][EN]
    assert set(re.findall(r"{(\w+)}", TEXTS[key][EN])) == set(re.findall(r"{(\w+)}", TEXTS[key][ZH]))


def test_easypost_settings_are_checked():
    base = {"_env_file": None, "shipping": "easypost"}
    with pytest.raises(ValueError, match="EASYPOST_API_KEY, EASYPOST_WEBHOOK_SECRET, EASYPOST_FROM_ADDRESS_ID"):
        Settings(**base)
    full = {**base, "easypost_api_key": "k", "easypost_webhook_secret": "w"}
    with pytest.raises(ValueError, match="address id"):
        Settings(**full, easypost_from_address_id="warehouse")
    with pytest.raises(ValueError, match="EASYPOST_API_BASE"):
        Settings(**full, easypost_from_address_id="adr_1", easypost_api_base="api.easypost.com/v2")
    with pytest.raises(ValueError, match="SHIPPING must be one of store, easypost"):
        Settings(_env_file=None, shipping="fedex")
    assert Settings(_env_file=None, shipping="demo").shipping == "store"
    assert Settings(_env_file=None).shipping == "store"


# --- checkout --------------------------------------------------------------------------------------


async def test_checkout_checks_the_address_and_gives_the_carriers_date(shop, fake_easypost):
    fake_easypost.delivery_date = datetime.now(ZONE).date() + timedelta(days=7)
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    await shopper.say("skip")
    confirm = shopper.texts()
    assert f"Arrives by {date_text('en', fake_easypost.delivery_date)}" in confirm, confirm
    assert "179 N HARBOR DR, REDONDO BEACH, CA 90277" in confirm  # as the carrier wrote it

    [verify] = fake_easypost.posted("/v2/addresses")
    assert verify["json"] == {
        "address": {
            "street1": "179 N Harbor Dr",
            "city": "Redondo Beach",
            "state": "CA",
            "zip": "90277",
            "country": "US",
        },
        "verify": True,
    }
    assert verify["headers"]["Authorization"].startswith("Basic ") and verify["status"] == 200
    [quote] = fake_easypost.posted("/v2/shipments")
    address_id = next(iter(fake_easypost.addresses))
    assert quote["json"]["shipment"]["to_address"] == {"id": address_id}
    assert quote["json"]["shipment"]["from_address"] == {"id": FROM_ADDRESS_ID}
    assert quote["json"]["shipment"]["parcel"]["weight"] > 0 and quote["headers"]["Idempotency-Key"]

    await shopper.tap("Yes")
    number = int(re.search(r"Order #(\d+) is placed", shopper.texts()).group(1))
    assert date_text("en", fake_easypost.delivery_date) in shopper.texts()
    order = await order_of(shop, number)
    assert order.estimated_delivery == fake_easypost.delivery_date
    assert order.shipping_address == "179 N HARBOR DR, REDONDO BEACH, CA 90277"


async def test_without_a_delivery_date_the_rates_days_count_from_shipping(shop, fake_easypost):
    fake_easypost.delivery_days = 2
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    await shopper.say("skip")
    ships = add_business_days(datetime.now(ZONE).date(), 1)  # PROCESSING_DAYS
    assert f"Arrives by {date_text('en', add_business_days(ships, 2))}" in shopper.texts()


async def test_an_address_the_carrier_cannot_use_gets_a_clear_question(shop, fake_easypost):
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("checkout")
    await shopper.say("221 Baker Street, London NW1 6XE")
    assert "street and number, city, state and ZIP code" in shopper.texts(), shopper.texts()
    assert fake_easypost.posted("/v2/addresses") == []  # nothing to ask the carrier about
    await shopper.say("1 Nowhere Lane, Springfield, IL 62701")
    assert "can't find that address" in shopper.texts(), shopper.texts()
    assert "Place the order?" not in shopper.texts()
    await shopper.say(ADDRESS)
    await shopper.say("skip")
    assert "Place the order?" in shopper.texts()
    assert len(fake_easypost.posted("/v2/addresses")) == 2


async def test_easypost_down_at_checkout_the_order_goes_on_with_the_shops_estimate(shop, fake_easypost):
    fake_easypost.fail_next(1, status=503)
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    await shopper.say("skip")
    estimate = add_business_days(datetime.now(ZONE).date(), 6)
    assert f"Arrives by {date_text('en', estimate)}" in shopper.texts()


# --- tracking --------------------------------------------------------------------------------------


async def test_a_tracked_order_tells_the_web_shopper_each_step_once_and_never_goes_back(shop, fake_easypost):
    shopper = await WebShopper.start(shop)
    number, tracker = await shipped(shop, shopper, fake_easypost)
    [created] = fake_easypost.posted("/v2/trackers")
    assert created["json"] == {"tracker": {"tracking_code": TRACKING, "carrier": "UPS"}}
    assert created["headers"]["Idempotency-Key"] == f"order-{number}-tracker"
    assert (await order_of(shop, number)).tracker_ref == tracker

    # In transit: the shipped notice went when it shipped; not a second one.
    assert (await hook(shop, fake_easypost.tracker_event(tracker, "in_transit"))).status == 200
    today = datetime.now(ZONE).date()
    ofd = fake_easypost.tracker_event(tracker, "out_for_delivery", est_delivery_date=f"{today}T20:00:00Z")
    assert (await hook(shop, ofd)).status == 200
    order = await order_of(shop, number)
    assert order.tracking_status == "out_for_delivery" and order.status == "shipped"
    assert order.estimated_delivery == today
    texts = await chat(shopper, "out for delivery")
    assert f"Order #{number} is out for delivery with UPS" in " ".join(texts)

    delivered = fake_easypost.tracker_event(tracker, "delivered", event_id="evt_delivered_1")
    assert (await hook(shop, delivered)).status == 200
    assert (await hook(shop, delivered)).status == 200  # EasyPost retries: processed once
    late = fake_easypost.tracker_event(tracker, "in_transit")  # a late, out-of-order update
    assert (await hook(shop, late)).status == 200
    again = fake_easypost.tracker_event(tracker, "out_for_delivery")
    assert (await hook(shop, again)).status == 200

    order = await order_of(shop, number)
    assert order.status == "delivered" and order.tracking_status == "delivered" and order.delivered_at
    texts = await chat(shopper, "has been delivered")
    await asyncio.sleep(0.3)
    texts = [m["text"] or "" for m in await shopper.history()]
    assert sum("has shipped" in t for t in texts) == 1
    assert sum("out for delivery" in t for t in texts) == 1
    assert sum(f"Order #{number} has been delivered" in t for t in texts) == 1
    assert await events(shop) == 5  # every verified event recorded, the retry once
    await shopper.say(f"return an item from order {number}")
    assert "can't be returned" not in shopper.texts()  # delivered: the return window is open


async def test_a_delivery_problem_is_told_once_and_a_later_scan_carries_on(shop, fake_easypost):
    shopper = await WebShopper.start(shop)
    number, tracker = await shipped(shop, shopper, fake_easypost)
    await hook(shop, fake_easypost.tracker_event(tracker, "in_transit"))
    assert (await hook(shop, fake_easypost.tracker_event(tracker, "failure"))).status == 200
    await hook(shop, fake_easypost.tracker_event(tracker, "failure"))  # reported again
    assert (await order_of(shop, number)).tracking_status == "failure"
    texts = await chat(shopper, "reports a problem")
    await hook(shop, fake_easypost.tracker_event(tracker, "out_for_delivery"))
    texts = await chat(shopper, "out for delivery")
    assert sum(f"UPS reports a problem delivering order #{number}" in t for t in texts) == 1
    assert sum("out for delivery" in t for t in texts) == 1
    assert (await order_of(shop, number)).tracking_status == "out_for_delivery"


async def test_forged_unsigned_and_unknown_tracker_events(shop, fake_easypost):
    body = event_body("tracker.updated", {"id": "trk_nobody", "tracking_code": "9400NOBODY", "status": "delivered"})
    assert (await hook(shop, body, sig="")).status == 403
    assert (await hook(shop, body, sig=easypost_signature(body, "another-secret"))).status == 403
    assert (await hook(shop, body, sig=easypost_signature(body).upper())).status == 403
    resp = await hook(shop, body + b" ", sig=easypost_signature(body))
    assert resp.status == 403 and "EasyPost webhook refused" in (await resp.json())["error"]
    assert (await hook(shop, b"not json", sig="")).status == 403
    # Signed with our secret, but no event we can read: 400.
    resp = await hook(shop, b"not json", sig=easypost_signature(b"not json"))
    assert resp.status == 400 and "not JSON" in (await resp.json())["error"]
    resp = await hook(shop, b"{}")
    assert resp.status == 400 and "not an EasyPost event" in (await resp.json())["error"]
    assert await events(shop) == 0
    # A signed update for a tracker that is none of ours: recorded, ignored, 200.
    resp = await hook(shop, body)
    assert resp.status == 200 and await events(shop) == 1


async def test_the_store_shipping_has_no_easypost_webhook(client):
    body = event_body("tracker.updated", {"id": "trk_1", "status": "delivered"})
    assert (await hook(client, body)).status == 404


async def test_a_whatsapp_shopper_is_told_on_whatsapp(phone_shop, fake_twilio, fake_easypost):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", "+14155550311")
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await wa.say("checkout")
    out = await wa.say(ADDRESS)
    assert "receipt" in out, out
    out = await wa.say("skip")
    assert "Arrives by" in out and "179 N HARBOR DR" in out, out
    out = await wa.say("yes")
    number = int(re.search(r"Order #(\d+) is placed", out).group(1))
    await pay(phone_shop, re.search(r"https://shop\.example\.com(/pay/[^\s)]+)", out).group(1))
    await wa.replies()
    resp = await ship(phone_shop, number, {"carrier": "USPS", "tracking_number": "9400111899223456789012"})
    assert resp.status == 200
    tracker = (await resp.json())["tracker"]
    assert f"order #{number} has shipped with USPS" in await wa.replies()

    await hook(phone_shop, fake_easypost.tracker_event(tracker, "out_for_delivery"))
    assert f"Order #{number} is out for delivery with USPS" in await wa.replies()
    delivered = fake_easypost.tracker_event(tracker, "delivered")
    await hook(phone_shop, delivered)
    assert f"Order #{number} has been delivered" in await wa.replies()
    await hook(phone_shop, delivered)
    await hook(phone_shop, fake_easypost.tracker_event(tracker, "in_transit"))
    assert await wa.replies() == ""  # a replay and a late update: nothing more


async def test_outside_whatsapps_window_an_update_goes_as_the_utility_template(
    aiohttp_client, channel_settings, recognizer, fake_twilio, fake_easypost
):
    template = "HX" + "0" * 32
    settings = with_easypost(channel_settings, fake_easypost, whatsapp_order_update_template_sid=template)
    client = await aiohttp_client(create_app(settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+14155550312")
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await wa.say("checkout")
    await wa.say(ADDRESS)
    await wa.say("skip")
    out = await wa.say("yes")
    number = int(re.search(r"Order #(\d+) is placed", out).group(1))
    await pay(client, re.search(r"https://shop\.example\.com(/pay/[^\s)]+)", out).group(1))
    resp = await ship(client, number, {"carrier": "USPS", "tracking_number": "9400111899223456789013"})
    tracker = (await resp.json())["tracker"]
    await wa.replies()
    await client.app[DB].run(
        lambda s: [  # the shopper last wrote two days ago: WhatsApp's 24 hours are over
            setattr(m, "created_at", utcnow() - timedelta(days=2))
            for m in s.exec(select(MessageRecord).where(MessageRecord.direction == "in")).all()
        ]
    )
    await hook(client, fake_easypost.tracker_event(tracker, "delivered"))
    await wa.replies()
    sent = wa.mine()[-1]
    assert sent["content_sid"] == template, sent


async def test_messenger_gets_updates_with_its_tag_outside_the_window(phone_shop, fake_graph, fake_easypost):
    fb = MessengerShopper(phone_shop, fake_graph, "PSID-EASYPOST")
    await fb.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await fb.say("checkout")
    await fb.say(ADDRESS)
    await fb.say("Skip", quick_reply="Skip")
    sent = await fb.say("yes", quick_reply="Yes")
    number = int(re.search(r"Order #(\d+)", MessengerShopper.texts(sent)).group(1))
    order = await order_of(phone_shop, number)
    await pay(phone_shop, order.payment_url.removeprefix("https://shop.example.com"))
    resp = await ship(phone_shop, number, {"carrier": "FedEx", "tracking_number": "123456789012"})
    tracker = (await resp.json())["tracker"]
    await fb.replies()
    await phone_shop.app[DB].run(
        lambda s: [  # the shopper last wrote three days ago
            setattr(m, "created_at", utcnow() - timedelta(days=3))
            for m in s.exec(select(MessageRecord).where(MessageRecord.direction == "in")).all()
        ]
    )
    await hook(phone_shop, fake_easypost.tracker_event(tracker, "delivered"))
    sent = await fb.replies()
    delivered = [m for m in sent if "has been delivered" in MessengerShopper.texts([m])]
    assert delivered, sent
    assert all(m["messaging_type"] == "MESSAGE_TAG" and m["tag"] == "POST_PURCHASE_UPDATE" for m in delivered)


# --- returns ---------------------------------------------------------------------------------------


async def test_a_return_gets_a_label_in_chat_and_is_refunded_when_the_carrier_scans_it(
    aiohttp_client, settings, recognizer, fake_easypost, fake_stripe
):
    config = with_easypost(
        settings,
        fake_easypost,
        payments="stripe",
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_api_base=fake_stripe.url,
    )
    shop = await aiohttp_client(create_app(config, recognizer))
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")  # $79.00
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    await shopper.say("skip")
    await shopper.tap("Yes")
    number = int(re.search(r"Order #(\d+) is placed", shopper.texts()).group(1))
    session = next(iter(fake_stripe.sessions.values()))
    paid = stripe_event("checkout.session.completed", fake_stripe.completed(session["id"], 7900, payment_intent="pi_9"))
    resp = await shop.post(
        "/webhooks/stripe",
        data=paid,
        headers={"Stripe-Signature": stripe_signature(paid), "Content-Type": "application/json"},
    )
    assert resp.status == 200 and (await order_of(shop, number)).status == "paid"
    resp = await ship(shop, number, {"carrier": "UPS", "tracking_number": TRACKING})
    await hook(shop, fake_easypost.tracker_event((await resp.json())["tracker"], "delivered"))

    await shopper.say(f"I want to return something from order {number}")
    await shopper.say("Doesn't fit")
    reply = shopper.last[-1]
    reference = re.search(r"Reference: (R-\d+-[0-9A-F]{6})", reply["text"]).group(1)
    assert "prepaid return label" in reply["text"] and "Print the label" in reply["text"]
    [label] = reply["links"]
    assert label["title"] == "Print return label" and label["url"].endswith(".pdf")

    returned = fake_easypost.posted("/v2/shipments")[-1]
    params = returned["json"]["shipment"]
    assert params["is_return"] is True and params["options"] == {"label_format": "PDF"}
    assert params["from_address"] == {"id": FROM_ADDRESS_ID} and params["to_address"]["zip"] == "90277"
    assert returned["headers"]["Idempotency-Key"] == f"return-{reference}-shipment"
    [bought] = [r for r in fake_easypost.requests if r["path"].endswith("/buy")]
    assert bought["headers"]["Idempotency-Key"] == f"return-{reference}-buy"
    shipment = list(fake_easypost.shipments.values())[-1]
    assert shipment["to_address"] == {"id": FROM_ADDRESS_ID}  # EasyPost sends it back to the shop
    row = await shop.app[DB].run(lambda s: s.exec(select(ReturnRequest)).one())
    assert row.status == "label_sent" and row.label_url == label["url"]
    assert fake_stripe.refunds == []

    return_tracker = shipment["tracker"]["id"]
    assert row.tracker_ref == return_tracker
    await hook(shop, fake_easypost.tracker_event(return_tracker, "pre_transit"))
    assert fake_stripe.refunds == []  # a label printed is not a parcel sent
    scanned = fake_easypost.tracker_event(return_tracker, "in_transit")
    assert (await hook(shop, scanned)).status == 200
    [refund] = fake_stripe.posted("/v1/refunds")
    assert refund["form"]["payment_intent"] == "pi_9" and refund["form"]["amount"] == "7900"
    assert refund["headers"]["Idempotency-Key"] == f"return-{reference}-refund"
    texts = await chat(shopper, "refund of $79.00")
    assert sum(f"The carrier has your return {reference}" in t for t in texts) == 1
    await hook(shop, scanned)  # a retry
    await hook(shop, fake_easypost.tracker_event(return_tracker, "delivered"))  # it reaches us
    assert len(fake_stripe.posted("/v1/refunds")) == 1
    row = await shop.app[DB].run(lambda s: s.exec(select(ReturnRequest)).one())
    assert row.status == "in_transit"
