"""WooCommerce's webhooks (`POST /webhooks/woocommerce`): `X-WC-Webhook-Signature` (base64 of the
HMAC-SHA256 of the raw body with the webhook's secret) checked in constant time, the creation
ping answered, each delivery recorded by its `X-WC-Webhook-Delivery-ID` with the resource's id
and acted on in the same transaction (a duplicate is processed once). WooCommerce does not deliver a failed webhook
again (it disables one after more than 5 failures in a row): the scheduled reconcile catches
what a failed delivery left out. Products (with their variations, read from the API)
go into the catalog mirror, never older over newer (`date_modified_gmt`), a variant back in stock
telling its waitlist; orders placed in chat are confirmed paid, cancelled, or shipped with the
tracking of their meta or notes."""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlmodel import Session, select

from bot.store.models import Order, ProviderEvent, utcnow
from integrations.commerce.mirror import SyncSummary, apply_product, delete_product
from integrations.commerce.model import MappingError, ShopProduct
from integrations.commerce.sync import CatalogSync
from integrations.orders import checkout_rules
from integrations.shipments import Parcel
from integrations.woocommerce.catalog import WooCommerceCatalog
from integrations.woocommerce.checkout import reference_of
from integrations.woocommerce.client import WooCommerceError
from integrations.woocommerce.mapping import PLATFORM, from_rest, woo_id
from integrations.woocommerce.orders import WooCommerceOrderEvents, fetch_tracking
from service.commerce_webhooks import Handled, apply_delivery, base64_hmac
from service.http import json_error, read_body
from service.keys import DB, SERVICES, SETTINGS

log = logging.getLogger(__name__)
WOOCOMMERCE_BODY_BYTES = 1024 * 1024
PRODUCT_TOPICS = ("product.created", "product.updated", "product.restored")
ORDER_TOPICS = ("order.created", "order.updated")
TOPICS = (*PRODUCT_TOPICS, "product.deleted", *ORDER_TOPICS)
PING = re.compile(rb"webhook_id=\d{1,20}")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/woocommerce", woocommerce_webhook)


def signature(secret: str, raw: bytes) -> str:
    """`X-WC-Webhook-Signature`: base64 of the HMAC-SHA256 of the raw body."""
    return base64_hmac(secret, raw)


def verified(secret: str, raw: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, raw).encode(), header.strip().encode("utf-8", "replace"))


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    topic: str
    body: dict[str, Any]
    product: ShopProduct | None = None  # a product topic's product, its variations read from the API
    parcel: Parcel | None = None  # an order topic's tracking, from its meta or notes


def seen(session: Session, delivery_id: str) -> bool:
    return (
        session.exec(
            select(ProviderEvent.id).where(ProviderEvent.provider == PLATFORM, ProviderEvent.event_id == delivery_id)
        ).first()
        is not None
    )


class WooCommerceEvents:
    """What each topic does to the store, in the transaction that records the delivery."""

    def __init__(self, sync: CatalogSync, orders: WooCommerceOrderEvents) -> None:
        self.sync, self.orders = sync, orders

    def handle(self, session: Session, delivery: Delivery) -> Handled:
        if seen(session, delivery.delivery_id):
            return Handled("duplicate")
        session.add(ProviderEvent(provider=PLATFORM, event_id=delivery.delivery_id, type=delivery.topic[:100]))
        session.flush()
        topic, body = delivery.topic, delivery.body
        if topic in PRODUCT_TOPICS and delivery.product is not None:
            summary = SyncSummary()
            apply_product(session, delivery.product, summary, PLATFORM)
            self.sync.notify(session, summary, summary.restocked)
            outcome = "stale" if summary.unchanged else "applied"
            return Handled(outcome, bool(summary.notified), catalog_changed=bool(summary.created or summary.renamed))
        if topic == "product.deleted":
            summary = SyncSummary()
            delete_product(session, woo_id(body.get("id"), "product id"), utcnow(), summary, PLATFORM)
            return Handled("stale" if summary.unchanged else "deleted")
        if topic in ORDER_TOPICS:
            event = self.orders.order(session, body, delivery.parcel)
            return Handled(event.outcome, event.queued, event.order)
        return Handled("ignored")


def events_of(app: web.Application) -> WooCommerceEvents:
    services, settings = app[SERVICES], app[SETTINGS]
    orders = WooCommerceOrderEvents(
        services.policy, checkout_rules(settings), services.on_paid, settings.whatsapp_shipping_template_sid
    )
    return WooCommerceEvents(services.catalog_sync, orders)


async def _read(app: web.Application, topic: str, body: dict[str, Any]) -> tuple[ShopProduct | None, Parcel | None]:
    """What the body alone does not say, read from the API: a variable product's variations (the
    parent product of a variation's body), an order's tracking notes."""
    catalog = app[SERVICES].catalog_sync.catalog
    assert isinstance(catalog, WooCommerceCatalog)
    if topic in PRODUCT_TOPICS:
        parent = body.get("parent_id")
        if body.get("type") == "variation" and parent:
            return await catalog.product(woo_id(parent, "parent_id")), None
        if body.get("type") == "variable":
            return await catalog.read(body), None
        return from_rest(body), None
    if topic in ORDER_TOPICS:
        reference = reference_of(woo_id(body.get("id"), "order id"))
        ours = await app[DB].run(
            lambda s: s.exec(select(Order.id).where(Order.payment_ref == reference)).first() is not None
        )
        if not ours:
            return None, None
        try:
            return None, await fetch_tracking(catalog.client, body)
        except WooCommerceError as exc:  # the payment still counts; the tracking comes with a later update
            log.warning("woocommerce order notes not read", extra={"reason": str(exc)[:200]})
            return None, None
    return None, None


async def woocommerce_webhook(request: web.Request) -> web.Response:
    """403 and nothing stored for a bad signature; 200 for the creation ping; 400 for a body or
    headers we cannot read; 503 when WooCommerce's API could not be read for a product's
    variations; 200 once the delivery is recorded (a duplicate too)."""
    settings = request.app[SETTINGS]
    if settings.commerce_backend != "woocommerce" or settings.woocommerce_webhook_secret is None:
        raise web.HTTPNotFound(text="WooCommerce is not this shop's commerce platform.")
    raw = await read_body(request, WOOCOMMERCE_BODY_BYTES)
    given = request.headers.get("X-WC-Webhook-Signature")
    if given is None and "X-WC-Webhook-Topic" not in request.headers and PING.fullmatch(raw.strip()):
        log.info("woocommerce webhook ping", extra={"webhook": raw.strip()[11:].decode()})
        return web.json_response({"received": True, "outcome": "ping"})
    if not verified(settings.woocommerce_webhook_secret.get_secret_value(), raw, given or ""):
        log.warning(
            "woocommerce webhook refused: bad signature", extra={"topic": request.headers.get("X-WC-Webhook-Topic")}
        )
        return json_error(403, "invalid X-WC-Webhook-Signature")
    delivery_id = request.headers.get("X-WC-Webhook-Delivery-ID", "").strip()
    topic = request.headers.get("X-WC-Webhook-Topic", "").strip()
    if not delivery_id or len(delivery_id) > 200 or not topic:
        return json_error(400, "X-WC-Webhook-Delivery-ID and X-WC-Webhook-Topic are required")
    if topic not in TOPICS:
        log.info("woocommerce topic not handled", extra={"topic": topic[:100]})
        return web.json_response({"received": True, "outcome": "ignored"})
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "body must be JSON")
    if not isinstance(body, dict):
        return json_error(400, "body must be a JSON object")
    if not isinstance(body.get("id"), int | str) or not str(body["id"]).isdigit():
        return json_error(400, f"cannot apply {topic}: id is missing")
    # WooCommerce's delivery id is a hash of the webhook's id and the second it was sent: two
    # resources changed in the same second share it. With the resource's id it names one delivery.
    delivery_id = f"{delivery_id}/{body['id']}"
    db = request.app[DB]
    if await db.run(lambda s: seen(s, delivery_id)):
        return web.json_response({"received": True, "outcome": "duplicate"})
    try:
        product, found = await _read(request.app, topic, body)
    except (MappingError, KeyError, TypeError, ValueError) as exc:
        log.warning("woocommerce webhook not applied", extra={"topic": topic, "reason": str(exc)[:200]})
        return json_error(400, f"cannot apply {topic}: {str(exc)[:200]}")
    except WooCommerceError as exc:
        log.warning("woocommerce api unavailable for a webhook", extra={"topic": topic, "reason": str(exc)[:200]})
        return json_error(503, "WooCommerce's API could not be read; deliver again later")
    delivery = Delivery(delivery_id, topic, body, product, found)
    events = events_of(request.app)
    return await apply_delivery(
        request, "woocommerce", ("delivery", delivery_id), topic, lambda s: events.handle(s, delivery)
    )
