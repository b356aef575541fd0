"""Shopify as the commerce platform, against a fake Admin GraphQL API on loopback: the first
sync into the local catalog, the throttle, signed webhooks applied once and never backwards,
stock changes that reach the next answer and the restock waitlist, and checkout through a
draft order's invoice, confirmed in chat by the orders/paid webhook."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.store.models import CommerceStock, MessageRecord, Order, Product, ProviderEvent, Variant
from integrations.commerce.sync import CatalogSync
from integrations.shopify.catalog import ShopifyCatalog
from integrations.shopify.client import ShopifyClient
from service.app import DB, create_app
from service.wiring import build
from tests.dialogs.test_checkout import add
from tests.fakes.shopify import TOKEN, VERSION, WEBHOOK_SECRET, FakeShopify, iso, later, webhook
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed
from tests.test_stripe_payments import checkout

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def fake_shopify():
    fake = await FakeShopify().start()
    yield fake
    await fake.close()


@pytest.fixture
def shopify_settings(settings, fake_shopify):
    return changed(
        settings,
        commerce_backend="shopify",
        shopify_shop_domain="shop-test.myshopify.com",
        shopify_admin_token=TOKEN,
        shopify_webhook_secret=WEBHOOK_SECRET,
        shopify_api_version=VERSION,
        shopify_api_base=fake_shopify.url,
        shopify_reconcile_interval_seconds=0,
    )


async def sync(settings):
    services = build(settings)
    try:
        return await services.catalog_sync.run(full=True)
    finally:
        await services.close()


@pytest.fixture
async def shop(aiohttp_client, shopify_settings, recognizer, fake_shopify):
    """The app on a store synced from the fake (the recogniser learns the synced names)."""
    await sync(shopify_settings)
    return await aiohttp_client(create_app(shopify_settings, recognizer))


async def rows(client, model, *where):
    return await client.app[DB].run(lambda s: list(s.exec(select(model).where(*where)).all()))


async def count(client, model, *where) -> int:
    return await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(model).where(*where)).one())


async def stock(client, sku: str) -> int:
    return await client.app[DB].run(lambda s: s.get(Variant, sku).stock)


async def deliver(client, topic, payload, webhook_id=None, secret=WEBHOOK_SECRET):
    body, headers = webhook(topic, payload, webhook_id, secret)
    return await client.post("/webhooks/shopify", data=body, headers=headers)


def level(item: int, location: int, available: int, updated_at) -> dict:
    return {
        "inventory_item_id": item,
        "location_id": location,
        "available": available,
        "updated_at": iso(updated_at),
    }


async def test_sync_copies_products_variants_sizes_colours_and_stock(shop, fake_shopify):
    products = {p.sku: p for p in await rows(shop, Product)}
    assert sorted(products) == ["cozy-wool-socks", "harbor-rain-jacket", "linen-shirt", "summit-trail-runner"]
    jacket = products["harbor-rain-jacket"]
    assert jacket.name == "Harbor Rain Jacket" and jacket.price_cents == 8900 and jacket.category == "jackets"
    assert jacket.image_url == "https://cdn.shopify.test/harbor-rain-jacket.jpg"
    variants = {v.sku: v for v in await rows(shop, Variant)}
    assert len(variants) == 10
    assert (variants["HRJ-S-NAVY"].size, variants["HRJ-S-NAVY"].colour) == ("S", "navy")
    assert variants["HRJ-S-NAVY"].stock == 3  # 2 + 1 over two locations
    assert variants["HRJ-M-NAVY"].stock == 0 and variants["HRJ-L-NAVY"].stock == 5
    assert variants["STR-9-GRY"].size == "9" and variants["CWS-OS-OAT"].size == "OS"
    assert "DS-OS" not in variants  # a draft product is not offered
    assert await count(shop, CommerceStock) == 13  # every location of every item read, the draft's too
    first = fake_shopify.requests[0]
    assert first["token"] == TOKEN and first["version"] == VERSION
    assert "CatalogProducts" in fake_shopify.operations()


async def test_a_second_sync_changes_nothing_and_a_product_gone_from_shopify_is_removed(
    shopify_settings, fake_shopify, tmp_path
):
    first = await sync(shopify_settings)
    assert (first.created, first.variants_created, first.unchanged, first.hidden) == (4, 10, 0, 1)
    again = await sync(shopify_settings)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)  # the draft too: read, not offered
    fake_shopify.products = [p for p in fake_shopify.products if p["handle"] != "linen-shirt"]
    third = await sync(shopify_settings)
    assert third.removed == 1
    services = build(shopify_settings)
    try:
        assert await services.db.run(lambda s: s.get(Product, "linen-shirt")) is None
    finally:
        await services.close()


async def test_a_product_with_more_variants_than_a_page_is_read_whole(shopify_settings, fake_shopify):
    from integrations.shopify import catalog as shopify_catalog

    shirt = fake_shopify.find("linen-shirt")
    for i in range(shopify_catalog.VARIANTS_PAGE + 5):
        shirt["variants"].append(
            {
                "id": f"gid://shopify/ProductVariant/{50000 + i}",
                "sku": f"LS-{i}-BLU",
                "price": "45.00",
                "options": [("Size", f"X{i}"), ("Color", "Blue")],
                "item": f"gid://shopify/InventoryItem/{50000 + i}",
                "levels": {1: (1, later(0))},
            }
        )
    summary = await sync(shopify_settings)
    assert summary.variants_created == 10 + shopify_catalog.VARIANTS_PAGE + 5
    assert "ProductVariants" in fake_shopify.operations()


async def test_throttled_queries_back_off_by_the_cost_and_then_succeed(shopify_settings, fake_shopify):
    fake_shopify.throttle_next = 2
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    services = build(shopify_settings)
    client = ShopifyClient(fake_shopify.url, VERSION, TOKEN, 5.0, sleep=no_sleep)
    try:
        summary = await CatalogSync(services.db, ShopifyCatalog(client), None, None).run()
    finally:
        await client.close()
        await services.close()
    # (requested 200 - available 30) / restore rate 50 per second, twice; then the sync went on.
    assert waits == [pytest.approx(3.4), pytest.approx(3.4)]
    assert client.waits == waits
    assert summary.created == 4
    assert fake_shopify.operations()[:3] == ["CatalogProducts"] * 3


async def test_a_forged_webhook_gets_403_and_leaves_nothing(shop):
    payload = level(100, 1, 9, later(5))  # HRJ-S-NAVY's item
    answer = await deliver(shop, "inventory_levels/update", payload, secret="guessed")
    assert answer.status == 403 and "Shopify webhook refused" in (await answer.json())["error"]
    unsigned = await shop.post(
        "/webhooks/shopify", data=b"{}", headers={"X-Shopify-Topic": "products/update", "X-Shopify-Webhook-Id": "x"}
    )
    assert unsigned.status == 403
    unsigned_junk = await shop.post("/webhooks/shopify", data=b"not json")
    assert unsigned_junk.status == 403
    assert await count(shop, ProviderEvent) == 0
    assert await stock(shop, "HRJ-S-NAVY") == 3


async def test_bad_webhook_bodies_get_400_and_change_nothing(shop):
    body = b"not json"
    _, headers = webhook("products/update", {})
    from tests.fakes.shopify import sign

    headers["X-Shopify-Hmac-Sha256"] = sign(body)
    assert (await shop.post("/webhooks/shopify", data=body, headers=headers)).status == 400
    missing = await deliver(shop, "inventory_levels/update", {"inventory_item_id": 100, "location_id": 1})
    assert missing.status == 400
    body, headers = webhook("inventory_levels/update", level(100, 1, 9, later(5)))
    del headers["X-Shopify-Webhook-Id"]  # signed, but with no delivery id to record it by
    no_id = await shop.post("/webhooks/shopify", data=body, headers=headers)
    assert no_id.status == 400 and "X-Shopify-Webhook-Id" in (await no_id.json())["error"]
    assert await count(shop, ProviderEvent) == 0


async def test_a_duplicate_webhook_id_is_processed_once(shop):
    payload = level(100, 1, 7, later(5))  # location 1: 2 -> 7
    first = await deliver(shop, "inventory_levels/update", payload, webhook_id="wh-1")
    assert first.status == 200 and (await first.json())["outcome"] == "applied"
    assert await stock(shop, "HRJ-S-NAVY") == 8
    # A retry of the same delivery, even with another body, does nothing more.
    retry = await deliver(shop, "inventory_levels/update", level(100, 1, 1, later(6)), webhook_id="wh-1")
    assert (await retry.json())["outcome"] == "duplicate"
    assert await stock(shop, "HRJ-S-NAVY") == 8
    assert await count(shop, ProviderEvent, ProviderEvent.event_id == "wh-1") == 1


async def test_out_of_order_updates_never_move_data_backwards(shop, fake_shopify):
    fake_shopify.find("harbor-rain-jacket")["title"] = "Harbor Rain Jacket II"
    newer = fake_shopify.product_webhook("harbor-rain-jacket", later(10))
    fake_shopify.find("harbor-rain-jacket")["title"] = "Harbor Rain Jacket (old)"
    older = fake_shopify.product_webhook("harbor-rain-jacket", later(5))
    assert (await (await deliver(shop, "products/update", newer)).json())["outcome"] == "applied"
    assert (await (await deliver(shop, "products/update", older)).json())["outcome"] == "stale"
    assert (await rows(shop, Product, Product.sku == "harbor-rain-jacket"))[0].name == "Harbor Rain Jacket II"
    # Stock: the level of 10:20 stands when the one of 10:15 arrives after it.
    await deliver(shop, "inventory_levels/update", level(103, 2, 9, later(20)))  # HRJ-L-NAVY at location 2
    stale = await deliver(shop, "inventory_levels/update", level(103, 2, 1, later(15)))
    assert (await stale.json())["outcome"] == "stale"
    assert await stock(shop, "HRJ-L-NAVY") == 9


async def test_a_stock_webhook_reaches_the_next_answer(shop):
    web = await WebShopper.start(shop)
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert "sold out" in web.texts(), web.texts()
    await deliver(shop, "inventory_levels/update", level(201, 1, 4, later(5)))  # STR-10-GRY
    started = time.monotonic()
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert "in stock" in web.texts() and "sold out" not in web.texts(), web.texts()
    assert time.monotonic() - started < 2.0


async def test_back_in_stock_tells_a_waitlisted_web_shopper(shop):
    web = await WebShopper.start(shop)
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert "sold out" in web.texts(), web.texts()
    await web.tap("Yes")
    seen = max(m["id"] for m in await web.history())
    answer = await deliver(shop, "inventory_levels/update", level(201, 1, 3, later(5)))
    assert answer.status == 200
    for _ in range(100):
        notices = [m for m in await web.history(after=seen) if m["direction"] == "out"]
        if notices:
            break
        await asyncio.sleep(0.05)
    assert len(notices) == 1 and "Summit Trail Runner (10, grey) is back in stock" in notices[0]["text"]
    # Another level of the same item (still in stock) tells nobody again.
    await deliver(shop, "inventory_levels/update", level(201, 2, 2, later(6)))
    await asyncio.sleep(0.2)
    assert len([m for m in await web.history(after=seen) if m["direction"] == "out"]) == 1


async def test_checkout_sends_the_draft_invoice_and_orders_paid_confirms_in_chat(shop, fake_shopify):
    web = await WebShopper.start(shop)
    await add(web, "add the cozy wool socks")
    number = await checkout(web)
    [draft] = fake_shopify.drafts.values()
    assert web.last[-1]["links"][0]["url"] == draft["invoiceUrl"]
    data = draft["input"]
    assert data["lineItems"] == [{"variantId": "gid://shopify/ProductVariant/300", "quantity": 1}]
    assert data["customAttributes"] == [{"key": "chat_order", "value": str(number)}]
    assert data["shippingLine"]["priceWithCurrency"]["amount"] == "5.99"
    order = (await rows(shop, Order, Order.id == number - 1000))[0]
    assert order.payment_ref == draft["id"] and order.status == "pending_payment"

    paid = {
        "id": 820982911946154508,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "updated_at": iso(later(30)),
        "financial_status": "paid",
        "note_attributes": [{"name": "chat_order", "value": str(number)}],
        "fulfillments": [],
    }
    assert (await deliver(shop, "orders/paid", paid, webhook_id="paid-1")).status == 200
    assert (await deliver(shop, "orders/paid", paid, webhook_id="paid-1")).status == 200
    for _ in range(100):
        history = " ".join(m["text"] or "" for m in await web.history())
        if f"Payment received for order #{number}" in history:
            break
        await asyncio.sleep(0.05)
    assert history.count(f"Payment received for order #{number}") == 1
    assert await count(shop, MessageRecord, MessageRecord.idempotency_key == f"paid:{number}") == 1

    fulfilled = {
        "id": 255858046,
        "order_id": 820982911946154508,
        "status": "success",
        "tracking_company": "UPS",
        "tracking_number": "1Z2345",
        "tracking_numbers": ["1Z2345"],
        "tracking_url": "https://www.ups.com/track?tracknum=1Z2345",
        "updated_at": iso(later(40)),
    }
    assert (await deliver(shop, "fulfillments/create", fulfilled)).status == 200
    order = (await rows(shop, Order, Order.id == number - 1000))[0]
    assert (order.status, order.carrier, order.tracking_number) == ("shipped", "UPS", "1Z2345")
    # An orders/updated from before the fulfilment does not take it back.
    older = {**paid, "updated_at": iso(later(35))}
    assert (await (await deliver(shop, "orders/updated", older)).json())["outcome"] == "stale"
    await web.say("where is my order?")
    assert "1Z2345" in web.texts(), web.texts()


async def test_the_catalog_sync_command_shows_progress_and_a_summary(shopify_settings, fake_shopify):
    env = {
        **os.environ,
        "DATABASE_URL": shopify_settings.database_url,
        "COMMERCE_BACKEND": "shopify",
        "SHOPIFY_SHOP_DOMAIN": "shop-test.myshopify.com",
        "SHOPIFY_ADMIN_TOKEN": TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHOPIFY_API_BASE": fake_shopify.url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        "catalog",
        "sync",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "products: 5 read, 4 created, 0 updated, 0 unchanged, 0 removed, 0 kept sold out, " in out.decode()
    assert "1 not offered (draft or archived)" in out.decode()
    assert "variants: 10 created" in out.decode()
    assert re.search(r"Shopify products: 100%.*5/5", err.decode()), err.decode()


def test_backends_name_what_they_need(settings):
    with pytest.raises(ValueError, match="must be one of store, shopify, woocommerce, magento"):
        changed(settings, commerce_backend="bigcommerce")
    with pytest.raises(ValueError, match="SHOPIFY_SHOP_DOMAIN"):
        changed(settings, commerce_backend="shopify")


async def test_the_reconcile_rereads_only_products_updated_since_the_last_sync(shopify_settings, fake_shopify):
    await sync(shopify_settings)
    socks = fake_shopify.find("cozy-wool-socks")
    socks["title"], socks["updatedAt"] = "Cozy Wool Socks 2-pack", iso(datetime.now(UTC) + timedelta(minutes=5))
    services = build(shopify_settings)
    try:
        summary = await services.catalog_sync.reconcile()
        name = await services.db.run(lambda s: s.get(Product, "cozy-wool-socks").name)
        # The job the scheduler runs in the leading process.
        services.settings = changed(shopify_settings, shopify_reconcile_interval_seconds=60)
        assert "shopify-reconcile" in services.scheduler._periodic
    finally:
        await services.close()
    [query] = [r["variables"]["query"] for r in fake_shopify.requests[-1:]]
    assert query.startswith("updated_at:>'")
    assert (summary.products_seen, summary.updated) == (1, 1)
    assert name == "Cozy Wool Socks 2-pack"


async def test_a_product_created_in_shopify_is_known_by_name_at_once(shop, fake_shopify):
    from tests.fakes.shopify import product

    fake_shopify.products.append(
        product(6, "alpine-fleece-vest", "Alpine Fleece Vest", "Jacket", [("AFV-M-GRN", "M", "green", {1: 2})])
    )
    answer = await deliver(shop, "products/create", fake_shopify.product_webhook("alpine-fleece-vest", later(5)))
    assert (await answer.json())["outcome"] == "applied"
    web = await WebShopper.start(shop)
    await web.say("Do you have the Alpine Fleece Vest in size M?")
    assert "Alpine Fleece Vest" in web.texts() and "in stock" in web.texts(), web.texts()


async def test_a_whatsapp_journey_from_stock_question_to_tracking(
    aiohttp_client, channel_settings, recognizer, fake_twilio, fake_shopify
):
    from tests.fakes.phone import TwilioShopper

    settings = changed(
        channel_settings,
        commerce_backend="shopify",
        shopify_shop_domain="shop-test.myshopify.com",
        shopify_admin_token=TOKEN,
        shopify_webhook_secret=WEBHOOK_SECRET,
        shopify_api_base=fake_shopify.url,
        shopify_reconcile_interval_seconds=0,
    )
    await sync(settings)
    client = await aiohttp_client(create_app(settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", "+15551234567")
    out = await wa.say("Do you have the Harbor Rain Jacket in size L?")
    assert "in stock" in out, out
    await wa.say('/add_to_cart {"product":"harbor-rain-jacket","size":"L","colour":"navy"}')
    await wa.say("checkout")
    await wa.say("10 Downing Street, London SW1A 2AA")
    await wa.say("1")  # skip the receipt
    out = await wa.say("yes")
    [draft] = fake_shopify.drafts.values()
    assert re.search(r"Order #\d+ is placed", out) and draft["invoiceUrl"] in out, out
    number = int(re.search(r"Order #(\d+)", out).group(1))
    order = {
        "id": 5001,
        "updated_at": iso(later(30)),
        "financial_status": "paid",
        "note_attributes": [{"name": "chat_order", "value": str(number)}],
    }
    assert (await deliver(client, "orders/paid", order)).status == 200
    assert f"Payment received for order #{number}" in await wa.replies(settle=0.2)
    shipped = {"id": 7, "order_id": 5001, "status": "success", "tracking_company": "USPS"}
    shipped |= {"tracking_number": "9400111899223", "updated_at": iso(later(40))}
    assert (await deliver(client, "fulfillments/create", shipped)).status == 200
    assert "9400111899223" in await wa.replies(settle=0.2)
    out = await wa.say("where is my order?")
    assert "9400111899223" in out, out
