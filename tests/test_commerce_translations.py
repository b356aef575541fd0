"""Products' Traditional Chinese names and descriptions read from the commerce platforms: Shopify's
translations in the zh-TW locale (paged sync, bulk sync, product webhooks) and Magento's zh-TW
store view, against fakes on loopback through our real clients; a zh-TW shopper then finds the
product by its Chinese name, and the running app's recogniser learns a name a sync changed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from sqlmodel import select

from bot.store.models import Product
from integrations.commerce.sync import CatalogSync
from integrations.shopify.catalog import ShopifyCatalog
from integrations.shopify.client import ShopifyClient
from service.app import create_app
from service.keys import SERVICES
from service.wiring import build
from tests.fakes.magento import later as magento_later
from tests.fakes.magento import mtime
from tests.fakes.shopify import TOKEN, VERSION, FakeShopify, later
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed
from tests.test_magento import fake_magento, magento  # noqa: F401  (fixtures)
from tests.test_magento import sync as magento_sync
from tests.test_shopify import deliver, fake_shopify, shopify_settings, sync  # noqa: F401  (fixtures)
from tests.test_shopify_bulk_sync import no_sleep, snapshot


@pytest.fixture
def settings(settings):
    """The shop reads its zh-TW translations (the setting is off by default: Shopify asks for the
    read_translations scope, which an app installed earlier may lack)."""
    return changed(settings, commerce_zh_locale="zh-TW")


JACKET_ZH = "港灣防水外套"
JACKET_HTML = "<p>輕量<strong>防水</strong>，適合雨天。</p>"
JACKET_TEXT = "輕量防水，適合雨天。"
ASK_ZH = "港灣防水的有L號嗎？"  # the Chinese name's own words, no category word: only name_zh can match


async def products(settings) -> dict[str, Product]:
    services = build(settings)
    try:
        return await services.db.run(lambda s: {p.sku: p for p in s.exec(select(Product)).all()})
    finally:
        await services.close()


def translated(fake: FakeShopify) -> None:
    fake.translate("harbor-rain-jacket", "zh-TW", title=JACKET_ZH, body_html=JACKET_HTML)
    fake.translate("harbor-rain-jacket", "ja", title="ハーバー レインジャケット")  # another locale: not read


async def test_the_paged_sync_reads_zh_tw_translations_and_a_zh_shopper_finds_the_product(
    aiohttp_client,
    shopify_settings,  # noqa: F811
    fake_shopify,  # noqa: F811
    recognizer,
):
    translated(fake_shopify)
    await sync(shopify_settings)
    found = await products(shopify_settings)
    jacket = found["harbor-rain-jacket"]
    assert (jacket.name, jacket.name_zh, jacket.description_zh) == ("Harbor Rain Jacket", JACKET_ZH, JACKET_TEXT)
    assert all(p.name_zh is None and p.description_zh is None for sku, p in found.items() if sku != jacket.sku)
    asked = [r for r in fake_shopify.requests if r["operation"] == "CatalogProducts"]
    assert asked and all(r["variables"]["locale"] == "zh-TW" for r in asked)
    client = await aiohttp_client(create_app(shopify_settings, recognizer))
    intent = await recognizer.recognize(ASK_ZH)
    assert intent.entities.product == "harbor-rain-jacket", intent
    web = await WebShopper.start(client)
    await web.say(ASK_ZH)
    assert JACKET_ZH in web.texts(), web.texts()


async def test_paged_and_bulk_syncs_write_the_same_zh_names(shopify_settings, fake_shopify, settings, tmp_path):  # noqa: F811
    translated(fake_shopify)
    fake_shopify.translate("cozy-wool-socks", "zh-TW", body_html="<p>羊毛混紡</p>")  # a description, no title

    async def full_sync(target, bulk_from):
        services = build(target)
        client = ShopifyClient(fake_shopify.url, VERSION, TOKEN, 5.0, sleep=no_sleep)
        try:
            catalog = ShopifyCatalog(client, bulk_from, "zh-TW")
            return await CatalogSync(services.db, catalog, None, None).run(full=True)
        finally:
            await client.close()
            await services.close()

    await full_sync(shopify_settings, None)
    paged = await snapshot(shopify_settings)
    other = changed(shopify_settings, database_url=f"sqlite:///{tmp_path / 'bulk.db'}")
    build(other).db.create_schema()
    await full_sync(other, 1)
    assert [r["operation"] for r in fake_shopify.requests].count("BulkRunQuery") == 1
    [operation] = fake_shopify.bulk.values()
    assert 'translations(locale: "zh-TW")' in operation["query"]
    assert await snapshot(other) == paged
    found = await products(other)
    assert (found["harbor-rain-jacket"].name_zh, found["harbor-rain-jacket"].description_zh) == (JACKET_ZH, JACKET_TEXT)
    assert (found["cozy-wool-socks"].name_zh, found["cozy-wool-socks"].description_zh) == (None, "羊毛混紡")


async def test_a_changed_or_removed_translation_reaches_the_running_recogniser_on_the_next_sync(
    aiohttp_client,
    shopify_settings,  # noqa: F811
    fake_shopify,  # noqa: F811
    recognizer,
):
    await sync(shopify_settings)
    client = await aiohttp_client(create_app(shopify_settings, recognizer))
    web = await WebShopper.start(client)
    await web.say(ASK_ZH)  # the model is loaded; no product of that name yet
    assert JACKET_ZH not in web.texts()
    assert (await recognizer.recognize(ASK_ZH)).entities.product is None
    translated(fake_shopify)  # the product's updatedAt stays: the sync must not count on it moving
    services = client.app[SERVICES]
    summary = await services.catalog_sync.run(full=True)
    assert (summary.unchanged, summary.updated, summary.renamed) == (5, 0, 1)  # the draft too
    assert (await recognizer.recognize(ASK_ZH)).entities.product == "harbor-rain-jacket"
    await web.say(ASK_ZH)
    assert JACKET_ZH in web.texts(), web.texts()
    fake_shopify.translate("harbor-rain-jacket", "zh-TW", title=None, body_html=None)
    await services.catalog_sync.run(full=True)
    jacket = (await products(shopify_settings))["harbor-rain-jacket"]
    assert (jacket.name_zh, jacket.description_zh) == (None, None)
    assert (await recognizer.recognize(ASK_ZH)).entities.product is None


async def test_a_product_webhook_reads_the_translation_as_it_does_the_title(
    aiohttp_client,
    shopify_settings,  # noqa: F811
    fake_shopify,  # noqa: F811
    recognizer,
):
    await sync(shopify_settings)
    client = await aiohttp_client(create_app(shopify_settings, recognizer))
    translated(fake_shopify)
    fake_shopify.find("harbor-rain-jacket")["title"] = "Harbor Storm Jacket"
    body = fake_shopify.product_webhook("harbor-rain-jacket", later(5))
    answer = await deliver(client, "products/update", body)
    assert (await answer.json())["outcome"] == "applied"
    [asked] = [r for r in fake_shopify.requests if r["operation"] == "ProductTranslations"]
    assert asked["variables"] == {"id": "gid://shopify/Product/1", "locale": "zh-TW"}
    jacket = (await products(shopify_settings))["harbor-rain-jacket"]
    assert (jacket.name, jacket.name_zh, jacket.description_zh) == ("Harbor Storm Jacket", JACKET_ZH, JACKET_TEXT)
    assert (await recognizer.recognize(ASK_ZH)).entities.product == "harbor-rain-jacket"
    fake_shopify.translate("harbor-rain-jacket", "zh-TW", title=None)
    answer = await deliver(client, "products/update", fake_shopify.product_webhook("harbor-rain-jacket", later(6)))
    assert (await answer.json())["outcome"] == "applied"
    jacket = (await products(shopify_settings))["harbor-rain-jacket"]
    assert (jacket.name_zh, jacket.description_zh) == (None, JACKET_TEXT)


async def test_a_webhook_keeps_the_translation_when_shopify_cannot_be_asked(
    aiohttp_client,
    shopify_settings,  # noqa: F811
    fake_shopify,  # noqa: F811
    recognizer,
):
    translated(fake_shopify)
    await sync(shopify_settings)
    client = await aiohttp_client(create_app(shopify_settings, recognizer))
    fake_shopify.fail_next(3, 503)
    answer = await deliver(client, "products/update", fake_shopify.product_webhook("harbor-rain-jacket", later(5)))
    assert answer.status == 200 and (await answer.json())["outcome"] == "applied"
    assert "ProductTranslations" in fake_shopify.operations()
    assert (await products(shopify_settings))["harbor-rain-jacket"].name_zh == JACKET_ZH


async def test_no_locale_sends_no_translations_query(aiohttp_client, shopify_settings, fake_shopify, recognizer):  # noqa: F811
    translated(fake_shopify)
    plain = changed(shopify_settings, commerce_zh_locale="", shopify_bulk_sync_from=1)
    await sync(plain)  # through a bulk operation (5 products >= 1)
    await sync(changed(plain, shopify_bulk_sync_from=0))  # page by page
    client = await aiohttp_client(create_app(plain, recognizer))
    await deliver(client, "products/update", fake_shopify.product_webhook("harbor-rain-jacket", later(5)))
    operations = fake_shopify.operations()
    assert "BulkRunQuery" in operations and "CatalogProducts" in operations
    assert fake_shopify.translation_queries() == [] and "ProductTranslations" not in operations
    assert all(p.name_zh is None for p in (await products(plain)).values())


async def test_magento_reads_names_of_the_zh_tw_store_view(settings, fake_magento, recognizer, aiohttp_client):  # noqa: F811
    fake_magento.set_store_value("zh_tw", "MJ01", name=JACKET_ZH, description=JACKET_HTML)
    target = magento(settings, fake_magento, magento_zh_store_code="zh_tw")
    await magento_sync(target)
    found = await products(target)
    jacket = next(p for p in found.values() if p.name == "Harbor Rain Jacket")
    assert (jacket.name_zh, jacket.description_zh) == (JACKET_ZH, JACKET_TEXT)
    # The store view gives the default values where it has none of its own: no translation.
    assert all(p.name_zh is None and p.description_zh is None for p in found.values() if p.sku != jacket.sku)
    zh_paths = [r["path"] for r in fake_magento.requests if r["store"] == "zh_tw"]
    assert zh_paths and set(zh_paths) == {"products"}
    client = await aiohttp_client(create_app(target, recognizer))
    web = await WebShopper.start(client)
    await web.say(ASK_ZH)
    assert JACKET_ZH in web.texts(), web.texts()
    # Removed in the store view, and the product saved (its updated_at moves): the poll clears it.
    fake_magento.set_store_value("zh_tw", "MJ01", name=None, description=None)
    fake_magento.find("MJ01")["updated_at"] = mtime(magento_later(10))
    await client.app[SERVICES].magento_sync.poll()
    jacket = (await products(target))[jacket.sku]
    assert (jacket.name_zh, jacket.description_zh) == (None, None)
    assert (await recognizer.recognize(ASK_ZH)).entities.product is None


async def test_magento_without_a_zh_store_view_reads_only_the_default_one(settings, fake_magento):  # noqa: F811
    fake_magento.set_store_value("zh_tw", "MJ01", name=JACKET_ZH)
    target = magento(settings, fake_magento)
    await magento_sync(target)
    assert {r["store"] for r in fake_magento.requests} == {"default"}
    assert all(p.name_zh is None for p in (await products(target)).values())


async def test_a_magento_store_view_that_cannot_be_read_keeps_the_names(settings, fake_magento):  # noqa: F811
    fake_magento.set_store_value("zh_tw", "MJ01", name=JACKET_ZH)
    target = magento(settings, fake_magento, magento_zh_store_code="zh_tw")
    await magento_sync(target)
    # the code is wrong now (Magento answers 404 for a store it does not have): the sync goes on
    wrong = magento(settings, fake_magento, magento_zh_store_code="zh_hk")
    fake_magento.set_store_value("default", "MJ01", name="Harbor Rain Jacket II")
    await magento_sync(wrong)
    jacket = next(p for p in (await products(wrong)).values() if p.sku.startswith("MJ01") or "Jacket" in p.name)
    assert jacket.name_zh == JACKET_ZH  # kept
    assert any(r["store"] == "zh_hk" for r in fake_magento.requests)


def test_the_settings_check_the_locale_and_the_store_view_code(settings):
    from bot.config import Settings

    assert Settings(_env_file=None).commerce_zh_locale == ""  # off unless the shop sets it
    with pytest.raises(ValidationError, match="COMMERCE_ZH_LOCALE"):
        changed(settings, commerce_zh_locale='zh-TW") { id }')
    fake = SimpleNamespace(url="http://127.0.0.1:9")  # only the shop's address is read
    with pytest.raises(ValidationError, match="MAGENTO_ZH_STORE_CODE"):
        magento(settings, fake, magento_zh_store_code="zh-TW/../x")
    assert magento(settings, fake, magento_zh_store_code="zh_tw", commerce_zh_locale="").magento_zh_base is None
