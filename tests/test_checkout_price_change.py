"""A price changed (a platform's webhook or sync) between adding an item and confirming the
order: the shopper is told, with both prices, before the payment link, and the order is at the
new price; told once."""

from __future__ import annotations

from bot.i18n import ZH, text_in
from bot.store.models import CartItem, OrderItem
from tests.dialogs.test_checkout import add
from tests.fakes.web_shopper import WebShopper
from tests.test_shopify import deliver, fake_shopify, later, rows, shop, shopify_settings  # noqa: F401
from tests.test_stripe_payments import ADDRESS


async def test_a_price_changed_by_a_webhook_is_told_before_paying(shop, fake_shopify):  # noqa: F811
    web = await WebShopper.start(shop)
    await add(web, "add the cozy wool socks")
    [item] = await rows(shop, CartItem)
    assert item.seen_price_cents == 1400
    fake_shopify.find("cozy-wool-socks")["variants"][0]["price"] = "16.50"
    changed = fake_shopify.product_webhook("cozy-wool-socks", later(10))
    assert (await (await deliver(shop, "products/update", changed)).json())["outcome"] == "applied"

    await web.say("checkout")
    if "saved address" in web.texts():
        await web.tap("Yes")
    else:
        await web.say(ADDRESS)
    if "receipt" in web.texts():
        await web.say("skip")
    confirm = web.texts()
    assert "The price of Cozy Wool Socks changed from $14.00 to $16.50." in confirm, confirm
    assert "Place the order?" in confirm and confirm.index("changed from") < confirm.index("Place the order?")
    assert not any(m.get("links") for m in web.last), web.last  # no payment link yet
    await web.tap("Yes")
    assert "is placed" in web.texts(), web.texts()
    [draft] = fake_shopify.drafts.values()
    assert web.last[-1]["links"][0]["url"] == draft["invoiceUrl"]
    assert draft["input"]["lineItems"] == [{"variantId": "gid://shopify/ProductVariant/300", "quantity": 1}]
    [line] = await rows(shop, OrderItem)
    assert line.unit_price_cents == 1650  # the order is at the new price
    [item] = await rows(shop, CartItem)
    assert item.seen_price_cents == 1650  # the shopper has been told: not again


async def test_an_unchanged_price_says_nothing(shop):  # noqa: F811
    web = await WebShopper.start(shop)
    await add(web, "add the cozy wool socks")
    await web.say("checkout")
    if "saved address" in web.texts():
        await web.tap("Yes")
    else:
        await web.say(ADDRESS)
    if "receipt" in web.texts():
        await web.say("skip")
    assert "Place the order?" in web.texts() and "changed from" not in web.texts(), web.texts()


def test_the_notice_is_in_traditional_chinese_too():
    said = text_in(ZH, "checkout.price_changed", name="羊毛襪", old="$14.00", new="$16.50")
    assert "$14.00" in said and "$16.50" in said and "價格" in said
