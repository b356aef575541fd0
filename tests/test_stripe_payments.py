"""Stripe Checkout end to end through the real app, on the web chat and WhatsApp, against a fake
Stripe: the session the shopper is sent to, signed webhooks that pay, expire or fail an order
once, refused forgeries and replays, and a provider outage that charges nobody twice."""

from __future__ import annotations

import asyncio
import re
import time

from sqlmodel import func, select

from bot.store.models import MessageRecord, Order, OrderItem, ProviderEvent, Variant
from service.app import DB, create_app
from tests.dialogs.test_checkout import ADDRESS, add
from tests.fakes.phone import TwilioShopper
from tests.fakes.stripe import SECRET_KEY, event_body, stripe_signature, with_stripe
from tests.fakes.web_shopper import WebShopper

SESSIONS = "/v1/checkout/sessions"
NUMBER = "+15551234567"


async def checkout(shopper: WebShopper) -> int:
    """Check out the cart to ADDRESS, without a receipt contact; returns the order number."""
    await shopper.say("checkout")
    if "saved address" in shopper.texts():
        await shopper.tap("Yes")
    else:
        await shopper.say(ADDRESS)
    if "receipt" in shopper.texts():
        await shopper.say("skip")
    assert "Place the order?" in shopper.texts(), shopper.texts()
    await shopper.tap("Yes")
    match = re.search(r"Order #(\d+) is placed", shopper.texts())
    assert match, shopper.texts()
    return int(match.group(1))


async def post_event(client, body: bytes, signature: str | None = None):
    return await client.post(
        "/webhooks/stripe",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature(body) if signature is None else signature,
        },
    )


async def order_of(client, number: int) -> Order:
    return await client.app[DB].run(lambda s: s.get(Order, number - 1000))


async def count(client, model, *where) -> int:
    return await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(model).where(*where)).one())


async def stock(client, sku: str) -> int:
    return await client.app[DB].run(lambda s: s.get(Variant, sku).stock)


async def test_checkout_sends_the_stripe_session_and_a_signed_completion_pays_once(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")  # $79.00, shipping free
    number = await checkout(shopper)

    [created] = fake_stripe.posted(SESSIONS)
    form, headers = created["form"], created["headers"]
    session = next(iter(fake_stripe.sessions.values()))
    assert shopper.last[-1]["links"][0]["url"] == session["url"]
    assert headers["Idempotency-Key"] == f"order-{number}-checkout"
    assert headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert form["mode"] == "payment" and form["metadata[order_number]"] == str(number)
    assert form["client_reference_id"] == str(number)
    assert form["payment_intent_data[metadata][order_number]"] == str(number)
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == "7900"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert "Linen" in form["line_items[0][price_data][product_data][name]"]
    assert form["shipping_options[0][shipping_rate_data][fixed_amount][amount]"] == "0"
    assert form["success_url"].startswith("http://shop.test/payments/done")
    assert form["cancel_url"].startswith("http://shop.test/payments/cancelled")
    assert int(form["expires_at"]) >= time.time() + 30 * 60
    order = await order_of(stripe_client, number)
    assert order.payment_ref == session["id"] and order.status == "pending_payment"

    body = event_body("checkout.session.completed", fake_stripe.completed(session["id"], 7900, payment_intent="pi_1"))
    answer = await post_event(stripe_client, body)
    assert answer.status == 200, await answer.text()
    order = await order_of(stripe_client, number)
    assert order.status == "paid" and order.payment_capture_ref == "pi_1"
    # Stripe retries, or sends the event twice: nothing more happens.
    assert (await post_event(stripe_client, body)).status == 200
    assert (await post_event(stripe_client, body, stripe_signature(body, timestamp=int(time.time()) - 5))).status == 200
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 1
    assert await count(stripe_client, ProviderEvent) == 1
    for _ in range(200):  # the notice reaches the chat
        history = " ".join(m["text"] or "" for m in await shopper.history())
        if f"Payment received for order #{number}" in history:
            break
        await asyncio.sleep(0.05)
    assert history.count(f"Payment received for order #{number}") == 1


async def test_forged_and_replayed_events_are_refused_and_change_nothing(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(stripe_client, number)).payment_ref
    body = event_body("checkout.session.completed", fake_stripe.completed(session_id, 7900))

    forged = await post_event(stripe_client, body, stripe_signature(body, secret="whsec_guessed"))
    replayed = await post_event(stripe_client, body, stripe_signature(body, timestamp=int(time.time()) - 600))
    unsigned = await post_event(stripe_client, body, "")
    altered = body.replace(b'"amount_total": 7900', b'"amount_total": 1')
    tampered = await post_event(stripe_client, altered, stripe_signature(body))
    unsigned_junk = await post_event(stripe_client, b"{not json", "")
    assert [r.status for r in (forged, replayed, unsigned, tampered, unsigned_junk)] == [403] * 5
    assert "Stripe webhook refused" in (await forged.json())["error"]
    # Signed by Stripe, but no event we can read: 400.
    not_json = await post_event(stripe_client, b"{not json")
    not_an_event = await post_event(stripe_client, b'{"id": "evt_1", "type": "checkout.session.completed"}')
    assert [r.status for r in (not_json, not_an_event)] == [400] * 2
    assert "not JSON" in (await not_json.json())["error"]
    assert "not a Stripe event" in (await not_an_event.json())["error"]
    assert (await order_of(stripe_client, number)).status == "pending_payment"
    assert await count(stripe_client, ProviderEvent) == 0
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 0


async def test_a_wrong_amount_does_not_pay_and_an_expired_session_cancels_and_frees_stock(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    order = await order_of(stripe_client, number)
    sku = await stripe_client.app[DB].run(
        lambda s: s.exec(select(OrderItem.variant_sku).where(OrderItem.order_id == order.id)).one()
    )
    held = await stock(stripe_client, sku)

    short = event_body("checkout.session.completed", fake_stripe.completed(order.payment_ref, 7800))
    assert (await post_event(stripe_client, short)).status == 200
    euros = event_body("checkout.session.completed", fake_stripe.completed(order.payment_ref, 7900, currency="eur"))
    assert (await post_event(stripe_client, euros)).status == 200
    assert (await order_of(stripe_client, number)).status == "pending_payment"

    declined = event_body(
        "payment_intent.payment_failed",
        {"id": "pi_declined", "object": "payment_intent", "metadata": {"order_number": str(number)}},
    )
    assert (await post_event(stripe_client, declined)).status == 200
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key.startswith("payment-failed:")) == 1

    expired = event_body("checkout.session.expired", {**fake_stripe.sessions[order.payment_ref], "status": "expired"})
    assert (await post_event(stripe_client, expired)).status == 200
    assert (await order_of(stripe_client, number)).status == "cancelled"
    assert await stock(stripe_client, sku) == held + 1
    # A late, out-of-order completion does not bring a cancelled order back, nor free stock twice.
    late = event_body("checkout.session.completed", fake_stripe.completed(order.payment_ref, 7900))
    assert (await post_event(stripe_client, late)).status == 200
    again = event_body("checkout.session.expired", {**fake_stripe.sessions[order.payment_ref], "status": "expired"})
    assert (await post_event(stripe_client, again)).status == 200
    assert (await order_of(stripe_client, number)).status == "cancelled"
    assert await stock(stripe_client, sku) == held + 1
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 0
    # An event for an order we do not know: answered, logged, nothing else.
    unknown = event_body(
        "checkout.session.completed",
        {"id": "cs_unknown", "payment_status": "paid", "amount_total": 100, "currency": "usd"},
    )
    assert (await post_event(stripe_client, unknown)).status == 200


async def test_stripe_down_at_checkout_the_order_waits_and_one_session_is_made(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    fake_stripe.fail_for(3600)
    number = await checkout(shopper)
    assert "will follow here in a moment" in shopper.texts() and not shopper.last[-1]["links"]
    order = await order_of(stripe_client, number)
    assert order.status == "pending_payment" and order.payment_url is None

    await shopper.say(f"where is order {number}")  # still down
    assert "still isn't answering" in shopper.texts(), shopper.texts()
    fake_stripe.down_until = 0.0
    await shopper.say(f"where is order {number}")
    session = next(iter(fake_stripe.sessions.values()))
    assert [link["url"] for m in shopper.last for link in m["links"]] == [session["url"]], shopper.texts()
    await shopper.say(f"where is order {number}")
    assert len(fake_stripe.sessions) == 1
    keys = {r["headers"]["Idempotency-Key"] for r in fake_stripe.posted(SESSIONS)}
    assert keys == {f"order-{number}-checkout"}
    assert (await order_of(stripe_client, number)).payment_ref == session["id"]


async def test_a_discount_is_a_coupon_of_exactly_its_amount(aiohttp_client, settings, recognizer, fake_stripe):
    client = await aiohttp_client(create_app(with_stripe(settings, fake_stripe, discount_codes="VIP20:20"), recognizer))
    shopper = await WebShopper.start(client)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("apply code VIP20")
    number = await checkout(shopper)
    order = await order_of(client, number)
    assert order.discount_cents == 1580
    [coupon] = fake_stripe.posted("/v1/coupons")
    assert coupon["form"]["amount_off"] == "1580" and coupon["headers"]["Idempotency-Key"] == f"order-{number}-coupon"
    [created] = fake_stripe.posted(SESSIONS)
    assert created["form"]["discounts[0][coupon]"].startswith("coupon_")


async def test_whatsapp_checkout_pays_through_stripe(
    aiohttp_client, channel_settings, recognizer, fake_twilio, fake_stripe
):
    client = await aiohttp_client(create_app(with_stripe(channel_settings, fake_stripe), recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await wa.say("checkout")
    await wa.say("10 Downing Street, London SW1A 2AA")
    await wa.say("1")  # skip the receipt
    out = await wa.say("yes")
    session = next(iter(fake_stripe.sessions.values()))
    assert re.search(r"Order #\d+ is placed", out) and f"[Pay now]({session['url']})" in out, out
    number = int(re.search(r"Order #(\d+)", out).group(1))
    total = (await order_of(client, number)).total_cents
    body = event_body("checkout.session.completed", fake_stripe.completed(session["id"], total))
    assert (await post_event(client, body)).status == 200
    assert (await post_event(client, body)).status == 200
    assert f"Payment received for order #{number}" in await wa.replies(settle=0.2)
    assert (await order_of(client, number)).status == "paid"
    await post_event(client, body)
    assert f"Payment received for order #{number}" not in await wa.replies(settle=0.2)


async def test_cancelling_in_chat_refunds_a_paid_order_and_closes_an_unpaid_ones_session(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    paid = await checkout(shopper)
    session_id = (await order_of(stripe_client, paid)).payment_ref
    body = event_body("checkout.session.completed", fake_stripe.completed(session_id, 7900, payment_intent="pi_paid"))
    assert (await post_event(stripe_client, body)).status == 200

    await shopper.say(f"cancel order {paid}")
    await shopper.tap("Yes")
    assert "is cancelled" in shopper.texts(), shopper.texts()
    [refund] = fake_stripe.posted("/v1/refunds")
    assert refund["form"]["payment_intent"] == "pi_paid"
    assert refund["headers"]["Idempotency-Key"] == f"order-{paid}-refund"

    await add(shopper, "add the linen sundress size S")
    unpaid = await checkout(shopper)
    open_session = (await order_of(stripe_client, unpaid)).payment_ref
    await shopper.say(f"cancel order {unpaid}")
    await shopper.tap("Yes")
    assert "is cancelled" in shopper.texts(), shopper.texts()
    assert fake_stripe.sessions[open_session]["status"] == "expired"
    assert len(fake_stripe.posted("/v1/refunds")) == 1
    # Paid in the moment before the session closed: the money goes back, the order stays cancelled.
    late = event_body("checkout.session.completed", fake_stripe.completed(open_session, 7900, payment_intent="pi_late"))
    assert (await post_event(stripe_client, late)).status == 200
    assert (await order_of(stripe_client, unpaid)).status == "cancelled"
    assert [r["form"]["payment_intent"] for r in fake_stripe.posted("/v1/refunds")] == ["pi_paid", "pi_late"]


async def test_the_sandbox_has_no_stripe_webhook(client):
    body = event_body("checkout.session.completed", {"id": "cs_x"})
    assert (await post_event(client, body)).status == 404
