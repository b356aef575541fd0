"""PayPal Checkout (Orders v2) end to end through the real app, on the web chat and WhatsApp,
against a fake PayPal: the approve link the shopper is sent, the capture when they come back,
webhooks verified by asking PayPal and processed once, declines, refunds on cancel, refused
forgeries and replays, and an outage that charges nobody twice."""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket

import pytest
from sqlmodel import select

from bot.config import Settings
from bot.store.models import MessageRecord, OrderItem, ProviderEvent
from integrations.paypal_payments import amount_value, cents_of
from service.app import DB, create_app
from tests.dialogs.test_checkout import add
from tests.fakes.paypal import CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, FakePayPal
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed
from tests.test_stripe_payments import checkout, count, order_of, stock

ORDERS = "/v2/checkout/orders"
TOKEN = "/v1/oauth2/token"
VERIFY = "/v1/notifications/verify-webhook-signature"
NUMBER = "+15551234567"


@pytest.fixture
async def fake_paypal():
    fake = await FakePayPal().start()
    yield fake
    await fake.close()


def with_paypal(settings: Settings, fake: FakePayPal, **more) -> Settings:
    return changed(
        settings,
        payments="paypal",
        paypal_client_id=CLIENT_ID,
        paypal_client_secret=CLIENT_SECRET,
        paypal_webhook_id=WEBHOOK_ID,
        paypal_api_base=fake.url,
        **more,
    )


@pytest.fixture
async def paypal_client(aiohttp_client, settings, recognizer, fake_paypal):
    return await aiohttp_client(create_app(with_paypal(settings, fake_paypal), recognizer))


async def post_event(client, fake: FakePayPal, body: bytes, headers: dict[str, str] | None = None):
    return await client.post(
        "/webhooks/paypal",
        data=body,
        headers={"Content-Type": "application/json", **(fake.sign(body) if headers is None else headers)},
    )


async def come_back(client, paypal_order: str):
    """The shopper's browser, sent back by PayPal after approving."""
    return await client.get(f"/payments/paypal/return?order=0&token={paypal_order}&PayerID=FAKEPAYER")


def captures(fake: FakePayPal, paypal_order: str) -> list[dict]:
    return fake.posted(f"{ORDERS}/{paypal_order}/capture")


async def chat_has(shopper: WebShopper, text: str) -> int:
    """How often `text` is in the shopper's chat, once the outbox had time to deliver it."""
    history = ""
    for _ in range(200):
        history = " ".join(m["text"] or "" for m in await shopper.history())
        if text in history:
            break
        await asyncio.sleep(0.05)
    return history.count(text)


async def test_the_shopper_approves_on_paypal_comes_back_and_is_captured_once(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")  # $79.00, shipping free
    number = await checkout(shopper)

    [created] = fake_paypal.posted(ORDERS)
    body, headers = created["json"], created["headers"]
    paypal_order = next(iter(fake_paypal.orders.values()))
    [payer_action] = [link["href"] for link in paypal_order["links"] if link["rel"] == "payer-action"]
    assert shopper.last[-1]["links"][0]["url"] == payer_action
    assert headers["PayPal-Request-Id"] == f"order-{number}-checkout"
    assert headers["Authorization"].removeprefix("Bearer ") in fake_paypal.tokens
    assert body["intent"] == "CAPTURE"
    [unit] = body["purchase_units"]
    assert unit["custom_id"] == unit["invoice_id"] == unit["reference_id"] == str(number)
    assert unit["amount"]["currency_code"] == "USD" and unit["amount"]["value"] == "79.00"
    assert unit["amount"]["breakdown"] == {
        "item_total": {"currency_code": "USD", "value": "79.00"},
        "shipping": {"currency_code": "USD", "value": "0.00"},
    }
    assert unit["items"][0]["quantity"] == "1" and unit["items"][0]["unit_amount"]["value"] == "79.00"
    assert "Linen" in unit["items"][0]["name"]
    context = body["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == f"http://shop.test/payments/paypal/return?order={number}"
    assert context["cancel_url"] == f"http://shop.test/payments/cancelled?order={number}"
    order = await order_of(paypal_client, number)
    assert order.payment_ref == paypal_order["id"] and order.status == "pending_payment"

    fake_paypal.approve(paypal_order["id"])
    page = await come_back(paypal_client, paypal_order["id"])
    assert page.status == 200 and "Payment received" in await page.text()
    [capture] = captures(fake_paypal, paypal_order["id"])
    assert capture["headers"]["PayPal-Request-Id"] == f"order-{number}-capture-1"
    captured = paypal_order["purchase_units"][0]["payments"]["captures"][0]
    order = await order_of(paypal_client, number)
    assert order.status == "paid" and order.payment_capture_ref == captured["id"]

    # Back again (a reload), and PayPal's own events for the same payment: nothing more happens.
    assert "Payment received" in await (await come_back(paypal_client, paypal_order["id"])).text()
    approved = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": paypal_order["id"], "status": "APPROVED"})
    completed = fake_paypal.event("PAYMENT.CAPTURE.COMPLETED", captured)
    assert (await post_event(paypal_client, fake_paypal, approved)).status == 200
    assert (await post_event(paypal_client, fake_paypal, completed)).status == 200
    assert len(captures(fake_paypal, paypal_order["id"])) == 1
    assert await count(paypal_client, ProviderEvent, ProviderEvent.provider == "paypal") == 2
    assert await count(paypal_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 1
    assert await chat_has(shopper, f"Payment received for order #{number}") == 1
    assert len(fake_paypal.posted(TOKEN)) == 1  # the access token is kept until it expires

    # PayPal no longer takes it (revoked): a new one is asked for, and the call made with it.
    fake_paypal.tokens.clear()
    fake_paypal.approve(paypal_order["id"])
    page = await come_back(paypal_client, paypal_order["id"])  # paid: nothing to capture, no call
    assert len(fake_paypal.posted(TOKEN)) == 1
    again = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": paypal_order["id"], "status": "APPROVED"})
    assert (await post_event(paypal_client, fake_paypal, again)).status == 200
    assert [r["status"] for r in fake_paypal.posted(VERIFY)][-2:] == [401, 200]
    assert len(fake_paypal.posted(TOKEN)) == 2


async def test_an_approval_event_captures_when_the_shopper_never_comes_back_and_a_replay_does_nothing(
    paypal_client, fake_paypal
):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    paypal_order = (await order_of(paypal_client, number)).payment_ref
    fake_paypal.approve(paypal_order)

    approved = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": paypal_order, "status": "APPROVED"})
    headers = fake_paypal.sign(approved)
    assert (await post_event(paypal_client, fake_paypal, approved, headers)).status == 200
    assert (await order_of(paypal_client, number)).status == "paid"
    [verify] = fake_paypal.posted(VERIFY)
    assert verify["json"]["webhook_id"] == WEBHOOK_ID
    assert verify["json"]["webhook_event"] == json.loads(approved)
    assert verify["json"]["transmission_id"] == headers["PAYPAL-TRANSMISSION-ID"]
    assert verify["json"]["transmission_sig"] == headers["PAYPAL-TRANSMISSION-SIG"]
    assert verify["json"]["cert_url"] == headers["PAYPAL-CERT-URL"]
    assert verify["json"]["auth_algo"] == "SHA256withRSA"

    # PayPal delivers it again (same transmission, header names in lower case, or a new one):
    # recorded once, captured once.
    lower = {name.lower(): value for name, value in headers.items()}
    assert (await post_event(paypal_client, fake_paypal, approved, lower)).status == 200
    assert fake_paypal.posted(VERIFY)[-1]["json"]["transmission_id"] == headers["PAYPAL-TRANSMISSION-ID"]
    assert (await post_event(paypal_client, fake_paypal, approved)).status == 200
    assert len(captures(fake_paypal, paypal_order)) == 1
    assert await count(paypal_client, ProviderEvent) == 1
    assert await chat_has(shopper, f"Payment received for order #{number}") == 1


async def test_a_declined_funding_source_tells_the_shopper_and_another_approval_pays(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    paypal_order = (await order_of(paypal_client, number)).payment_ref
    # Not approved yet (a hand-typed return address, or PayPal's event ahead of the approval):
    # PayPal refuses the capture; nothing is charged and the order waits.
    page = await come_back(paypal_client, paypal_order)
    assert page.status == 200 and "Nothing was charged" in await page.text()
    early = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": paypal_order, "status": "APPROVED"})
    assert (await post_event(paypal_client, fake_paypal, early)).status == 200
    assert not captures(fake_paypal, paypal_order)  # PayPal said it is not approved: not asked
    assert (await order_of(paypal_client, number)).status == "pending_payment"

    fake_paypal.approve(paypal_order, decline=True)
    page = await come_back(paypal_client, paypal_order)
    assert page.status == 200 and "didn't go through" in html.unescape(await page.text())
    assert (await order_of(paypal_client, number)).status == "pending_payment"
    assert await chat_has(shopper, f"Your payment for order #{number} didn't go through") == 1
    # The same link again, another card: a new capture, under a new PayPal-Request-Id.
    fake_paypal.approve(paypal_order)
    assert "Payment received" in await (await come_back(paypal_client, paypal_order)).text()
    keys = [r["headers"]["PayPal-Request-Id"] for r in captures(fake_paypal, paypal_order)]
    assert keys == [f"order-{number}-capture-1", f"order-{number}-capture-2"]
    assert (await order_of(paypal_client, number)).status == "paid"
    assert await count(paypal_client, MessageRecord, MessageRecord.idempotency_key.startswith("payment-failed:")) == 1
    # PayPal's early approval event, delivered again: it was acted on, so nothing is asked of PayPal.
    before = len(fake_paypal.requests)
    assert (await post_event(paypal_client, fake_paypal, early)).status == 200
    assert [r["path"] for r in fake_paypal.requests[before:]] == [VERIFY]


async def test_an_order_paypal_captured_already_is_read_back_and_paid(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    paypal_order = (await order_of(paypal_client, number)).payment_ref
    fake_paypal.approve(paypal_order)
    captured = fake_paypal.capture_now(paypal_order)  # by a request whose answer we never got

    page = await come_back(paypal_client, paypal_order)
    assert page.status == 200 and "Payment received" in await page.text()
    assert not captures(fake_paypal, paypal_order)  # PayPal's order says COMPLETED: read, not captured again
    assert [r["status"] for r in fake_paypal.requests if r["path"] == f"{ORDERS}/{paypal_order}"] == [200]
    order = await order_of(paypal_client, number)
    assert order.status == "paid" and order.payment_capture_ref == captured["id"]


async def test_forged_altered_and_unsigned_events_are_refused_and_change_nothing(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    paypal_order = (await order_of(paypal_client, number)).payment_ref
    body = fake_paypal.event("PAYMENT.CAPTURE.COMPLETED", fake_paypal.capture_resource(paypal_order, "79.00"))

    genuine = fake_paypal.sign(body)
    forged = {**genuine, "PAYPAL-TRANSMISSION-ID": "a-transmission-paypal-never-sent"}
    guessed = {**genuine, "PAYPAL-TRANSMISSION-SIG": "Z3Vlc3NlZA=="}
    altered = body.replace(b'"value": "79.00"', b'"value": "1.00"')
    missing = {k: v for k, v in genuine.items() if k != "PAYPAL-TRANSMISSION-SIG"}
    answers = [
        await post_event(paypal_client, fake_paypal, body, forged),
        await post_event(paypal_client, fake_paypal, body, guessed),
        await post_event(paypal_client, fake_paypal, altered, genuine),
        await post_event(paypal_client, fake_paypal, body, missing),
        await post_event(paypal_client, fake_paypal, b"{not json", genuine),
    ]
    assert [a.status for a in answers] == [403] * 5
    assert "PayPal webhook refused" in (await answers[0].json())["error"]
    assert "header is missing" in (await answers[3].json())["error"]
    assert len(fake_paypal.posted(VERIFY)) == 3  # the others never verify: nothing to ask about
    # PayPal verifies it, but it is no event we can read: 400.
    not_an_event = await post_event(paypal_client, fake_paypal, b'{"id": "WH-1"}')
    assert not_an_event.status == 400 and "not a PayPal event" in (await not_an_event.json())["error"]
    assert len(fake_paypal.posted(VERIFY)) == 4
    assert (await order_of(paypal_client, number)).status == "pending_payment"
    assert await count(paypal_client, ProviderEvent) == 0
    assert await count(paypal_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 0


async def test_unknown_orders_wrong_amounts_and_denied_captures(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    paypal_order = (await order_of(paypal_client, number)).payment_ref

    # Orders we do not know: recorded, answered 200, nothing captured.
    unknown = fake_paypal.event(
        "PAYMENT.CAPTURE.COMPLETED",
        {"id": "CAPX", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "79.00"}},
    )
    approved = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": "NOTOURS123", "status": "APPROVED"})
    assert (await post_event(paypal_client, fake_paypal, unknown)).status == 200
    assert (await post_event(paypal_client, fake_paypal, approved)).status == 200
    assert not captures(fake_paypal, "NOTOURS123")
    # Odd shapes in a verified event are an unknown order too, never a 500.
    odd = fake_paypal.event("PAYMENT.CAPTURE.COMPLETED", {"id": 7, "supplementary_data": "x", "amount": 5})
    refund = fake_paypal.event("PAYMENT.CAPTURE.REFUNDED", {"id": "R", "links": [{"rel": "up", "href": 3}, "x"]})
    assert (await post_event(paypal_client, fake_paypal, odd)).status == 200
    assert (await post_event(paypal_client, fake_paypal, refund)).status == 200
    assert await count(paypal_client, ProviderEvent) == 4

    # Another amount, or the right number in another currency: not paid.
    for value, currency in (("78.00", "USD"), ("79.00", "EUR"), ("79.001", "USD")):
        short = fake_paypal.event(
            "PAYMENT.CAPTURE.COMPLETED", fake_paypal.capture_resource(paypal_order, value, currency)
        )
        assert (await post_event(paypal_client, fake_paypal, short)).status == 200
    assert (await order_of(paypal_client, number)).status == "pending_payment"

    denied = fake_paypal.event(
        "PAYMENT.CAPTURE.DENIED", {**fake_paypal.capture_resource(paypal_order, "79.00"), "status": "DECLINED"}
    )
    assert (await post_event(paypal_client, fake_paypal, denied)).status == 200
    assert (await post_event(paypal_client, fake_paypal, denied)).status == 200
    assert await chat_has(shopper, f"Your payment for order #{number} didn't go through") == 1

    paid = fake_paypal.event("PAYMENT.CAPTURE.COMPLETED", fake_paypal.capture_resource(paypal_order, "79.00"))
    assert (await post_event(paypal_client, fake_paypal, paid)).status == 200
    assert (await order_of(paypal_client, number)).status == "paid"
    assert await count(paypal_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 1


async def test_paypal_down_at_checkout_the_order_waits_and_one_paypal_order_is_made(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    fake_paypal.fail_for(3600)
    number = await checkout(shopper)
    assert "will follow here in a moment" in shopper.texts() and not shopper.last[-1]["links"]
    order = await order_of(paypal_client, number)
    assert order.status == "pending_payment" and order.payment_url is None

    await shopper.say(f"where is order {number}")  # still down
    assert "still isn't answering" in shopper.texts(), shopper.texts()
    fake_paypal.down_until = 0.0
    await shopper.say(f"where is order {number}")
    [paypal_order] = fake_paypal.orders.values()
    [payer_action] = [link["href"] for link in paypal_order["links"] if link["rel"] == "payer-action"]
    assert [link["url"] for m in shopper.last for link in m["links"]] == [payer_action], shopper.texts()
    await shopper.say(f"where is order {number}")
    assert len(fake_paypal.orders) == 1
    assert {r["headers"].get("PayPal-Request-Id") for r in fake_paypal.posted(ORDERS)} == {f"order-{number}-checkout"}

    # Down again when the shopper comes back from approving: nothing captured, the order waits;
    # PayPal's approval event, once it is up, captures it once.
    fake_paypal.approve(paypal_order["id"])
    fake_paypal.fail_for(3600)
    page = await come_back(paypal_client, paypal_order["id"])
    assert page.status == 503 and "try again in a minute" in await page.text()
    approved = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": paypal_order["id"], "status": "APPROVED"})
    headers = fake_paypal.sign(approved)
    assert (await post_event(paypal_client, fake_paypal, approved, headers)).status == 503  # PayPal delivers again
    assert (await order_of(paypal_client, number)).status == "pending_payment"
    assert await count(paypal_client, ProviderEvent) == 0
    fake_paypal.down_until = 0.0
    assert (await post_event(paypal_client, fake_paypal, approved, headers)).status == 200
    assert (await order_of(paypal_client, number)).status == "paid"
    done = [r for r in captures(fake_paypal, paypal_order["id"]) if r["status"] == 201]
    assert len(done) == 1 and len(paypal_order["purchase_units"][0]["payments"]["captures"]) == 1


async def test_a_discount_is_the_breakdown_discount(aiohttp_client, settings, recognizer, fake_paypal):
    client = await aiohttp_client(create_app(with_paypal(settings, fake_paypal, discount_codes="VIP20:20"), recognizer))
    shopper = await WebShopper.start(client)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("apply code VIP20")
    number = await checkout(shopper)
    assert (await order_of(client, number)).discount_cents == 1580
    [created] = fake_paypal.posted(ORDERS)
    amount = created["json"]["purchase_units"][0]["amount"]
    assert amount["value"] == "63.20"
    assert amount["breakdown"]["discount"] == {"currency_code": "USD", "value": "15.80"}
    assert created["status"] == 201  # PayPal checked that the parts add up to the amount


async def test_cancelling_refunds_a_paid_orders_capture_and_an_unpaid_one_is_never_captured(paypal_client, fake_paypal):
    shopper = await WebShopper.start(paypal_client)
    await add(shopper, "add the linen sundress size S")
    paid = await checkout(shopper)
    paid_order = (await order_of(paypal_client, paid)).payment_ref
    fake_paypal.approve(paid_order)
    await come_back(paypal_client, paid_order)
    capture_id = (await order_of(paypal_client, paid)).payment_capture_ref
    sku = await paypal_client.app[DB].run(
        lambda s: s.exec(select(OrderItem.variant_sku).where(OrderItem.order_id == paid - 1000)).one()
    )
    held = await stock(paypal_client, sku)

    await shopper.say(f"cancel order {paid}")
    await shopper.tap("Yes")
    assert "is cancelled" in shopper.texts(), shopper.texts()
    [refund] = fake_paypal.posted(f"/v2/payments/captures/{capture_id}/refund")
    assert refund["headers"]["PayPal-Request-Id"] == f"order-{paid}-refund" and refund["status"] == 201
    assert await stock(paypal_client, sku) == held + 1
    [made] = fake_paypal.refunds
    refunded = fake_paypal.event("PAYMENT.CAPTURE.REFUNDED", {k: v for k, v in made.items() if k != "capture_id"})
    assert (await post_event(paypal_client, fake_paypal, refunded)).status == 200
    assert (await order_of(paypal_client, paid)).status == "cancelled"

    await add(shopper, "add the linen sundress size S")
    unpaid = await checkout(shopper)
    open_order = (await order_of(paypal_client, unpaid)).payment_ref
    await shopper.say(f"cancel order {unpaid}")
    await shopper.tap("Yes")
    assert "is cancelled" in shopper.texts(), shopper.texts()
    # Approved on PayPal's page left open: coming back, or PayPal's event, captures nothing.
    fake_paypal.approve(open_order)
    page = await come_back(paypal_client, open_order)
    assert page.status == 409 and "nothing was charged" in (await page.text()).lower()
    approved = fake_paypal.event("CHECKOUT.ORDER.APPROVED", {"id": open_order, "status": "APPROVED"})
    assert (await post_event(paypal_client, fake_paypal, approved)).status == 200
    assert not captures(fake_paypal, open_order)
    assert len(fake_paypal.refunds) == 1
    # Captured all the same (the cancel and the capture crossed): the money goes back, the order
    # stays cancelled.
    late = fake_paypal.capture_now(open_order)
    completed = fake_paypal.event("PAYMENT.CAPTURE.COMPLETED", late)
    assert (await post_event(paypal_client, fake_paypal, completed)).status == 200
    assert (await order_of(paypal_client, unpaid)).status == "cancelled"
    assert [r["capture_id"] for r in fake_paypal.refunds] == [capture_id, late["id"]]
    [late_refund] = fake_paypal.posted(f"/v2/payments/captures/{late['id']}/refund")
    assert late_refund["headers"]["PayPal-Request-Id"] == f"order-{unpaid}-refund"


async def test_whatsapp_checkout_pays_through_paypal(
    aiohttp_client, channel_settings, recognizer, fake_twilio, fake_paypal
):
    client = await aiohttp_client(create_app(with_paypal(channel_settings, fake_paypal), recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await wa.say("checkout")
    await wa.say("10 Downing Street, London SW1A 2AA")
    await wa.say("1")  # skip the receipt
    out = await wa.say("yes")
    [paypal_order] = fake_paypal.orders.values()
    [payer_action] = [link["href"] for link in paypal_order["links"] if link["rel"] == "payer-action"]
    assert re.search(r"Order #\d+ is placed", out) and "Pay now" in out and payer_action in out, out
    number = int(re.search(r"Order #(\d+)", out).group(1))
    fake_paypal.approve(paypal_order["id"])
    assert (await come_back(client, paypal_order["id"])).status == 200
    assert f"Payment received for order #{number}" in await wa.replies(settle=0.2)
    assert (await order_of(client, number)).status == "paid"
    await come_back(client, paypal_order["id"])
    assert f"Payment received for order #{number}" not in await wa.replies(settle=0.2)


async def test_without_paypal_its_webhook_and_return_page_are_not_found(client):
    assert (await client.post("/webhooks/paypal", data=b"{}")).status == 404
    assert (await client.get("/payments/paypal/return?token=X")).status == 404


def test_amounts_are_written_as_paypal_takes_them():
    assert amount_value(7900, "USD") == "79.00" and amount_value(5, "EUR") == "0.05"
    assert amount_value(250000, "TWD") == "2500"
    with pytest.raises(ValueError):
        amount_value(250050, "TWD")
    assert cents_of({"currency_code": "USD", "value": "79.00"}, "usd") == 7900
    assert cents_of({"currency_code": "TWD", "value": "2500"}, "TWD") == 250000
    assert cents_of({"currency_code": "USD", "value": "79.001"}, "USD") == -1
    assert cents_of({"currency_code": "EUR", "value": "79.00"}, "USD") == -1
    assert cents_of({"currency_code": "USD", "value": "lots"}, "USD") == -1


async def test_in_the_browser_the_chat_link_opens_paypal_and_paying_there_confirms_in_the_chat(
    aiohttp_server, settings, recognizer, browser, fake_paypal
):
    with socket.socket() as probe:  # the return URL PayPal sends the browser to must be this server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(
        with_paypal(changed(settings, public_base_url=f"http://127.0.0.1:{port}"), fake_paypal), recognizer
    )
    server = await aiohttp_server(app, port=port)
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url("/")))

    async def say(text: str, expect: str) -> None:
        before = await page.locator(".msg.bot").count()
        await page.fill("#chat-input", text)
        await page.click("#send")
        await page.wait_for_function(
            "([n, t]) => [...document.querySelectorAll('.msg.bot')].slice(n).some(m => m.innerText.includes(t))",
            arg=[before, expect],
        )

    await say('/add_to_cart {"product":"DRS-LINEN","size":"S","colour":"beige"}', "Added 1")
    await say("checkout", "shipping address")
    await say("10 Downing Street, London SW1A 2AA", "receipt")
    await say("skip", "Place the order?")
    await say("yes", "is placed")
    pay = page.locator(".msg.bot .links a").last
    href = await pay.get_attribute("href")
    assert href is not None and href.startswith(f"{fake_paypal.url}/checkoutnow?token=")

    async with page.expect_popup() as popup:  # the link opens a new tab, as the widget's links do
        await pay.click()
    paypal = await popup.value
    await paypal.wait_for_load_state()
    assert await paypal.locator("#amount").inner_text() == "79.00 USD"
    await paypal.click("#pay-now")
    await paypal.wait_for_url(re.compile(r"/payments/paypal/return\?"))
    assert "Payment received" in await paypal.locator("h1").inner_text()
    number = re.search(r"order=(\d+)", paypal.url).group(1)
    await page.wait_for_function(
        "t => [...document.querySelectorAll('.msg.bot')].some(m => m.innerText.includes(t))",
        arg=f"Payment received for order #{number}",
    )
    assert len(fake_paypal.posted(f"{ORDERS}/{href.split('token=')[1]}/capture")) == 1
    assert not errors, errors
