"""Checkout and payment end to end through the web chat API and the sandbox pay page: what is
charged, when it arrives, where the receipt goes, and that only an order awaiting payment is paid."""
from __future__ import annotations

import re

from sqlmodel import select

from bot.server import DB
from bot.store.models import MessageRecord, Order
from tests.fakes.web_shopper import WebShopper

ADDRESS = "221 Baker Street, London NW1 6XE"


async def add(shopper: WebShopper, text: str) -> None:
    await shopper.say(text)
    while "Added" not in shopper.texts():
        assert shopper.buttons(), shopper.texts()
        await shopper.tap(shopper.buttons()[0])


async def place_order(shopper: WebShopper, contact: str = "skip") -> tuple[int, str]:
    """Check out the cart to ADDRESS; returns the order number and the pay link's path."""
    await shopper.say("checkout")
    if "saved address" in shopper.texts():
        await shopper.tap("Yes")
    else:
        await shopper.say(ADDRESS)
    if "receipt" in shopper.texts():
        await shopper.say(contact)
    assert "Place the order?" in shopper.texts(), shopper.texts()
    await shopper.tap("Yes")
    match = re.search(r"Order #(\d+) is placed", shopper.texts())
    assert match, shopper.texts()
    url = shopper.last[-1]["links"][0]["url"]
    return int(match.group(1)), url.removeprefix("http://shop.test")


async def test_a_cancelled_order_cannot_be_paid(shopper, client):
    await add(shopper, "add the linen sundress size S")
    number, path = await place_order(shopper)
    page = await client.get(path)
    assert page.status == 200 and "Pay now" in await page.text()

    await shopper.say(f"cancel order {number}")
    await shopper.tap("Yes")
    assert "is cancelled" in shopper.texts()

    # The page was opened before the cancel: its "Pay now" posts to a cancelled order.
    refused = await client.post(path.split("?")[0], data={"sig": path.split("sig=")[1]})
    body = await refused.text()
    assert refused.status == 409, body
    assert "cancelled" in body and "Nothing was charged" in body and "Payment received" not in body
    order = await client.app[DB].run(lambda s: s.exec(select(Order).order_by(Order.id.desc())).first())
    assert order.status == "cancelled"
    assert not [m for m in await shopper.history() if m["text"] and "Payment received" in m["text"]]
    # Opening the link again says so too.
    again = await client.get(path)
    assert "cancelled" in await again.text() and "Pay now" not in await again.text()


async def test_paying_twice_charges_once_and_tells_the_shopper_once(shopper, client):
    await add(shopper, "add the linen sundress size S")
    number, path = await place_order(shopper)
    form = {"sig": path.split("sig=")[1]}
    paid = await client.post(path.split("?")[0], data=form)
    assert paid.status == 200 and "Payment received" in await paid.text()
    second = await client.post(path.split("?")[0], data=form)
    assert second.status == 409 and "already paid" in await second.text()
    notices = await client.app[DB].run(lambda s: s.exec(
        select(MessageRecord).where(MessageRecord.idempotency_key == f"paid:{number}")).all())
    assert len(notices) == 1 and f"#{number}" in notices[0].text


async def test_the_paid_status_and_the_notice_commit_together(database_url):
    """If queueing the notice fails, the order is not marked paid either (and can be paid again)."""
    from bot.store.database import Database
    from bot.store.seed import DEMO_CUSTOMER_ID
    from integrations.orders import StoreOrders

    db = Database(database_url)
    db.create_schema()
    order_id = await db.run(lambda s: _pending_order(s, DEMO_CUSTOMER_ID, "pay_test_1"))
    orders = StoreOrders(db)

    def crash(session, customer_id, order):
        raise RuntimeError("the process died here")

    try:
        await orders.mark_paid("pay_test_1", crash)
    except RuntimeError:
        pass
    assert (await db.run(lambda s: s.get(Order, order_id))).status == "pending_payment"
    assert (await orders.mark_paid("pay_test_1")).outcome == "paid"
    assert (await orders.mark_paid("pay_test_1")).outcome == "not_payable"
    assert (await orders.mark_paid("pay_nope")).outcome == "unknown"
    db.close()


def _pending_order(session, customer_id: str, reference: str) -> int:
    from bot.store.models import Customer

    session.add(Customer(id=customer_id))
    session.flush()
    order = Order(customer_id=customer_id, payment_ref=reference, total_cents=1000)
    session.add(order)
    session.flush()
    return order.id
