"""Checkout and payment end to end through the web chat API and the sandbox pay page: what is
charged, when it arrives, where the receipt goes, and that only an order awaiting payment is paid."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.delivery.estimates import add_business_days
from bot.i18n import date_text
from bot.store.models import Customer, MessageRecord, Order
from service.app import DB, create_app
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed

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
    url = urlsplit(shopper.last[-1]["links"][0]["url"])
    return int(match.group(1)), f"{url.path}?{url.query}"


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
    notices = await client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(MessageRecord.idempotency_key == f"paid:{number}")).all()
    )
    assert len(notices) == 1 and f"#{number}" in notices[0].text


def arrives(language: str = "en", business_days: int = 6) -> str:
    """The delivery date of an order placed now with the default settings (1 + 5 business days)."""
    today = datetime.now(ZoneInfo("America/New_York")).date()
    return date_text(language, add_business_days(today, business_days))


@pytest.fixture
async def shop(aiohttp_client, settings, recognizer):
    return await aiohttp_client(create_app(changed(settings, discount_codes="WELCOME5:5,VIP20:20"), recognizer))


async def latest_order(client) -> Order:
    return await client.app[DB].run(lambda s: s.exec(select(Order).order_by(Order.id.desc())).first())


async def test_shipping_fee_under_50_and_free_above_with_the_delivery_date(shop):
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the everyday ankle socks")  # $12.00
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    await shopper.say("skip")
    confirm = shopper.texts()
    assert "Subtotal: $12.00 (1 item)" in confirm and "Shipping: $5.99" in confirm and "Total: $17.99" in confirm
    assert f"Arrives by {arrives()}" in confirm and "Receipt to" not in confirm
    await shopper.tap("Yes")
    assert "Order #" in shopper.texts() and "$17.99. That includes $5.99 shipping." in shopper.texts()
    assert f"It arrives by {arrives()}." in shopper.texts()
    order = await latest_order(shop)
    assert (order.total_cents, order.shipping_cents) == (1799, 599)
    assert date_text("en", order.estimated_delivery) == arrives()

    await add(shopper, "add the linen sundress size S")  # $79.00
    await shopper.say("checkout")
    await shopper.tap("Yes")  # the saved address
    await shopper.say("skip")
    assert "Shipping: free" in shopper.texts() and "Total: $79.00" in shopper.texts()
    await shopper.tap("Yes")
    assert "Shipping is free." in shopper.texts()
    assert (await latest_order(shop)).shipping_cents == 0


async def test_discount_codes_any_time_and_during_checkout(shop):
    shopper = await WebShopper.start(shop)
    await shopper.say("apply code NOPE99")
    assert "Sorry, NOPE99 isn't a code we know." in shopper.texts()
    await shopper.say("apply code COMEBACK10")  # the cart reminder's code works for anyone
    assert "Code COMEBACK10 is on your cart: 10% off" in shopper.texts()
    await add(shopper, "add the linen sundress size S")  # $79.00
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    assert "receipt" in shopper.texts()
    # A code in the middle of the checkout: applied, and the checkout carries on where it was.
    await shopper.say("I have a coupon")
    assert shopper.texts() == "What's the code?"
    await shopper.say("vip20")
    assert "Code VIP20 is on your cart: 20% off" in shopper.texts()
    assert "receipt" in shopper.texts() and "shipping address" not in shopper.texts()
    await shopper.say("skip")
    confirm = shopper.texts()
    assert "Code VIP20 (20% off): −$15.80" in confirm and "Total: $63.20" in confirm, confirm
    assert f"Shipping to: {ADDRESS}" in confirm
    await shopper.say("apply code WELCOME5")  # at the confirmation: asked again, with the new total
    assert "Code WELCOME5 (5% off): −$3.95" in shopper.texts() and "Total: $75.05" in shopper.texts()
    await shopper.tap("Yes")
    assert "Code WELCOME5 is applied." in shopper.texts()
    order = await latest_order(shop)
    assert (order.discount_code, order.discount_cents, order.total_cents) == ("WELCOME5", 395, 7505)


async def test_receipt_contact_is_checked_kept_and_offered_next_time(shop):
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    await shopper.say("checkout")
    await shopper.say(ADDRESS)
    await shopper.say("my email")
    assert "doesn't look like an e-mail address or a phone number" in shopper.texts()
    await shopper.say(" Ana.Li@Example.com ")
    assert "Receipt to: ana.li@example.com" in shopper.texts()
    await shopper.tap("Yes")
    order = await latest_order(shop)
    assert order.receipt_contact == "ana.li@example.com"
    customer = await shop.app[DB].run(lambda s: s.get(Customer, order.customer_id))
    assert customer.receipt_contact == "ana.li@example.com"

    await add(shopper, "add the linen sundress size M")
    await shopper.say("checkout")
    await shopper.tap("Yes")
    assert "Send the receipt to ana.li@example.com again?" in shopper.texts()
    await shopper.tap("No")
    await shopper.say("+1 (415) 555-0100")
    assert "Receipt to: +14155550100" in shopper.texts()
    await shopper.tap("Yes")
    assert (await latest_order(shop)).receipt_contact == "+14155550100"


async def test_when_will_it_arrive_gives_the_date(shop):
    shopper = await WebShopper.start(shop)
    await add(shopper, "add the linen sundress size S")
    number, path = await place_order(shopper)
    await shopper.say("when will it arrive?")
    assert f"Order #{number} is waiting for payment" in shopper.texts() and arrives() in shopper.texts()
    await shop.post(path.split("?")[0], data={"sig": path.split("sig=")[1]})
    await shopper.say("when will it arrive?")
    assert shopper.texts() == f"Order #{number} is being packed and arrives by {arrives()}."
    await shopper.say("where is my order?")
    assert f"Order #{number} is paid and being packed" in shopper.texts()
    assert f"It arrives by {arrives()}." in shopper.texts()


async def test_prices_follow_the_currency_setting_in_replies_and_on_the_pay_page(aiohttp_client, settings, recognizer):
    client = await aiohttp_client(create_app(changed(settings, currency="EUR"), recognizer))
    shopper = await WebShopper.start(client)
    await add(shopper, "add the everyday ankle socks")
    assert "for €12.00" in shopper.texts() and "$" not in shopper.texts()
    number, path = await place_order(shopper)
    assert f"Order #{number} is placed: €17.99. That includes €5.99 shipping." in shopper.texts()
    page = await (await client.get(path)).text()
    assert "Amount: €17.99" in page and "$" not in page


async def test_checkout_basics_in_chinese(shop):
    shopper = await WebShopper.start(shop)
    await shopper.say("使用優惠碼 WELCOME5")
    assert shopper.texts() == "已將優惠碼 WELCOME5 套用到您的購物車：結帳時享 5% 折扣。"
    await shopper.say("使用優惠碼 ABCD99")
    assert "抱歉，我們沒有 ABCD99 這個優惠碼" in shopper.texts()
    await shopper.say('/add_to_cart {"product":"SOCK-ANKLE","quantity":1}')
    while "已加入" not in shopper.texts():
        await shopper.tap(shopper.buttons()[0])
    await shopper.say("結帳")
    await shopper.say("台北市信義區松仁路100號")
    await shopper.say("ana@example.com")
    confirm = shopper.texts()
    # US dollars in Taiwan's locale are "US$" (a bare "$" there is the New Taiwan dollar).
    assert "小計：US$12.00（共 1 件）" in confirm and "優惠碼 WELCOME5（5% 折扣）：−US$0.60" in confirm
    assert "運費：US$5.99" in confirm and "總計：US$17.39" in confirm
    assert f"預計 {arrives('zh-TW')} 前送達" in confirm and "收據寄至：ana@example.com" in confirm
    await shopper.tap("是")
    assert "金額 US$17.39。含運費 US$5.99。" in shopper.texts() and "已套用優惠碼 WELCOME5。" in shopper.texts()
    await shopper.say("我的訂單什麼時候會到？")
    assert re.fullmatch(
        r"訂單 #\d+ 等待付款中。下單當天付款的話，預計 .+ 前送達；付款後我們就會包裝出貨。", shopper.texts()
    ), shopper.texts()


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
