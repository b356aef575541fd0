"""Shopify's customers: a WhatsApp shopper whose phone is a Shopify customer's sees the
website's orders with tracking; a web shopper proves an e-mail address with a one-time code
(read from the e-mail the real SMTP lane sent) before any of that customer's orders is shown;
wrong and too many codes are refused; a returning customer's saved address is offered at
checkout. Against the fake Admin GraphQL API and a real SMTP server on loopback."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.conversation import verification
from bot.store.models import ContactCheck, Customer
from service.app import DB, create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.shopify import (
    TOKEN,
    VERSION,
    WEBHOOK_SECRET,
    FakeShopify,
    customer,
    later,
    product,
    website_order,
)
from tests.fakes.smtp import FakeSmtp
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed
from tests.test_order_mail import MAIL_FROM
from tests.test_shopify import sync

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PHONE = "+15551234567"
EMAIL = "dana@example.com"
ADDRESS = {
    "address1": "12 Main St",
    "address2": None,
    "city": "Springfield",
    "provinceCode": "IL",
    "zip": "62701",
    "countryCodeV2": "US",
}


def orders() -> list[dict]:
    return [
        website_order(
            1001,
            later(-3 * 24 * 60),
            [("Cozy Wool Socks", 2, 3)],
            fulfillment="FULFILLED",
            delivered=True,
            tracking=("USPS", "9400100000000000000001", None),
        ),
        website_order(
            1002,
            later(-24 * 60),
            [("Harbor Rain Jacket", 1, 1)],
            fulfillment="FULFILLED",
            tracking=("UPS", "1Z999AA10123456784", "https://www.ups.com/track?tracknum=1Z999AA10123456784"),
            total="94.00",
        ),
    ]


@pytest.fixture
async def fake_shopify():
    fake = await FakeShopify().start()
    fake.products.append(
        product(6, "alpine-fleece-vest", "Alpine Fleece Vest", "Jacket", [("AFV-M-GRN", "M", "green", {1: 2})])
    )
    fake.customers = [
        customer(501, EMAIL, PHONE, ADDRESS, orders()),
        customer(502, "other@example.com", "+15559990000", None, [website_order(2001, later(0), [("Linen Shirt", 1)])]),
    ]
    yield fake
    await fake.close()


@pytest.fixture
def smtp():
    server = FakeSmtp().start()
    yield server
    server.stop()


def shopify(settings, fake_shopify, **more):
    return changed(
        settings,
        commerce_backend="shopify",
        shopify_shop_domain="shop-test.myshopify.com",
        shopify_admin_token=TOKEN,
        shopify_webhook_secret=WEBHOOK_SECRET,
        shopify_api_version=VERSION,
        shopify_api_base=fake_shopify.url,
        shopify_reconcile_interval_seconds=0,
        **more,
    )


@pytest.fixture
async def web_shop(aiohttp_client, settings, recognizer, fake_shopify, smtp):
    configured = shopify(settings, fake_shopify, smtp_url=smtp.url, mail_from=MAIL_FROM, outbox_retry_base_seconds=0.2)
    await sync(configured)
    return await aiohttp_client(create_app(configured, recognizer))


@pytest.fixture
async def phone_shop(aiohttp_client, channel_settings, recognizer, fake_shopify):
    configured = shopify(channel_settings, fake_shopify)
    await sync(configured)
    return await aiohttp_client(create_app(configured, recognizer))


def customer_operations(fake: FakeShopify) -> list[str]:
    return [op for op in fake.operations() if op.startswith("Customer")]


async def code_from_mail(smtp: FakeSmtp, count: int = 1) -> str:
    mails = await smtp.wait_for(count)
    mail = mails[count - 1]
    assert mail["To"] == EMAIL and mail["Subject"] == "Your verification code"
    found = re.search(r"\b(\d{6})\b", mail.get_body(("plain",)).get_content())
    assert found, mail
    return found.group(1)


def wrong(code: str, n: int = 1) -> str:
    return f"{(int(code) + n) % 1_000_000:06d}"


async def test_a_whatsapp_shopper_matched_by_phone_sees_website_orders_with_tracking(
    phone_shop, fake_shopify, fake_twilio
):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    out = await wa.say("where is my order?")
    assert "Your orders from the website" in out, out
    # Newest first, each with its status and the carrier's tracking.
    assert out.index("#1002") < out.index("#1001"), out
    assert "1Z999AA10123456784" in out and "UPS" in out and "9400100000000000000001" in out, out
    assert "is on its way" in out and "was delivered" in out, out
    assert "Total: $94.00" in out, out  # totalPriceSet's shop money
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in out, out
    assert "#2001" not in out  # another customer's order
    found = [r for r in fake_shopify.requests if r["operation"] == "CustomerByContact"]
    assert found[0]["variables"]["query"] == f'phone:"{PHONE}"'
    [listed] = [r for r in fake_shopify.requests if r["operation"] == "CustomerOrders"]
    assert listed["variables"] == {"id": "gid://shopify/Customer/501", "first": 5}
    assert "reverse: true" in listed["query"] and "trackingInfo" in listed["query"]
    matched = await phone_shop.app[DB].run(
        lambda s: s.exec(select(Customer.commerce_customer_id).where(Customer.phone == PHONE)).one()
    )
    assert matched == "gid://shopify/Customer/501"
    # Kept: the next question does not look the customer up again.
    await wa.say("where is my order?")
    assert [r["operation"] for r in fake_shopify.requests].count("CustomerByContact") == 1


async def test_a_web_shopper_proves_an_email_with_a_code_before_any_order_is_shown(web_shop, fake_shopify, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    assert "tell me the e-mail or phone you used" in web.texts(), web.texts()
    await web.say(EMAIL.upper())
    assert f"sent a 6-digit code to {EMAIL}" in web.texts(), web.texts()
    code = await code_from_mail(smtp)
    # Nothing of the customer was looked up or shown before the code.
    assert customer_operations(fake_shopify) == []
    assert "#1002" not in web.texts()
    stored = await web_shop.app[DB].run(lambda s: s.exec(select(ContactCheck)).one())
    assert stored.contact == EMAIL and code not in stored.code_hash and stored.verified_at is None

    await web.say(wrong(code))
    assert "isn't right" in web.texts() and "4 tries left" in web.texts(), web.texts()
    assert customer_operations(fake_shopify) == [] and "#100" not in web.texts()

    await web.say(code)
    texts = web.texts()
    assert "Your orders from the website" in texts, texts
    assert "#1002" in texts and "1Z999AA10123456784" in texts and "#2001" not in texts, texts
    assert texts.index("#1002") < texts.index("#1001")
    assert any(l["url"].startswith("https://www.ups.com/") for m in web.last for l in m["links"]), web.last
    found = [r for r in fake_shopify.requests if r["operation"] == "CustomerByContact"]
    assert [r["variables"]["query"] for r in found] == [f'email:"{EMAIL}"']
    # Matched now: the next "where is my order?" shows them at once.
    await web.say("where is my order?")
    assert "#1002" in web.texts() and "6-digit" not in web.texts(), web.texts()


async def test_too_many_wrong_codes_refuse_and_show_nothing(web_shop, fake_shopify, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    await web.say(EMAIL)
    code = await code_from_mail(smtp)
    for n, left in enumerate((4, 3, 2, 1), start=1):
        await web.say(wrong(code, n))  # each a different guess (the same words thrice ask for a person)
        assert f"{left} tries left" in web.texts(), web.texts()
    await web.say(wrong(code, 5))
    assert "too many wrong codes" in web.texts(), web.texts()
    # The right code after that opens nothing: the check is spent.
    await web.say(code)
    assert "#1002" not in web.texts() and "Your orders from the website" not in web.texts(), web.texts()
    assert customer_operations(fake_shopify) == []
    matched = await web_shop.app[DB].run(lambda s: s.exec(select(Customer.commerce_customer_id)).all())
    assert set(matched) == {None}


async def test_an_expired_code_is_refused(web_shop, fake_shopify, smtp):
    web = await WebShopper.start(web_shop)
    await web.say("where is my order?")
    await web.say(EMAIL)
    code = await code_from_mail(smtp)

    def expire(session) -> None:
        check = session.exec(select(ContactCheck)).one()
        check.expires_at = check.created_at - timedelta(seconds=1)

    await web_shop.app[DB].run(expire)
    await web.say(code)
    assert "#1002" not in web.texts() and customer_operations(fake_shopify) == [], web.texts()


async def test_codes_sent_are_limited_per_hour(web_shop, smtp):
    def start_many(session) -> list[str | None]:
        person = Customer()
        session.add(person)
        session.flush()
        return [verification.start(session, person.id, EMAIL) for _ in range(verification.MAX_SENT_PER_HOUR + 1)]

    codes = await web_shop.app[DB].run(start_many)
    assert all(re.fullmatch(r"\d{6}", c or "") for c in codes[:-1]) and codes[-1] is None


async def test_a_returning_customer_is_offered_the_saved_address_at_checkout(phone_shop, fake_twilio, fake_shopify):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    await wa.say('/add_to_cart {"product":"harbor-rain-jacket","size":"L","colour":"navy"}')
    out = await wa.say("checkout")
    assert "Shall we ship to your saved address: 12 Main St, Springfield, IL 62701, US?" in out, out
    await wa.say("yes")
    await wa.say("1")  # skip the receipt
    out = await wa.say("yes")
    [draft] = fake_shopify.drafts.values()
    assert draft["invoiceUrl"] in out, out


async def test_an_unknown_whatsapp_number_is_offered_verification(phone_shop, fake_twilio, fake_shopify):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", "+15550002222")
    out = await wa.say("where is my order?")
    assert "tell me the e-mail or phone you used" in out, out
    assert "CustomerOrders" not in fake_shopify.operations()
    # A phone number typed is proved by a text to it.
    out = await wa.say("+15559990000")
    assert "sent a 6-digit code to +15559990000" in out, out
    sms = TwilioShopper(phone_shop, fake_twilio, "sms", "+15559990000")
    texted = await sms.replies(settle=0.3)
    code = re.search(r"\b(\d{6})\b", texted)
    assert code, texted
    out = await wa.say(code.group(1))
    assert "#2001" in out and "#1002" not in out, out


async def test_recommendations_favour_the_kind_bought_last_and_leave_out_what_was_bought(
    phone_shop, fake_twilio, fake_shopify
):
    wa = TwilioShopper(phone_shop, fake_twilio, "whatsapp", PHONE)
    out = await wa.say("any recommendations for me?")
    assert "going by your past orders" in out, out
    assert "Alpine Fleece Vest" in out, out  # a jacket, as the newest order's
    assert "Harbor Rain Jacket" not in out and "Cozy Wool Socks" not in out, out  # bought already
    # A shopper not matched gets the shop's usual picks.
    other = TwilioShopper(phone_shop, fake_twilio, "whatsapp", "+15550003333")
    out = await other.say("any recommendations for me?")
    assert "Our picks for you" in out and "past orders" not in out, out
