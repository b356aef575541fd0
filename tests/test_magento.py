"""Magento 2 as the commerce platform, against a fake REST API on loopback: the first sync of
configurable and simple products with stock summed over sources, the poll that picks up stock,
product, order and shipment changes from a cursor kept in the store, the restock waitlist, and
paid chat orders placed in Magento once."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.store.models import CommerceStock, Order, Product, Variant
from integrations.magento.client import MagentoError
from integrations.magento.sync import CURSOR_KEY
from service.app import DB, create_app
from service.wiring import build
from tests.fakes.magento import TOKEN, FakeMagento, later, mtime
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def fake_magento():
    fake = await FakeMagento().start()
    yield fake
    await fake.close()


def magento(settings, fake, **more):
    return changed(
        settings,
        commerce_backend="magento",
        magento_url=fake.url,
        magento_token=TOKEN,
        magento_poll_interval_seconds=0,
        **more,
    )


@pytest.fixture
def magento_settings(settings, fake_magento):
    return magento(settings, fake_magento)


async def sync(settings):
    services = build(settings)
    try:
        return await services.magento_sync.run()
    finally:
        await services.close()


async def poll(settings):
    services = build(settings)
    try:
        return await services.magento_sync.poll()
    finally:
        await services.close()


async def poll_app(client):
    """One tick of the scheduled poll, in the running app (its outbox sends the notices)."""
    from service.keys import SERVICES

    return await client.app[SERVICES].magento_sync.poll()


@pytest.fixture
async def shop(aiohttp_client, magento_settings, recognizer, fake_magento):
    await sync(magento_settings)
    return await aiohttp_client(create_app(magento_settings, recognizer))


async def rows(client, model, *where):
    return await client.app[DB].run(lambda s: list(s.exec(select(model).where(*where)).all()))


async def stock(client, sku: str) -> int:
    return await client.app[DB].run(lambda s: s.get(Variant, sku).stock)


async def test_sync_copies_configurable_and_simple_products_with_stock_summed_over_sources(shop, fake_magento):
    products = {p.sku: p for p in await rows(shop, Product)}
    assert sorted(products) == ["cozy-wool-socks", "harbor-rain-jacket", "summit-trail-runner"]
    jacket = products["harbor-rain-jacket"]
    assert jacket.name == "Harbor Rain Jacket" and jacket.price_cents == 8900 and jacket.category == "jackets"
    assert jacket.image_url == f"{fake_magento.url}/media/catalog/product/m/j/mj01.jpg"
    assert "made to last" in jacket.description
    variants = {v.sku: v for v in await rows(shop, Variant)}
    assert sorted(variants) == [
        "CWS01",
        "MJ01-L-Navy",
        "MJ01-M-Navy",
        "MJ01-M-Red",
        "MJ01-S-Navy",
        "TR01-10-Grey",
        "TR01-9-Grey",
    ]
    assert (variants["MJ01-S-Navy"].size, variants["MJ01-S-Navy"].colour) == ("S", "navy")  # option ids read as labels
    assert variants["MJ01-S-Navy"].stock == 3  # 2 + 1 over two sources
    assert variants["MJ01-M-Red"].stock == 4  # the source marked out of stock counts 0
    assert variants["MJ01-M-Navy"].stock == 0 and variants["CWS01"].stock == 30
    assert variants["CWS01"].colour == "oat"
    assert "DS01" not in variants  # a disabled product is not offered
    assert all(r["token"] == TOKEN and r["store"] == "default" for r in fake_magento.requests)
    assert "GET configurable-products/MJ01/children" in fake_magento.paths()
    assert await shop.app[DB].run(lambda s: s.exec(select(func.count()).select_from(CommerceStock)).one()) >= 8


async def test_products_are_read_page_by_page(magento_settings, fake_magento):
    services = build(magento_settings)
    services.magento_sync.catalog.page_size = 3  # 10 products (children too): pages 1 to 4
    try:
        summary = await services.magento_sync.run()
    finally:
        await services.close()
    pages = [r["query"]["searchCriteria[currentPage]"] for r in fake_magento.requests if r["path"] == "products"]
    assert pages == ["1", "2", "3", "4"]
    assert summary.created == 3 and summary.variants_created == 7


async def test_a_wrong_token_is_a_clear_error(settings, fake_magento):
    bad = changed(settings, commerce_backend="magento", magento_url=fake_magento.url, magento_token="wrong")
    with pytest.raises(MagentoError, match="MAGENTO_TOKEN"):
        await sync(bad)


async def test_the_poll_picks_up_a_stock_change_and_tells_the_waitlist(shop, fake_magento, magento_settings):
    web = await WebShopper.start(shop)
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert "sold out" in web.texts(), web.texts()
    await web.tap("Yes")
    seen = max(m["id"] for m in await web.history())
    fake_magento.set_stock("TR01-10-Grey", "default", 4)
    fake_magento.set_stock("MJ01-L-Navy", "warehouse_b", 2)
    summary = await poll_app(shop)
    assert summary.restocked == 1
    assert await stock(shop, "TR01-10-Grey") == 4 and await stock(shop, "MJ01-L-Navy") == 2
    for _ in range(100):
        notices = [m for m in await web.history(after=seen) if m["direction"] == "out"]
        if notices:
            break
        await asyncio.sleep(0.05)
    assert len(notices) == 1 and "Summit Trail Runner (10, grey) is back in stock" in notices[0]["text"]
    await poll_app(shop)  # nothing changed: nobody told again
    await asyncio.sleep(0.2)
    assert len([m for m in await web.history(after=seen) if m["direction"] == "out"]) == 1
    await web.say("Do you have the Summit Trail Runner in size 10?")
    assert "in stock" in web.texts(), web.texts()


async def test_the_poll_reads_changed_products_only_and_an_older_copy_changes_nothing(magento_settings, fake_magento):
    await sync(magento_settings)
    socks = fake_magento.find("CWS01")
    socks["name"], socks["updated_at"] = "Cozy Wool Socks 2-pack", mtime(later(10))
    child = fake_magento.find("MJ01-M-Red")
    child["price"], child["updated_at"] = 79.0, mtime(later(12))  # a child alone: its parent is read again
    start = len(fake_magento.requests)
    summary = await poll(magento_settings)
    products = [r for r in fake_magento.requests[start:] if r["path"] == "products"]
    assert products[0]["query"]["searchCriteria[filter_groups][1][filters][0][field]"] == "updated_at"
    assert products[0]["query"]["searchCriteria[filter_groups][1][filters][0][value]"] == mtime(later(0))
    assert products[0]["query"]["searchCriteria[filter_groups][1][filters][0][condition_type]"] == "gteq"
    assert summary.updated == 2
    services = build(magento_settings)
    try:
        assert await services.db.run(lambda s: s.get(Product, "cozy-wool-socks").name) == "Cozy Wool Socks 2-pack"
        # An older copy (a full sync that read a lagging replica) changes nothing.
        socks["name"], socks["updated_at"] = "Cozy Wool Socks (old)", mtime(later(5))
        again = await services.magento_sync.run()
        assert again.unchanged == 4  # the disabled one too: read, not offered
        assert await services.db.run(lambda s: s.get(Product, "cozy-wool-socks").name) == "Cozy Wool Socks 2-pack"
    finally:
        await services.close()


async def test_the_poll_cursor_survives_a_restart(magento_settings, fake_magento):
    await sync(magento_settings)
    fake_magento.find("CWS01")["updated_at"] = mtime(later(30))
    await poll(magento_settings)  # one service
    start = len(fake_magento.requests)
    await poll(magento_settings)  # another, as after a restart: it starts where the first stopped
    first = next(r for r in fake_magento.requests[start:] if r["path"] == "products")
    assert first["query"]["searchCriteria[filter_groups][1][filters][0][value]"] == mtime(later(30))
    services = build(magento_settings)
    try:
        from bot.store.models import StateRecord

        cursor = await services.db.run(lambda s: s.get(StateRecord, CURSOR_KEY).data)
    finally:
        await services.close()
    assert "2026-12-01T09:30:00+00:00" in cursor
    # The job the leading process runs on its schedule.
    services = build(changed(magento_settings, magento_poll_interval_seconds=60))
    try:
        assert services.scheduler._periodic["magento-poll"][0] == 60
    finally:
        await services.close()


def test_magento_settings_are_checked(settings):
    with pytest.raises(ValueError, match="MAGENTO_URL, MAGENTO_TOKEN"):
        changed(settings, commerce_backend="magento")
    with pytest.raises(ValueError, match="MAGENTO_URL is the shop's base URL"):
        changed(settings, commerce_backend="magento", magento_url="shop.example.com", magento_token="t")
    ok = changed(settings, commerce_backend="magento", magento_url="https://shop.example.com/", magento_token="t")
    assert ok.magento_base == "https://shop.example.com/rest/default/V1"
    assert ok.magento_poll_interval_seconds == 60
    with pytest.raises(ValueError, match="WOOCOMMERCE_URL"):
        changed(settings, commerce_backend="woocommerce")


async def test_the_catalog_sync_command_shows_progress_and_a_summary(magento_settings, fake_magento):
    env = {
        **os.environ,
        "DATABASE_URL": magento_settings.database_url,
        "COMMERCE_BACKEND": "magento",
        "MAGENTO_URL": fake_magento.url,
        "MAGENTO_TOKEN": TOKEN,
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
    assert "products: 4 read, 3 created, 0 updated, 0 unchanged, 0 removed, 0 kept sold out, " in out.decode()
    assert "1 not offered" in out.decode() and "variants: 7 created" in out.decode()
    assert re.search(r"Magento products: 100%.*10/10", err.decode()), err.decode()


async def test_a_whatsapp_journey_from_stock_question_to_tracking(
    aiohttp_client, channel_settings, recognizer, fake_twilio, fake_magento
):
    from tests.fakes.phone import TwilioShopper

    settings = magento(channel_settings, fake_magento)
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
    number = int(re.search(r"Order #(\d+) is placed", out).group(1))
    link = re.search(r"https://shop\.example\.com(/pay/\S+\?sig=\w+)", out)
    assert link, out
    path = link.group(1)
    paid = await client.post(path.split("?")[0], data={"sig": path.split("sig=")[1]})
    assert paid.status == 200
    assert f"Payment received for order #{number}" in await wa.replies(settle=0.2)

    # The paid order is placed in Magento; the first answer is lost, and the next poll finds the
    # order by its cart instead of placing it again.
    fake_magento.lose_order_answers = 1
    await poll_app(client)
    assert len(fake_magento.orders) == 1
    [ours] = await rows(client, Order, Order.id == number - 1000)
    assert ours.external_order_id is None
    await poll_app(client)
    await poll_app(client)
    assert len(fake_magento.orders) == 1
    [placed] = fake_magento.orders
    [ours] = await rows(client, Order, Order.id == number - 1000)
    assert ours.external_order_id == str(placed["entity_id"])
    assert placed["items"] == [{"sku": "MJ01-L-Navy", "qty_ordered": 1}]
    assert placed["payment"]["method"] == "checkmo"
    address = placed["shipping"]["shipping_address"]
    assert address["postcode"] == "SW1A 2AA" and address["street"] == ["10 Downing Street, London SW1A 2AA"]
    assert [p for p in fake_magento.paths() if p.startswith("POST guest-carts") and p.endswith("guest-carts")] == [
        "POST guest-carts"
    ]

    fake_magento.ship(placed, "9400111899223", "usps", datetime.now(UTC) + timedelta(minutes=1))
    await poll_app(client)
    assert "9400111899223" in await wa.replies(settle=0.2)
    [ours] = await rows(client, Order, Order.id == number - 1000)
    assert (ours.status, ours.carrier, ours.tracking_number) == ("shipped", "USPS", "9400111899223")
    out = await wa.say("where is my order?")
    assert "9400111899223" in out, out


def test_source_items_are_summed_per_sku_and_bad_ones_skipped():
    from integrations.magento.mapping import source_levels

    at = datetime(2026, 12, 3, tzinfo=UTC)
    levels = source_levels(
        [
            {"sku": "A", "source_code": "default", "quantity": 2.0, "status": 1},
            {"sku": "A", "source_code": "b", "quantity": 5, "status": 0},
            {"sku": "A", "source_code": "c", "quantity": -3, "status": 1},
            {"sku": "B", "source_code": "default", "quantity": "lots", "status": 1},
        ],
        at,
    )
    assert [(lv.location_id, lv.available) for lv in levels["A"]] == [("default", 2), ("b", 0), ("c", 0)]
    assert "B" not in levels
