"""Shopify's webhooks (`POST /webhooks/shopify`): the HMAC of the raw body checked in constant
time, each delivery recorded by its `X-Shopify-Webhook-Id` and acted on in the same transaction
(a retry or a duplicate is processed once), products, stock, orders and fulfillments applied to
the store's copy. A variant back in stock tells its waitlist; a paid order tells the shopper.
A product's body carries no translations: with a zh-TW locale set, they are asked of the Admin
API before the delivery is applied (within `TRANSLATION_WAIT_SECONDS`; else the store keeps the
ones it has, and the next sync reads them)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlmodel import Session, select

from bot.store.models import ProviderEvent, utcnow
from integrations.commerce.mirror import PLATFORM, SyncSummary, apply_level, apply_product, delete_product
from integrations.commerce.model import Translation
from integrations.commerce.sync import CatalogSync
from integrations.orders import checkout_rules
from integrations.shopify.catalog import ShopifyCatalog
from integrations.shopify.client import ShopifyError
from integrations.shopify.mapping import MappingError, from_webhook, gid, parse_time
from integrations.shopify.orders import ShopifyOrderEvents
from integrations.webhook_auth import WebhookRefused
from service.commerce_webhooks import Handled, apply_delivery, base64_hmac
from service.http import json_error, read_body, refused
from service.keys import DB, SERVICES, SETTINGS

log = logging.getLogger(__name__)
SHOPIFY_BODY_BYTES = 1024 * 1024  # a product with many variants is the largest body
PRODUCT_TOPICS = ("products/create", "products/update")
# Shopify waits 5 s for the answer to a delivery: the translation asked for it must come sooner.
TRANSLATION_WAIT_SECONDS = 2.0
TOPICS = (
    "products/create",
    "products/update",
    "products/delete",
    "inventory_levels/update",
    "orders/paid",
    "orders/updated",
    "orders/cancelled",
    "fulfillments/create",
    "fulfillments/update",
)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/shopify", shopify_webhook)


def signature(secret: str, raw: bytes) -> str:
    """Shopify's `X-Shopify-Hmac-Sha256`: base64 of the HMAC-SHA256 of the raw body."""
    return base64_hmac(secret, raw)


def verify(secret: str, raw: bytes, header: str) -> None:
    """Raises:
    WebhookRefused: `header` is not the raw body's signature (compared in constant time).
    """
    if not hmac.compare_digest(signature(secret, raw).encode(), header.strip().encode("utf-8", "replace")):
        raise WebhookRefused("bad or missing X-Shopify-Hmac-Sha256")


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    topic: str
    body: dict[str, Any]
    triggered_at: str | None
    zh: Translation | None = None  # a product's translation, when it was read


class ShopifyEvents:
    """What each topic does to the store, in the transaction that records the delivery."""

    def __init__(self, sync: CatalogSync, orders: ShopifyOrderEvents) -> None:
        self.sync, self.orders = sync, orders

    def handle(self, session: Session, delivery: Delivery) -> Handled:
        if recorded(session, delivery.webhook_id):
            return Handled("duplicate")
        session.add(ProviderEvent(provider=PLATFORM, event_id=delivery.webhook_id, type=delivery.topic[:100]))
        session.flush()
        topic, body = delivery.topic, delivery.body
        if topic in PRODUCT_TOPICS:
            summary = SyncSummary()
            shop = from_webhook(body)
            shop.zh = delivery.zh
            apply_product(session, shop, summary)
            self.sync.notify(session, summary, summary.restocked)
            outcome = "stale" if summary.unchanged else "applied"
            return Handled(outcome, bool(summary.notified), catalog_changed=bool(summary.created or summary.renamed))
        if topic == "products/delete":
            summary = SyncSummary()
            deleted_at = (
                parse_time(delivery.triggered_at, "X-Shopify-Triggered-At") if delivery.triggered_at else utcnow()
            )
            delete_product(session, gid("Product", body.get("id")), deleted_at, summary)
            return Handled("stale" if summary.unchanged else "deleted")
        if topic == "inventory_levels/update":
            available = body.get("available")
            if not isinstance(available, int):
                raise MappingError("available is not a whole number")
            outcome, restocked = apply_level(
                session,
                gid("InventoryItem", body.get("inventory_item_id")),
                gid("Location", body.get("location_id")),
                available,
                parse_time(body.get("updated_at")),
            )
            summary = SyncSummary()
            self.sync.notify(session, summary, restocked)
            return Handled(outcome, bool(summary.notified))
        if topic in ("orders/paid", "orders/updated", "orders/cancelled"):
            event = self.orders.order(session, topic, body)
            return Handled(event.outcome, event.queued, event.order)
        if topic in ("fulfillments/create", "fulfillments/update"):
            event = self.orders.fulfillment(session, body)
            return Handled(event.outcome, event.queued, event.order)
        return Handled("ignored")


def events_of(app: web.Application) -> ShopifyEvents:
    services, settings = app[SERVICES], app[SETTINGS]
    orders = ShopifyOrderEvents(
        services.policy, checkout_rules(settings), services.on_paid, settings.whatsapp_shipping_template_sid
    )
    return ShopifyEvents(services.catalog_sync, orders)


def recorded(session: Session, webhook_id: str) -> bool:
    """This delivery was received before (Shopify sends one again when it saw no answer)."""
    found = session.exec(
        select(ProviderEvent.id).where(ProviderEvent.provider == PLATFORM, ProviderEvent.event_id == webhook_id)
    ).first()
    return found is not None


async def translation_of(app: web.Application, body: dict[str, Any]) -> Translation | None:
    """A product's translation in the zh-TW locale, asked of the Admin API; None when no locale
    is set, or Shopify did not answer in time (the store keeps what it has)."""
    catalog = app[SERVICES].catalog_sync.catalog
    if not isinstance(catalog, ShopifyCatalog) or catalog.locale is None:
        return None
    try:
        product_id = gid("Product", body.get("admin_graphql_api_id") or body.get("id"))
        return await asyncio.wait_for(catalog.translation(product_id), TRANSLATION_WAIT_SECONDS)
    except MappingError:
        return None  # the body is refused when it is applied
    except (ShopifyError, TimeoutError) as exc:
        log.warning("shopify translation not read", extra={"reason": str(exc)[:200] or type(exc).__name__})
        return None


async def shopify_webhook(request: web.Request) -> web.Response:
    """403 and nothing stored for a bad or missing signature; 400 for a signed body or headers we
    cannot read; 200 once the delivery is recorded (a duplicate too), so Shopify retries only what we could
    not store."""
    settings = request.app[SETTINGS]
    if settings.commerce_backend != "shopify" or settings.shopify_webhook_secret is None:
        raise web.HTTPNotFound(text="Shopify is not this shop's commerce platform.")
    raw = await read_body(request, SHOPIFY_BODY_BYTES)
    secret = settings.shopify_webhook_secret.get_secret_value()
    try:
        verify(secret, raw, request.headers.get("X-Shopify-Hmac-Sha256", ""))
    except WebhookRefused as exc:
        return refused("Shopify", exc)
    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "").strip()
    topic = request.headers.get("X-Shopify-Topic", "").strip()
    if not webhook_id or len(webhook_id) > 200 or not topic:
        return json_error(400, "X-Shopify-Webhook-Id and X-Shopify-Topic are required")
    if topic not in TOPICS:
        log.info("shopify topic not handled", extra={"topic": topic[:100]})
        return web.json_response({"received": True, "outcome": "ignored"})
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "body must be JSON")
    if not isinstance(body, dict):
        return json_error(400, "body must be a JSON object")
    zh = None
    if topic in PRODUCT_TOPICS and not await request.app[DB].run(lambda s: recorded(s, webhook_id)):
        zh = await translation_of(request.app, body)  # not asked again for a delivery sent twice
    delivery = Delivery(webhook_id, topic, body, request.headers.get("X-Shopify-Triggered-At"), zh)
    events = events_of(request.app)
    return await apply_delivery(
        request, "shopify", ("webhook", webhook_id), topic, lambda s: events.handle(s, delivery)
    )
