"""Stripe Radar through the real app and a fake Stripe: a completed payment's risk is read from
its payment intent's latest charge and kept on the order; a normal one confirms the order, an
elevated or highest one holds it for a person (a handoff ticket, a neutral word to the shopper)
until `python app.py order approve` confirms it; Stripe down while reading it leaves the event for a retry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from bot.store.models import HandoffTicket, MessageRecord, ProviderEvent
from service.app import DB, SERVICES, SETTINGS, create_app
from tests.fakes.stripe import event_body, with_stripe
from tests.fakes.web_shopper import WebShopper
from tests.test_stripe_payments import (
    add,
    checkout,
    count,
    order_of,
    post_event,
)

INTENTS = "/v1/payment_intents/"
ROOT = Path(__file__).resolve().parent.parent


async def approve(client, number: str) -> subprocess.CompletedProcess:
    """`python app.py order approve NUMBER` against the app's store."""
    env = {**os.environ, "DATABASE_URL": client.app[SETTINGS].database_url, "LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "app.py", "order", "approve", number],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def history_text(shopper: WebShopper, wanted: str) -> str:
    for _ in range(200):
        history = " ".join(m["text"] or "" for m in await shopper.history())
        if wanted in history:
            return history
        await asyncio.sleep(0.05)
    return history


async def test_a_normal_risk_payment_confirms_the_order_and_keeps_the_risk(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(stripe_client, number)).payment_ref
    body = event_body("checkout.session.completed", fake_stripe.completed(session_id, 7900, payment_intent="pi_ok"))
    assert (await post_event(stripe_client, body)).status == 200

    [read] = [r for r in fake_stripe.requests if r["path"].startswith(INTENTS)]
    assert read["path"] == INTENTS + "pi_ok" and "latest_charge" in read["form"].values()
    order = await order_of(stripe_client, number)
    assert (order.status, order.payment_risk_level, order.payment_risk_score) == ("paid", "normal", 12)
    assert await count(stripe_client, HandoffTicket) == 0
    assert f"Payment received for order #{number}" in await history_text(shopper, "Payment received")


@pytest.mark.parametrize("level, score", [("elevated", 67), ("highest", 91)])
async def test_a_risky_payment_goes_to_a_person_instead_of_confirming(stripe_client, fake_stripe, level, score):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(stripe_client, number)).payment_ref
    completed = fake_stripe.completed(session_id, 7900, payment_intent="pi_risky", risk_level=level, risk_score=score)
    body = event_body("checkout.session.completed", completed)
    assert (await post_event(stripe_client, body)).status == 200
    assert (await post_event(stripe_client, body)).status == 200  # Stripe sends it again: nothing more
    assert len([r for r in fake_stripe.requests if r["path"].startswith(INTENTS)]) == 1  # not read again

    order = await order_of(stripe_client, number)
    assert (order.status, order.payment_risk_level, order.payment_risk_score) == ("payment_review", level, score)
    assert order.payment_capture_ref == "pi_risky"
    [ticket] = await stripe_client.app[DB].run(lambda s: list(s.exec(select(HandoffTicket)).all()))
    assert ticket.trigger == "payment_risk" and ticket.topic == "payment" and ticket.status in ("queued", "assigned")
    review = ticket.summary["payment_review"]
    assert (review["order"], review["risk_level"], review["risk_score"]) == (number, level, score)
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 0
    history = await history_text(shopper, "checking your payment")
    assert f"We're checking your payment for order #{number}; a person will confirm it here shortly." in history
    assert "Payment received" not in history and "fraud" not in history.lower() and "risk" not in history.lower()
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key == f"payment-review:{number}") == 1

    # The person checked it and confirms from the command line: paid, and the shopper hears so as
    # for any payment; a second confirmation, or an unknown order, is refused.
    approved = await approve(stripe_client, str(number))
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout) == {"order": number, "status": "paid"}
    again, unknown = await approve(stripe_client, str(number)), await approve(stripe_client, "99999")
    assert again.returncode == 2 and "is paid, not held for review" in again.stderr
    assert unknown.returncode == 2 and "no order #99999" in unknown.stderr
    assert (await order_of(stripe_client, number)).status == "paid"
    assert await count(stripe_client, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 1


async def test_a_held_order_cancelled_is_refunded(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(stripe_client, number)).payment_ref
    completed = fake_stripe.completed(session_id, 7900, payment_intent="pi_held", risk_level="elevated")
    assert (await post_event(stripe_client, event_body("checkout.session.completed", completed))).status == 200
    services = stripe_client.app[SERVICES]
    order = await order_of(stripe_client, number)
    await services.orders.cancel(order.customer_id, number, services.payments)
    [refund] = fake_stripe.posted("/v1/refunds")
    assert refund["form"]["payment_intent"] == "pi_held"
    assert (await order_of(stripe_client, number)).status == "cancelled"


async def test_stripe_down_while_reading_the_risk_leaves_the_event_for_its_retry(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(stripe_client, number)).payment_ref
    body = event_body("checkout.session.completed", fake_stripe.completed(session_id, 7900, risk_level="elevated"))
    fake_stripe.fail_for(3600)
    answer = await post_event(stripe_client, body)
    assert answer.status == 503
    assert await count(stripe_client, ProviderEvent) == 0
    assert (await order_of(stripe_client, number)).status == "pending_payment"
    fake_stripe.down_until = 0.0
    assert (await post_event(stripe_client, body)).status == 200
    assert (await order_of(stripe_client, number)).status == "payment_review"


async def test_an_intent_stripe_does_not_know_confirms_without_a_risk(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(stripe_client, number)).payment_ref
    completed = fake_stripe.completed(session_id, 7900, payment_intent="pi_gone")
    del fake_stripe.intents["pi_gone"]  # Stripe answers 404: asking again would not help
    assert (await post_event(stripe_client, event_body("checkout.session.completed", completed))).status == 200
    order = await order_of(stripe_client, number)
    assert (order.status, order.payment_risk_level, order.payment_risk_score) == ("paid", None, None)


async def test_the_agent_console_shows_the_payment_to_check(
    aiohttp_server,
    aiohttp_client,
    settings,
    recognizer,
    fake_stripe,
    browser,
):
    admin = "admin-secret-for-radar"
    server = await aiohttp_server(create_app(with_stripe(settings, fake_stripe, admin_token=admin), recognizer))
    client = await aiohttp_client(server)
    created = await client.post(
        "/api/handoffs/agents", json={"name": "Dana", "languages": ["en"]}, headers={"Authorization": f"Bearer {admin}"}
    )
    token = (await created.json())["token"]
    shopper = await WebShopper.start(client)
    await add(shopper, "add the linen sundress size S")
    number = await checkout(shopper)
    session_id = (await order_of(client, number)).payment_ref
    completed = fake_stripe.completed(session_id, 7900, risk_level="elevated", risk_score=72)
    assert (await post_event(client, event_body("checkout.session.completed", completed))).status == 200

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url("/admin/agents")))
    await page.fill("#token", token)
    await page.click("#sign-in-button")
    await page.wait_for_function("document.getElementById('me-name').textContent.includes('Dana')")
    await page.locator("#queue button").first.click()
    await page.wait_for_function("document.getElementById('summary').textContent.includes('Payment to check')")
    summary = await page.locator("#summary").inner_text()
    assert f"#{number} $79.00 · risk elevated (72/100)" in summary
    assert f"python app.py order approve {number}" in summary and "payment_risk" in summary
    assert not errors, errors
