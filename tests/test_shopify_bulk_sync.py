"""The full sync of a big Shopify shop through a bulk operation (a JSONL file of the whole
catalog, served by the fake on loopback), and the page-at-a-time writes of the mirror: a second
sync changes exactly the rows Shopify changed, a product gone upstream is removed, and a bulk
operation that fails, is refused or stays throttled is reported and leaves the mirror as it was."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from bot.store.models import CommerceProduct, CommerceStock, CommerceVariant, Product, StateRecord, Variant
from integrations.commerce.sync import CatalogSync, sync_key
from integrations.shopify.catalog import ShopifyCatalog
from integrations.shopify.client import ShopifyClient, ShopifyError, ShopifyUnavailable
from service.wiring import build
from tests.fakes.shopify import TOKEN, VERSION, WEBHOOK_SECRET, FakeShopify, iso, later, product
from tests.proactive.test_campaigns import changed
from tests.test_shopify import fake_shopify, shopify_settings  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


async def sync(settings, fake: FakeShopify, bulk_from: int | None = 1):
    """A full sync through our real client, bulk from `bulk_from` products (None: page by page)."""
    services = build(settings)
    client = ShopifyClient(fake.url, VERSION, TOKEN, 5.0, sleep=no_sleep)
    try:
        return await CatalogSync(services.db, ShopifyCatalog(client, bulk_from), None, None).run(full=True)
    finally:
        await client.close()
        await services.close()


async def snapshot(settings) -> dict[str, list[tuple]]:
    """Every row of the catalog and its mirror, as plain values."""
    services = build(settings)

    def read(session) -> dict[str, list[tuple]]:
        out = {}
        for model in (Product, Variant, CommerceProduct, CommerceVariant, CommerceStock):
            rows = session.exec(select(model)).all()
            out[model.__name__] = sorted(tuple(str(getattr(row, f)) for f in model.model_fields) for row in rows)
        return out

    try:
        return await services.db.run(read)
    finally:
        await services.close()


async def test_a_big_shop_is_read_through_one_bulk_operation(shopify_settings, fake_shopify):  # noqa: F811
    summary = await sync(shopify_settings, fake_shopify)
    assert (summary.created, summary.variants_created, summary.hidden) == (4, 10, 1)
    ops = fake_shopify.operations()
    assert ops[0] == "ProductsCount" and "BulkRunQuery" in ops and "BulkOperationStatus" in ops
    assert "CatalogProducts" not in ops  # no page was asked for
    [operation] = fake_shopify.bulk.values()
    assert "first:" not in operation["query"] and "__parentId" not in operation["query"]
    run = next(r for r in fake_shopify.requests if r["operation"] == "BulkRunQuery")
    assert "groupObjects: true" in run["query"]  # a product's variants and levels come right after it
    assert fake_shopify.downloads == [""]  # the file's signed URL is read without our token
    state = await snapshot(shopify_settings)
    variants = {row[0]: row for row in state["Variant"]}
    assert variants["HRJ-S-NAVY"][4] == "3"  # 2 + 1 over two locations
    assert len(state["Product"]) == 4 and len(state["Variant"]) == 10
    assert len(state["CommerceStock"]) == 13  # the draft's level too
    assert not any(row[0] == "DS-OS" for row in state["Variant"])


async def test_bulk_and_paged_syncs_write_the_same_rows(shopify_settings, fake_shopify, settings, tmp_path):  # noqa: F811
    await sync(shopify_settings, fake_shopify, bulk_from=None)
    paged = await snapshot(shopify_settings)
    other = changed(shopify_settings, database_url=f"sqlite:///{tmp_path / 'bulk.db'}")
    await sync(other, fake_shopify)
    assert await snapshot(other) == paged


async def test_a_second_sync_changes_exactly_what_shopify_changed(shopify_settings, fake_shopify):  # noqa: F811
    first = await sync(shopify_settings, fake_shopify)
    before = await snapshot(shopify_settings)
    socks = fake_shopify.find("cozy-wool-socks")
    socks["variants"][0]["price"], socks["updatedAt"] = "16.00", iso(later(5))
    _, navy_m = fake_shopify.variant("HRJ-M-NAVY")
    navy_m["levels"][2] = (4, later(5))  # 0 -> 4 at location 2: back in stock
    fake_shopify.products = [p for p in fake_shopify.products if p["handle"] != "linen-shirt"]
    second = await sync(shopify_settings, fake_shopify)
    assert (first.created, second.created, second.updated, second.unchanged) == (4, 0, 1, 3)
    assert (second.removed, second.variants_updated, second.restocked) == (1, 1, 1)
    after = await snapshot(shopify_settings)
    products = {row[0]: row for row in after["Product"]}
    assert "linen-shirt" not in products and products["cozy-wool-socks"][6] == "1600"

    def changed_rows(table: str) -> tuple[set[tuple], set[tuple]]:
        return set(before[table]) - set(after[table]), set(after[table]) - set(before[table])

    old, new = changed_rows("Variant")
    assert {row[0] for row in old} == {"HRJ-M-NAVY", "LS-S-WHT", "LS-M-WHT", "LS-L-WHT"}
    assert [(row[0], row[4]) for row in new] == [("HRJ-M-NAVY", "4")]
    old, new = changed_rows("Product")
    assert {row[0] for row in old} == {"cozy-wool-socks", "linen-shirt"} and {row[0] for row in new} == {
        "cozy-wool-socks"
    }
    old, new = changed_rows("CommerceStock")
    assert len(old) == 1 and [row[3] for row in new] == ["4"]  # the one level, its row kept
    old, new = changed_rows("CommerceVariant")
    assert {row[2] for row in old} == {"LS-S-WHT", "LS-M-WHT", "LS-L-WHT"} and not new
    old, new = changed_rows("CommerceProduct")
    assert [row[1] for row in old] == ["gid://shopify/Product/3"] == [row[1] for row in new]  # its time


async def test_a_variant_sku_two_products_share_gets_a_key_of_its_own_within_a_page(shopify_settings, fake_shopify):  # noqa: F811
    fake_shopify.products.append(
        product(
            6, "harbor-rain-jacket-kids", "Harbor Rain Jacket Kids", "Jacket", [("HRJ-S-NAVY", "XS", "navy", {1: 1})]
        )
    )
    summary = await sync(shopify_settings, fake_shopify)
    assert summary.created == 5
    state = await snapshot(shopify_settings)
    kids = [row for row in state["Variant"] if row[1] == "harbor-rain-jacket-kids"]
    assert len(kids) == 1 and kids[0][0] != "HRJ-S-NAVY"
    adult = next(row for row in state["Variant"] if row[0] == "HRJ-S-NAVY")
    assert adult[1] == "harbor-rain-jacket" and adult[4] == "3"


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        (
            lambda f: setattr(f, "bulk_error", "INTERNAL_SERVER_ERROR"),
            ShopifyError,
            r"ended FAILED \(INTERNAL_SERVER_ERROR\)",
        ),
        (
            lambda f: setattr(
                f, "bulk_refusal", {"field": None, "message": "already running", "code": "OPERATION_IN_PROGRESS"}
            ),
            ShopifyError,
            "bulk operation refused: OPERATION_IN_PROGRESS already running",
        ),
        (
            lambda f: f.throttle_ops.update(BulkOperationStatus=100),
            ShopifyUnavailable,
            "BulkOperationStatus: still throttled",
        ),
    ],
    ids=["failed", "refused", "throttled"],
)
async def test_a_bulk_operation_that_fails_leaves_the_mirror_as_it_was(
    shopify_settings,  # noqa: F811
    fake_shopify,  # noqa: F811
    setup,
    error,
    message,
):
    await sync(shopify_settings, fake_shopify)
    before = await snapshot(shopify_settings)
    services = build(shopify_settings)
    try:
        synced = await services.db.run(lambda s: s.get(StateRecord, sync_key("shopify")).data)
    finally:
        await services.close()
    socks = fake_shopify.find("cozy-wool-socks")
    socks["title"], socks["updatedAt"] = "Cozy Wool Socks II", iso(later(5))
    fake_shopify.products = [p for p in fake_shopify.products if p["handle"] != "linen-shirt"]
    setup(fake_shopify)
    with pytest.raises(error, match=message):
        await sync(shopify_settings, fake_shopify)
    assert await snapshot(shopify_settings) == before
    services = build(shopify_settings)
    try:  # the time of the last sync stays that of the one that worked
        assert await services.db.run(lambda s: s.get(StateRecord, sync_key("shopify")).data) == synced
    finally:
        await services.close()


async def test_the_sync_command_reports_a_failed_bulk_operation(shopify_settings, fake_shopify):  # noqa: F811
    fake_shopify.bulk_error = "ACCESS_DENIED"
    fake_shopify.bulk_polls = 0
    env = {
        **os.environ,
        "DATABASE_URL": shopify_settings.database_url,
        "COMMERCE_BACKEND": "shopify",
        "SHOPIFY_SHOP_DOMAIN": "shop-test.myshopify.com",
        "SHOPIFY_ADMIN_TOKEN": TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHOPIFY_API_BASE": fake_shopify.url,
        "SHOPIFY_BULK_SYNC_FROM": "5",
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
    assert proc.returncode == 1, (out.decode(), err.decode())
    assert "error: Shopify: bulk operation gid://shopify/BulkOperation/1 ended FAILED (ACCESS_DENIED)" in err.decode()
    assert "BulkRunQuery" in fake_shopify.operations() and "products:" not in out.decode()


async def test_a_bulk_file_is_read_as_a_stream_of_lines(fake_shopify):  # noqa: F811
    """Lines split across the file's chunks are read whole; a product with no variants is given."""
    fake_shopify.products.append(product(7, "empty-box", "Empty Box", "Box", []))
    long_title = "Long " * 30_000  # a line longer than a read chunk
    fake_shopify.find("linen-shirt")["descriptionHtml"] = f"<p>{long_title}</p>"
    client = ShopifyClient(fake_shopify.url, VERSION, TOKEN, 5.0, sleep=no_sleep)
    try:
        pages = [page async for page in ShopifyCatalog(client, 1).bulk_products()]
    finally:
        await client.close()
    [page] = pages
    by_id = {p.external_id: p for p in page if not isinstance(p, Exception)}
    assert len(by_id) == 6 and not by_id["gid://shopify/Product/7"].visible
    assert by_id["gid://shopify/Product/5"].product.description == long_title.strip()
    levels = by_id["gid://shopify/Product/1"].variants[0].levels or []
    assert [level.location_id for level in levels] == ["gid://shopify/Location/1", "gid://shopify/Location/2"]
    assert [len(p.variants) for p in by_id.values()] == [4, 2, 1, 1, 3, 0]


async def test_small_pages_are_written_together_and_the_last_batch_too(shopify_settings, fake_shopify):  # noqa: F811
    from integrations.commerce.sync import WRITE_BATCH
    from integrations.shopify.catalog import PRODUCTS_PAGE

    for n in range(10, 10 + WRITE_BATCH + 5):
        fake_shopify.products.append(product(n, f"tee-{n}", f"Tee {n}", "Shirt", [(f"T{n}-M", "M", "white", {1: 1})]))
    services = build(shopify_settings)
    client = ShopifyClient(fake_shopify.url, VERSION, TOKEN, 5.0, sleep=no_sleep)
    written: list[int] = []
    try:
        summary = await CatalogSync(services.db, ShopifyCatalog(client), None, None).run(progress=written.append)
        variants = await services.db.run(lambda s: len(s.exec(select(Variant)).all()))
    finally:
        await client.close()
        await services.close()
    total = len(fake_shopify.products)
    first = -(-WRITE_BATCH // PRODUCTS_PAGE) * PRODUCTS_PAGE  # whole pages, up to the batch size
    assert written == [first, total - first]
    assert (summary.products_seen, summary.created, summary.hidden) == (total, total - 1, 1)
    assert variants == 10 + WRITE_BATCH + 5
    assert fake_shopify.operations().count("CatalogProducts") == -(-total // PRODUCTS_PAGE)
