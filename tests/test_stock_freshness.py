"""Stock answers from the local copy of a commerce platform say when its stock was last confirmed
(a sync, a reconcile, a poll or a stock webhook) if that is longer ago than STOCK_FRESH_MINUTES;
never with the built-in catalog."""

from __future__ import annotations

from datetime import timedelta

from bot.i18n import ZH, text_in
from bot.store.models import utcnow
from integrations.commerce.freshness import confirmed_at, mark_confirmed
from service.app import DB
from tests.fakes.web_shopper import WebShopper
from tests.test_shopify import deliver, fake_shopify, later, level, shop, shopify_settings  # noqa: F401

QUESTION = "Do you have the Summit Trail Runner in size 10?"


async def confirmed_ago(client, minutes: int) -> None:
    await client.app[DB].run(lambda s: mark_confirmed(s, "shopify", utcnow() - timedelta(minutes=minutes)))


async def test_an_answer_from_an_old_copy_says_when_stock_was_checked(shop, fake_shopify):  # noqa: F811
    synced = await shop.app[DB].run(lambda s: confirmed_at(s, "shopify"))
    assert synced is not None and utcnow() - synced < timedelta(minutes=1)  # the sync confirmed it
    await confirmed_ago(shop, 25)
    fake_shopify.fail_for(60)  # Shopify is down: the copy is all there is
    web = await WebShopper.start(shop)
    await web.say(QUESTION)
    assert "sold out" in web.texts(), web.texts()
    assert "Stock last checked 25 minutes ago." in web.texts(), web.texts()


async def test_a_fresh_copy_says_nothing_and_a_stock_webhook_makes_it_fresh(shop):  # noqa: F811
    web = await WebShopper.start(shop)
    await web.say(QUESTION)
    assert "sold out" in web.texts() and "last checked" not in web.texts(), web.texts()
    await confirmed_ago(shop, 180)
    web = await WebShopper.start(shop)  # a new shopper each time: a question asked thrice is handed off
    await web.say(QUESTION)
    assert "Stock last checked 3 hours ago." in web.texts(), web.texts()
    resp = await deliver(shop, "inventory_levels/update", level(201, 1, 4, later(5)))  # STR-10-GRY
    assert resp.status == 200
    web = await WebShopper.start(shop)
    await web.say(QUESTION)
    assert "in stock" in web.texts() and "last checked" not in web.texts(), web.texts()


async def test_the_built_in_catalog_never_says_it(client):
    await confirmed_ago(client, 60)  # even with a platform's old record in the store
    web = await WebShopper.start(client)
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert web.texts() and "last checked" not in web.texts(), web.texts()


def test_the_line_is_in_traditional_chinese_too():
    assert text_in(ZH, "stock.checked_minutes", n=25) == "（庫存資料為 25 分鐘前確認的。）"
