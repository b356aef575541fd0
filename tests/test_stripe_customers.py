"""A returning shopper's saved card: one Stripe Customer per shopper, made once with an
idempotency key and kept on our customer, and every Checkout Session for that Customer with
Checkout's offer to save the card (so the next checkout shows it). No card data reaches us."""

from __future__ import annotations

from bot.store.models import Customer
from service.app import DB
from tests.fakes.web_shopper import WebShopper
from tests.test_stripe_payments import SESSIONS, add, checkout, order_of


async def test_a_returning_shopper_checks_out_as_the_same_stripe_customer(stripe_client, fake_stripe):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    first = await checkout(shopper)
    await add(shopper, "add the linen sundress size S")
    second = await checkout(shopper)

    [made] = fake_stripe.posted("/v1/customers")
    customer_id = (await order_of(stripe_client, first)).customer_id
    assert made["headers"]["Idempotency-Key"] == f"customer-{customer_id}-create"
    assert made["form"]["metadata[customer_id]"] == customer_id and "email" not in made["form"]
    [stripe_customer] = fake_stripe.customers
    kept = await stripe_client.app[DB].run(lambda s: s.get(Customer, customer_id).stripe_customer_id)
    assert kept == stripe_customer

    sessions = fake_stripe.posted(SESSIONS)
    assert [s["headers"]["Idempotency-Key"] for s in sessions] == [
        f"order-{first}-checkout",
        f"order-{second}-checkout",
    ]
    for created in sessions:
        form = created["form"]
        assert form["customer"] == stripe_customer
        assert form["saved_payment_method_options[payment_method_save]"] == "enabled"
        assert not any("card" in key or "payment_method_data" in key for key in form)
    assert {s["customer"] for s in fake_stripe.sessions.values()} == {stripe_customer}


async def test_two_shoppers_get_two_customers_and_a_receipt_email_goes_to_stripe(stripe_client, fake_stripe):
    ana, ben = await WebShopper.start(stripe_client), await WebShopper.start(stripe_client)
    await add(ana, "add the linen sundress size S")
    await ana.say("checkout")
    await ana.say("221 Baker Street, London NW1 6XE")
    await ana.say("ana@example.com")
    await ana.tap("Yes")
    await add(ben, "add the linen sundress size S")
    await checkout(ben)
    made = fake_stripe.posted("/v1/customers")
    assert [m["form"].get("email") for m in made] == ["ana@example.com", None]
    assert len({m["headers"]["Idempotency-Key"] for m in made}) == 2
    assert len(fake_stripe.customers) == 2


async def test_stripe_down_when_the_customer_is_made_the_order_waits_and_one_customer_is_made(
    stripe_client, fake_stripe
):
    shopper = await WebShopper.start(stripe_client)
    await add(shopper, "add the linen sundress size S")
    fake_stripe.fail_next(2)  # the customer's creation, and the client's own retry of it
    number = await checkout(shopper)
    assert "will follow here in a moment" in shopper.texts()
    await shopper.say(f"where is order {number}")
    assert (await order_of(stripe_client, number)).payment_url
    assert len(fake_stripe.customers) == 1 and len(fake_stripe.sessions) == 1
