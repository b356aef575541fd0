"""WooCommerce as the commerce platform, against a fake REST API v3 on loopback: the first sync
of simple and variable products into the local catalog, signed webhooks applied once and never
backwards (a forged one refused, the creation ping answered), stock back to the waitlist, and a
WhatsApp journey paid through a pending order's payment URL, confirmed by `order.updated` and
tracked from an order note."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.store.models import CommerceVariant, Order, Product, ProviderEvent, Variant
from integrations.orders import OrderLine, OrderView
from service.app import DB, create_app
from service.wiring import build
from tests.fakes.web_shopper import WebShopper
from tests.fakes.woocommerce import KEY, SECRET, WEBHOOK_SECRET, FakeWooCommerce, gmt, later, sign, webhook
from tests.proactive.test_campaigns import changed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def fake_woo():
    fake = await FakeWooCommerce().start()
    yield fake
    await fake.close()


def woo(settings, fake):
    return changed(
        settings,
        commerce_backend="woocommerce",
        woocommerce_url=fake.url,
        woocommerce_key=KEY,
        woocommerce_secret=SECRET,
        woocommerce_webhook_secret=WEBHOOK_SECRET,
        woocommerce_reconcile_interval_seconds=0,
    )


@pytest.fixture
def woo_settings(settings, fake_woo):
    return woo(settings, fake_woo)


async def sync(settings):
    services = build(settings)
    try:
        return await services.catalog_sync.run(full=True)
    finally:
        await services.close()


@pytest.fixture
async def shop(aiohttp_client, woo_settings, recognizer, fake_woo):
    """The app on a store synced from the fake (the recogniser learns the synced names)."""
    await sync(woo_settings)
    return await aiohttp_client(create_app(woo_settings, recognizer))


async def rows(client, model, *where):
    return await client.app[DB].run(lambda s: list(s.exec(select(model).where(*where)).all()))


async def count(client, model, *where) -> int:
    return await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(model).where(*where)).one())


async def stock(client, sku: str) -> int:
    return await client.app[DB].run(lambda s: s.get(Variant, sku).stock)


async def deliver(client, topic, payload, delivery_id=None, secret=WEBHOOK_SECRET):
    body, headers = webhook(topic, payload, delivery_id, secret)
    return await client.post("/webhooks/woocommerce", data=body, headers=headers)


async def test_sync_copies_variable_and_simple_products_with_sizes_colours_and_stock(shop, fake_woo):
    products = {p.sku: p for p in await rows(shop, Product)}
    assert sorted(products) == ["canvas-tote", "cozy-wool-socks", "harbor-rain-jacket", "summit-trail-runner"]
    jacket = products["harbor-rain-jacket"]
    assert jacket.name == "Harbor Rain Jacket" and jacket.price_cents == 8900 and jacket.category == "jackets"
    assert jacket.image_url == "https://shop.test/wp-content/uploads/harbor-rain-jacket.jpg"
    variants = {v.sku: v for v in await rows(shop, Variant)}
    assert len(variants) == 8  # 4 + 2 variations, 2 simple products
    assert (variants["HRJ-S-NAVY"].size, variants["HRJ-S-NAVY"].colour, variants["HRJ-S-NAVY"].stock) == (
        "S",
        "navy",
        3,
    )
    assert variants["HRJ-M-NAVY"].stock == 0 and variants["STR-10-GRY"].stock == 0
    assert (variants["CWS-OS-OAT"].size, variants["CWS-OS-OAT"].stock) == ("OS", 30)
    assert variants["CT-OS"].stock > 0  # stock not counted, in stock
    assert "DS-OS" not in variants  # a draft is not offered
    links = {r.variant_sku: r for r in await rows(shop, CommerceVariant, CommerceVariant.platform == "woocommerce")}
    assert (links["HRJ-L-NAVY"].product_external_id, links["HRJ-L-NAVY"].external_id) == ("10", "104")
    assert (links["CWS-OS-OAT"].product_external_id, links["CWS-OS-OAT"].external_id) == ("30", "30")
    first = fake_woo.requests[0]
    assert first["auth"] == (KEY, SECRET) and first["path"] == "products"
    assert first["query"]["per_page"] == "100" and first["query"]["page"] == "1"
    assert sorted(p for p in fake_woo.paths() if p.endswith("/variations")) == [
        "products/10/variations",
        "products/20/variations",
    ]


async def test_a_second_sync_changes_nothing_and_pages_are_followed(woo_settings, fake_woo):
    first = await sync(woo_settings)
    assert (first.created, first.variants_created, first.hidden) == (4, 8, 1)
    again = await sync(woo_settings)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    fake_woo.per_page_cap = 2  # two pages of products: X-WP-TotalPages is followed
    fake_woo.products = [p for p in fake_woo.products if p["slug"] != "canvas-tote"]
    start = len(fake_woo.requests)
    third = await sync(woo_settings)
    assert third.products_seen == 4 and third.removed == 1
    pages = [r["query"]["page"] for r in fake_woo.requests[start:] if r["path"] == "products"]
    assert pages == ["1", "2"]


async def test_the_creation_ping_gets_200_and_stores_nothing(shop):
    answer = await shop.post(
        "/webhooks/woocommerce", data=b"webhook_id=12", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status == 200 and (await answer.json())["outcome"] == "ping"
    assert await count(shop, ProviderEvent) == 0


async def test_a_forged_webhook_gets_403_and_leaves_nothing(shop, fake_woo):
    fake_woo.variation("STR-10-GRY")[1]["stock_quantity"] = 9
    body = fake_woo.product_webhook("summit-trail-runner", later(5))
    assert (await deliver(shop, "product.updated", body, secret="guessed")).status == 403
    unsigned = await shop.post(
        "/webhooks/woocommerce",
        data=json.dumps(body).encode(),
        headers={"X-WC-Webhook-Topic": "product.updated", "X-WC-Webhook-Delivery-ID": "x"},
    )
    assert unsigned.status == 403
    assert await count(shop, ProviderEvent) == 0
    assert await stock(shop, "STR-10-GRY") == 0


async def test_bad_webhook_bodies_get_400_and_change_nothing(shop):
    body = b"not json"
    _, headers = webhook("product.updated", {})
    headers["X-WC-Webhook-Signature"] = sign(body)
    assert (await shop.post("/webhooks/woocommerce", data=body, headers=headers)).status == 400
    missing = await deliver(shop, "product.updated", {"id": 30, "type": "simple", "slug": "cozy-wool-socks"})
    assert missing.status == 400 and "date_modified_gmt" in (await missing.json())["error"]
    no_id = await deliver(shop, "order.updated", {"status": "processing"})
    assert no_id.status == 400
    assert await count(shop, ProviderEvent) == 0


async def test_a_duplicate_delivery_is_processed_once(shop, fake_woo):
    socks = fake_woo.find("cozy-wool-socks")
    socks["stock_quantity"] = 12
    first = await deliver(shop, "product.updated", fake_woo.product_webhook("cozy-wool-socks", later(5)), "d-1")
    assert (await first.json())["outcome"] == "applied"
    assert await stock(shop, "CWS-OS-OAT") == 12
    socks["stock_quantity"] = 1
    retry = await deliver(shop, "product.updated", fake_woo.product_webhook("cozy-wool-socks", later(6)), "d-1")
    assert (await retry.json())["outcome"] == "duplicate"
    assert await stock(shop, "CWS-OS-OAT") == 12
    assert await count(shop, ProviderEvent, ProviderEvent.event_id == "d-1/30") == 1
    # WooCommerce's delivery id is a hash of the webhook and the second: another product changed in
    # the same second comes with the same one, and is applied.
    fake_woo.find("canvas-tote").update(manage_stock=True, stock_quantity=0, stock_status="outofstock")
    other = await deliver(shop, "product.updated", fake_woo.product_webhook("canvas-tote", later(5)), "d-1")
    assert (await other.json())["outcome"] == "applied"
    assert await stock(shop, "CT-OS") == 0


async def test_out_of_order_updates_are_ignored(shop, fake_woo):
    socks = fake_woo.find("cozy-wool-socks")
    socks["name"], socks["stock_quantity"] = "Cozy Wool Socks II", 7
    newer = fake_woo.product_webhook("cozy-wool-socks", later(10))
    socks["name"], socks["stock_quantity"] = "Cozy Wool Socks (old)", 2
    older = fake_woo.product_webhook("cozy-wool-socks", later(5))
    assert (await (await deliver(shop, "product.updated", newer)).json())["outcome"] == "applied"
    assert (await (await deliver(shop, "product.updated", older)).json())["outcome"] == "stale"
    assert (await rows(shop, Product, Product.sku == "cozy-wool-socks"))[0].name == "Cozy Wool Socks II"
    assert await stock(shop, "CWS-OS-OAT") == 7


async def test_a_deleted_product_leaves_the_catalog(shop):
    answer = await deliver(shop, "product.deleted", {"id": 50})
    assert (await answer.json())["outcome"] == "deleted"
    assert await rows(shop, Product, Product.sku == "canvas-tote") == []


async def test_stock_back_from_0_tells_a_waitlisted_shopper(shop, fake_woo):
    web = await WebShopper.start(shop)
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert "sold out" in web.texts(), web.texts()
    await web.tap("Yes")
    seen = max(m["id"] for m in await web.history())
    _, variation = fake_woo.variation("STR-10-GRY")
    variation.update(stock_quantity=4, stock_status="instock", date_modified_gmt=gmt(later(5)))
    # WooCommerce sends the variation; its parent is read again with all its variations.
    body = {**variation, "type": "variation", "parent_id": 20}
    answer = await deliver(shop, "product.updated", body)
    assert answer.status == 200 and (await answer.json())["outcome"] == "applied"
    assert await stock(shop, "STR-10-GRY") == 4
    for _ in range(100):
        notices = [m for m in await web.history(after=seen) if m["direction"] == "out"]
        if notices:
            break
        await asyncio.sleep(0.05)
    assert len(notices) == 1 and "Summit Trail Runner (10, grey) is back in stock" in notices[0]["text"]


async def test_the_catalog_sync_command_shows_progress_and_a_summary(woo_settings, fake_woo):
    env = {
        **os.environ,
        "DATABASE_URL": woo_settings.database_url,
        "COMMERCE_BACKEND": "woocommerce",
        "WOOCOMMERCE_URL": fake_woo.url,
        "WOOCOMMERCE_KEY": KEY,
        "WOOCOMMERCE_SECRET": SECRET,
        "WOOCOMMERCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
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
    assert "variants: 8 created" in out.decode()
    assert re.search(r"WooCommerce products: 100%.*5/5", err.decode()), err.decode()


def test_woocommerce_settings_are_checked_clearly(settings):
    with pytest.raises(ValueError, match="WOOCOMMERCE_URL, WOOCOMMERCE_KEY, WOOCOMMERCE_SECRET"):
        changed(settings, commerce_backend="woocommerce")
    with pytest.raises(ValueError, match="must be https://"):
        changed(
            settings,
            commerce_backend="woocommerce",
            woocommerce_url="http://shop.example",
            woocommerce_key="ck",
            woocommerce_secret="cs",
            woocommerce_webhook_secret="w",
        )


async def test_a_whatsapp_journey_from_stock_question_to_tracking(
    aiohttp_client, channel_settings, recognizer, fake_twilio, fake_woo
):
    from tests.fakes.phone import TwilioShopper

    settings = woo(channel_settings, fake_woo)
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
    [made] = fake_woo.orders.values()
    assert re.search(r"Order #\d+ is placed", out) and made["payment_url"] in out, out
    number = int(re.search(r"Order #(\d+)", out).group(1))
    assert made["status"] == "pending" and made["line_items"] == [
        {"product_id": 10, "variation_id": 104, "quantity": 1}
    ]
    assert made["meta_data"] == [{"key": "chat_order", "value": str(number)}]
    order = (await rows(client, Order, Order.id == number - 1000))[0]
    assert order.payment_ref == f"wc-order-{made['id']}" and order.status == "pending_payment"

    paid = fake_woo.order_webhook(made["id"], "processing", later(30))
    assert (await deliver(client, "order.updated", paid, "o-1")).status == 200
    assert (await deliver(client, "order.updated", paid, "o-1")).status == 200  # a duplicate
    replies = await wa.replies(settle=0.2)
    assert replies.count(f"Payment received for order #{number}") == 1, replies
    older = fake_woo.order_webhook(made["id"], "pending", later(20))
    assert (await (await deliver(client, "order.updated", older)).json())["outcome"] == "stale"

    fake_woo.add_note(made["id"], "Shipped with USPS, tracking number 9400111899223", later(39))
    done = fake_woo.order_webhook(made["id"], "completed", later(40))
    assert (await deliver(client, "order.updated", done)).status == 200
    assert f"orders/{made['id']}/notes" in fake_woo.paths()
    assert "9400111899223" in await wa.replies(settle=0.2)
    order = (await rows(client, Order, Order.id == number - 1000))[0]
    assert (order.status, order.carrier, order.tracking_number) == ("shipped", "USPS", "9400111899223")
    out = await wa.say("where is my order?")
    assert "9400111899223" in out, out


def view(number: int, **extra) -> OrderView:
    line = OrderLine(1, "Harbor Rain Jacket", "M", "red", 2, 8900, "HRJ-M-RED")
    sock = OrderLine(2, "Cozy Wool Socks", "OS", "oat", 1, 1400, "CWS-OS-OAT")
    fields = {
        "number": number,
        "status": "pending_payment",
        "total_cents": 2 * 8900 + 1400 - 500 + 599,
        "shipping_address": "1 Main St, Springfield",
        "payment_url": None,
        "discount_code": "WELCOME5",
        "carrier": None,
        "tracking_number": None,
        "tracking_url": None,
        "created_at": "Dec 03",
        "lines": (line, sock),
        "returnable": False,
        "discount_cents": 500,
        "shipping_cents": 599,
        "receipt_contact": "shopper@example.com",
        "placed_at": datetime.now(UTC),
    }
    return OrderView(**(fields | extra))


async def test_checkout_makes_one_pending_order_even_when_asked_twice(woo_settings, fake_woo):
    await sync(woo_settings)
    services = build(woo_settings)
    try:
        first = await services.payments.create_link(view(1042))
        # A retry (the answer lost, the shopper tapping again) finds the order made before.
        again = await services.payments.create_link(view(1042))
        other = await services.payments.create_link(view(1043))
    finally:
        await services.close()
    assert first == again and other.reference != first.reference
    assert len(fake_woo.orders) == 2 and len(fake_woo.paths("POST")) == 2
    made = fake_woo.orders[int(first.reference.removeprefix("wc-order-"))]
    assert first.url == made["payment_url"]
    assert made["line_items"] == [
        {"product_id": 10, "variation_id": 103, "quantity": 2},
        {"product_id": 30, "quantity": 1},
    ]
    assert made["fee_lines"] == [{"name": "Discount WELCOME5", "total": "-5.00", "tax_status": "none"}]
    assert made["shipping_lines"][0]["total"] == "5.99"
    assert made["billing"] == {"email": "shopper@example.com"}
    assert made["total"] == "192.99" == f"{view(1042).total_cents / 100:.2f}"  # 2 x 89 + 14 - 5 + 5.99


async def test_tracking_from_the_shipment_tracking_meta_marks_the_order_shipped(shop, fake_woo):
    from tests.dialogs.test_checkout import add
    from tests.test_stripe_payments import checkout

    web = await WebShopper.start(shop)
    await add(web, "add the cozy wool socks")
    number = await checkout(web)
    [made] = fake_woo.orders.values()
    assert web.last[-1]["links"][0]["url"] == made["payment_url"]
    body = fake_woo.order_webhook(made["id"], "completed", later(30))
    body["meta_data"] = [
        *body["meta_data"],
        {
            "key": "_wc_shipment_tracking_items",
            "value": [
                {"tracking_provider": "fedex", "tracking_number": "7489 2277 0001", "date_shipped": "1764752400"}
            ],
        },
    ]
    answer = await deliver(shop, "order.updated", body)
    assert (await answer.json())["outcome"] == "applied"  # paid and shipped in one
    order = (await rows(shop, Order, Order.id == number - 1000))[0]
    assert (order.status, order.carrier, order.tracking_number) == ("shipped", "FedEx", "748922770001")
    assert order.tracking_url and order.tracking_url.startswith("https://www.fedex.com/")
    assert not any(p.endswith("/notes") for p in fake_woo.paths())  # the meta was enough
    # An order placed on the website is not one of the chat's: nothing happens.
    stranger = {**body, "id": 99999, "meta_data": []}
    assert (await (await deliver(shop, "order.updated", stranger)).json())["outcome"] == "unknown"


async def test_the_reconcile_rereads_only_products_modified_since_the_last_sync(woo_settings, fake_woo):
    await sync(woo_settings)
    socks = fake_woo.find("cozy-wool-socks")
    socks["name"], socks["date_modified_gmt"] = "Cozy Wool Socks 2-pack", gmt(datetime.now(UTC) + timedelta(minutes=5))
    services = build(woo_settings)
    try:
        summary = await services.catalog_sync.reconcile()
        name = await services.db.run(lambda s: s.get(Product, "cozy-wool-socks").name)
        services.settings = changed(woo_settings, woocommerce_reconcile_interval_seconds=60)
        assert "woocommerce-reconcile" in services.scheduler._periodic
    finally:
        await services.close()
    [query] = [r["query"] for r in fake_woo.requests if r["path"] == "products"][-1:]
    assert "modified_after" in query and query["dates_are_gmt"] == "true"
    assert (summary.products_seen, summary.updated) == (1, 1)
    assert name == "Cozy Wool Socks 2-pack"


async def test_a_product_webhook_gets_503_when_its_variations_cannot_be_read(shop, fake_woo):
    fake_woo.fail_for(30)
    body = fake_woo.product_webhook("summit-trail-runner", later(5))
    answer = await deliver(shop, "product.updated", body)
    assert answer.status == 503
    assert await count(shop, ProviderEvent) == 0  # nothing stored: the reconcile reads it later
    assert len([r for r in fake_woo.requests if r["path"] == "products/20/variations"]) >= 3  # asked again twice


async def test_an_order_made_but_not_answered_is_found_not_made_again(woo_settings, fake_woo):
    await sync(woo_settings)
    fake_woo.lose_answers(1, 1.5)
    services = build(changed(woo_settings, woocommerce_timeout_seconds=0.5))
    try:
        link = await services.payments.create_link(view(1050))
    finally:
        await services.close()
    [made] = fake_woo.orders.values()
    assert len(fake_woo.paths("POST")) == 1  # a write is not asked again blindly
    assert link.reference == f"wc-order-{made['id']}" and link.url == made["payment_url"]
