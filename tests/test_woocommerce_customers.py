"""WooCommerce's customers: a WhatsApp shopper whose phone is a customer's billing phone (typed
on the website with brackets and dashes) sees the website's orders, their guest orders too, with
status, total and tracking; a web shopper proves an e-mail address with a one-time code (read
from the e-mail the real SMTP lane sent) before any order is shown; a wrong code shows nothing;
WooCommerce down is a clear answer and matches nobody; a returning customer's saved address is
offered at checkout. Against the fake REST API v3 and a real SMTP server on loopback."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from bot.store.models import Customer
from service.app import DB, create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.smtp import FakeSmtp
from tests.fakes.web_shopper import WebShopper
from tests.fakes.woocommerce import FakeWooCommerce, address, customer, later, simple, website_order
from tests.proactive.test_campaigns import changed
from tests.test_order_mail import MAIL_FROM
from tests.test_shopify_customers import code_from_mail, wrong
from tests.test_woocommerce import sync, woo

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PHONE = "+15551234567"
EMAIL = "dana@example.com"
GUEST = "sam@example.com"  # never made an account: guest orders only
HOME = address("12 Main St", "Springfield", "IL", "62701")


@pytest.fixture
async def fake_woo():
    fake = await FakeWooCommerce().start()
    fake.products.append(simple(60, "alpine-fleece-vest", "Alpine Fleece Vest", "Jackets", "AFV-OS", "65.00", 5))
    fake.customers = [
        customer(501, EMAIL, "(555) 123-4567", HOME),
        customer(502, "other@example.com", "(555) 999-4567", None),  # the same last four digits
    ]
    fake.add_orders(
        # Dana's: shipped with the Shipment Tracking meta, one tracked in a note, a guest order
        # placed before the account, and a stranger's guest order whose e-mail only contains hers.
        website_order(
            1001, later(-3 * 24 * 60), [("Cozy Wool Socks", 2, 30)], "completed", 501, EMAIL, "(555) 123-4567", "28.00"
        ),
        website_order(
            1002,
            later(-24 * 60),
            [("Harbor Rain Jacket - L, Navy", 1, 10)],
            "processing",
            501,
            EMAIL,
            "(555) 123-4567",
            "94.00",
            tracking=("UPS", "1Z999AA10123456784"),
        ),
        website_order(900, later(-30 * 24 * 60), [("Canvas Tote", 1, 50)], "completed", 0, EMAIL, "", "25.00"),
        website_order(901, later(-20), [("Linen Shirt", 1, 60)], "processing", 0, "dana@example.com.au", "", "40.00"),
        website_order(2001, later(0), [("Summit Trail Runner", 1, 20)], "processing", 502, "other@example.com"),
        website_order(950, later(-5 * 24 * 60), [("Canvas Tote", 1, 50)], "completed", 0, GUEST, "", "25.00"),
    )
    fake.add_note(1001, "Shipped with USPS, tracking number 9400100000000000000001", later(-2 * 24 * 60))
    yield fake
    await fake.close()


@pytest.fixture
def smtp():
    server = FakeSmtp().start()
    yield server
    server.stop()


@pytest.fixture
async def web_shop(aiohttp_client, settings, recognizer, fake_woo, smtp):
    configured = changed(woo(settings, fake_woo), smtp_url=smtp.url, mail_from=MAIL_FROM, outbox_retry_base_seconds=0.2)
    await sync(configured)
    return await aiohttp_client(create_app(configured, recognizer))


@pytest.fixture
async def phone_shop(aiohttp_client, channel_settings, recognizer, fake_woo):
    configured = woo(channel_settings, fake_woo)
    await sync(configured)
    return await aiohttp_client(create_app(configured, recognizer))


def customer_reads(fake: FakeWooCommerce) -> list[str]:
    """What was asked of the customers and the website's orders (the sync's product reads aside)."""
    return [r["path"] for r in fake.requests if r["path"].startswith(("customers", "orders"))]


async def matched(client) -> set[str | None]:
    return set(await client.app[DB].run(lambda s: s.exec(select(Customer.commerce_customer_id)).all()))


async def test_a_whatsapp_shopper_whose_billing_phone_matches_sees_website_orders_with_tracking(
    phone_shop, fake_woo, fake_twilio
):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    out = await wa.say("where is my order?")
    assert "Your orders from the website" in out, out
    # Newest first, guest order included, each with status, total and tracking (meta or note).
    assert out.index("#1002") < out.index("#1001") < out.index("#900"), out
    assert "1Z999AA10123456784" in out and "UPS" in out, out
    assert "9400100000000000000001" in out and "USPS" in out, out
    assert "Total: $94.00" in out and "Total: $28.00" in out, out
    assert "is on its way" in out, out
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in out, out
    assert "#2001" not in out and "#901" not in out, out  # another customer's; a look-alike e-mail's
    # No phone filter: the digits were searched, then the last four, and the number compared.
    searches = [r["query"]["search"] for r in fake_woo.requests if r["path"] == "orders" and "search" in r["query"]]
    assert searches[:2] == ["5551234567", "4567"], searches
    listed = [r["query"] for r in fake_woo.requests if r["path"] == "orders" and "customer" in r["query"]]
    assert listed == [{"customer": "501", "per_page": "5", "orderby": "date", "order": "desc"}]
    assert await matched(phone_shop) == {"501"}
    # Kept: the next question does not look the customer up again.
    await wa.say("where is my order?")
    assert [r["path"] for r in fake_woo.requests if r["path"] == "customers"].count("customers") == 1


async def test_a_web_shopper_proves_an_email_with_a_code_before_any_order_is_shown(web_shop, fake_woo, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    assert "tell me the e-mail or phone you used" in web.texts(), web.texts()
    await web.say(EMAIL)
    assert f"sent a 6-digit code to {EMAIL}" in web.texts(), web.texts()
    code = await code_from_mail(smtp)
    assert customer_reads(fake_woo) == [] and "#1002" not in web.texts()

    await web.say(wrong(code))
    assert "isn't right" in web.texts(), web.texts()
    assert customer_reads(fake_woo) == [] and "#100" not in web.texts()

    await web.say(code)
    texts = web.texts()
    assert "Your orders from the website" in texts, texts
    assert "#1002" in texts and "#900" in texts and "1Z999AA10123456784" in texts, texts
    assert "#2001" not in texts and "#901" not in texts, texts
    [by_email] = [r for r in fake_woo.requests if r["path"] == "customers"]
    assert by_email["query"] == {"email": EMAIL, "role": "all"}
    assert await matched(web_shop) == {"501"}


async def test_a_wrong_code_shows_nothing(web_shop, fake_woo, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    await web.say(EMAIL)
    code = await code_from_mail(smtp)
    for n in range(1, 6):
        await web.say(wrong(code, n))
    assert "too many wrong codes" in web.texts(), web.texts()
    await web.say(code)
    assert "#1002" not in web.texts() and "Your orders from the website" not in web.texts(), web.texts()
    assert customer_reads(fake_woo) == []
    assert await matched(web_shop) == {None}


async def test_woocommerce_down_is_a_clear_answer_and_matches_nobody(phone_shop, fake_woo, fake_twilio):
    fake_woo.fail_for(60)
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    out = await wa.say("where is my order?")
    assert "can't reach the website's orders right now" in out, out
    assert "#1002" not in out
    assert await matched(phone_shop) == {None}
    fake_woo.down_until = 0
    out = await wa.say("where is my order?")
    assert "#1002" in out, out


async def test_a_code_proved_while_woocommerce_is_down_matches_once_it_answers(web_shop, fake_woo, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    await web.say(EMAIL)
    code = await code_from_mail(smtp)
    fake_woo.fail_for(60)
    await web.say(code)
    assert "can't reach the website's orders right now" in web.texts(), web.texts()
    assert "#1002" not in web.texts()
    assert await matched(web_shop) == {None}
    fake_woo.down_until = 0
    await web.say("where is my order?")
    assert "#1002" in web.texts() and "6-digit" not in web.texts(), web.texts()
    assert await matched(web_shop) == {"501"}


async def test_a_phone_two_customers_share_matches_neither(phone_shop, fake_woo, fake_twilio):
    fake_woo.customers[1]["billing"]["phone"] = "555-123-4567"
    fake_woo.orders[2001]["billing"]["phone"] = "555-123-4567"
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    out = await wa.say("where is my order?")
    assert "tell me the e-mail or phone you used" in out, out
    assert "#1002" not in out and "#2001" not in out, out
    assert await matched(phone_shop) == {None}


async def test_a_returning_customer_is_offered_the_saved_address_at_checkout(phone_shop, fake_twilio, fake_woo):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    await wa.say('/add_to_cart {"product":"harbor-rain-jacket","size":"L","colour":"navy"}')
    out = await wa.say("checkout")
    assert "Shall we ship to your saved address: 12 Main St, Springfield, IL 62701, US?" in out, out
    await wa.say("yes")
    await wa.say("1")  # skip the receipt
    out = await wa.say("yes")
    [made] = [r["json"] for r in fake_woo.requests if r["method"] == "POST" and r["path"] == "orders"]
    assert "12 Main St, Springfield, IL 62701, US" in made["customer_note"], made
    assert "checkout/order-pay/" in out, out


async def test_recommendations_leave_out_what_was_bought_on_the_website(phone_shop, fake_twilio, fake_woo):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    out = await wa.say("any recommendations for me?")
    assert "going by your past orders" in out, out
    assert "Alpine Fleece Vest" in out, out  # a jacket, as the newest order's
    assert "Harbor Rain Jacket" not in out and "Cozy Wool Socks" not in out, out  # bought already


async def test_a_proved_email_with_guest_orders_only_sees_them(web_shop, fake_woo, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    await web.say(GUEST)
    mails = await smtp.wait_for(1)
    code = re.search(r"\b(\d{6})\b", mails[0].get_body(("plain",)).get_content())
    assert mails[0]["To"] == GUEST and code, mails[0]
    assert customer_reads(fake_woo) == []
    await web.say(code.group(1))
    texts = web.texts()
    assert "Your orders from the website" in texts and "#950" in texts and "Total: $25.00" in texts, texts
    assert "#1002" not in texts and "#900" not in texts and "#2001" not in texts, texts
    assert await matched(web_shop) == {f"guest:{GUEST}"}
    saved = await web_shop.app[DB].run(lambda s: s.exec(select(Customer.shipping_address)).one())
    assert saved == "12 Main St, Springfield, IL 62701, US"
