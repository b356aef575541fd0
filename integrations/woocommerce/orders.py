"""WooCommerce's order webhooks applied to the orders placed in chat: processing or completed is
paid (the shopper told, through the same `on_paid` as every payment provider), cancelled or
failed before payment cancels, and the parcel's carrier and tracking number, from the Shipment
Tracking meta (`_wc_shipment_tracking_items`) or an order note, mark it shipped. An order's state
only moves forward, and a body older than the newest applied (`date_modified_gmt`) changes
nothing. `order` runs in the caller's transaction."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.delivery.policy import Policy
from bot.store.models import Order, as_utc, utcnow
from integrations.commerce.model import MappingError, parse_time
from integrations.orders import CheckoutRules, OrderView, mark_paid_in, order_by_payment_ref
from integrations.shipments import CARRIERS, Parcel, ShipmentError, parcel, ship
from integrations.woocommerce.checkout import reference_of
from integrations.woocommerce.client import WooCommerceClient
from integrations.woocommerce.mapping import woo_id

PAID = ("processing", "completed")  # what WooCommerce's gateways set once the payment is taken
CANCELLED = ("cancelled", "failed")
TRACKING_META = "_wc_shipment_tracking_items"  # the Shipment Tracking extension's order meta
NOTE_NUMBER = re.compile(r"tracking\s*(?:number|no\.?|#|code)?\s*(?:is|:|#)?\s*([A-Za-z0-9][A-Za-z0-9-]{3,39})", re.I)


@dataclass(frozen=True)
class OrderEvent:
    outcome: str
    queued: bool = False
    order: int | None = None


def _tidy(carrier: Any, number: Any) -> Parcel | None:
    try:
        return parcel(carrier if isinstance(carrier, str) and carrier.strip() else "Carrier", number)
    except ShipmentError:
        return None


def tracking_from_meta(body: dict[str, Any]) -> Parcel | None:
    """The newest parcel of the Shipment Tracking extension's meta, if the order has one."""
    for meta in body.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == TRACKING_META and isinstance(meta.get("value"), list):
            for item in reversed(meta["value"]):
                if isinstance(item, dict) and item.get("tracking_number"):
                    carrier = item.get("custom_tracking_provider") or item.get("tracking_provider")
                    found = _tidy(carrier, item["tracking_number"])
                    if found is not None:
                        link = item.get("custom_tracking_link")
                        if found.tracking_url is None and isinstance(link, str) and link.startswith("https://"):
                            found = Parcel(found.carrier, found.tracking_number, link)
                        return found
    return None


def tracking_from_notes(notes: list[dict[str, Any]]) -> Parcel | None:
    """The parcel named by the newest order note that gives a tracking number ("Shipped with UPS,
    tracking number 1Z999..."); the carrier is a known one named in the note, else "Carrier"."""
    dated = sorted(
        (n for n in notes if isinstance(n, dict) and isinstance(n.get("note"), str)),
        key=lambda n: str(n.get("date_created_gmt") or ""),
        reverse=True,
    )
    for note in dated:
        text = re.sub(r"<[^>]+>", " ", note["note"])
        match = NOTE_NUMBER.search(text)
        if match is None or not any(c.isdigit() for c in match.group(1)):
            continue
        words = {re.sub(r"[^a-z]", "", w.lower()) for w in text.split()}
        carrier = next((name for key, (name, _) in CARRIERS.items() if key in words), "Carrier")
        found = _tidy(carrier, match.group(1))
        if found is not None:
            return found
    return None


async def fetch_tracking(client: WooCommerceClient, body: dict[str, Any]) -> Parcel | None:
    """A paid order's parcel: from its meta if there, else from its notes (`GET orders/{id}/notes`)."""
    if body.get("status") not in PAID:
        return None
    found = tracking_from_meta(body)
    if found is not None:
        return found
    notes = await client.get(f"orders/{woo_id(body.get('id'), 'order id')}/notes")
    return tracking_from_notes(notes if isinstance(notes, list) else [])


def _newer(order: Order, updated_at: datetime) -> bool:
    return order.external_updated_at is None or updated_at > as_utc(order.external_updated_at)


class WooCommerceOrderEvents:
    """Applies `order.created` and `order.updated`; `on_paid` queues the shopper's payment notice."""

    def __init__(
        self,
        policy: Policy,
        rules: CheckoutRules,
        on_paid: Callable[[Session, str, OrderView], None],
        shipping_template_sid: str | None = None,
    ) -> None:
        self.policy, self.rules, self.on_paid = policy, rules, on_paid
        self.shipping_template_sid = shipping_template_sid

    def order(self, session: Session, body: dict[str, Any], shipped: Parcel | None = None) -> OrderEvent:
        external_id = woo_id(body.get("id"), "order id")
        updated_at = parse_time(body.get("date_modified_gmt"), "date_modified_gmt")
        status = body.get("status")
        if not isinstance(status, str):
            raise MappingError("status is missing")
        reference = reference_of(external_id)
        order = order_by_payment_ref(session, reference)
        if order is None:
            return OrderEvent("unknown")  # an order placed on the website: not one of the chat's
        if not _newer(order, updated_at):
            return OrderEvent("stale", order=order.number)
        order.external_order_id, order.external_updated_at = external_id, updated_at
        session.add(order)
        session.flush()
        if status in CANCELLED and order.status == "pending_payment":
            order.status = "cancelled"
            session.add(order)
            return OrderEvent("cancelled", order=order.number)
        queued = False
        if status in PAID and order.status == "pending_payment":
            queued = mark_paid_in(session, reference, self.on_paid).outcome == "paid"
        if shipped is not None:
            queued = self._ship(session, order, shipped) or queued
        return OrderEvent("paid" if queued and order.status == "paid" else "applied", queued, order.number)

    def _ship(self, session: Session, order: Order, found: Parcel) -> bool:
        """Carrier and tracking onto a paid order (the shopper told once); a shipped one's kept up
        to date. True when a notice was queued."""
        if order.status == "paid":
            result = ship(
                session, self.policy, self.rules.estimate, order.number, found, utcnow(), self.shipping_template_sid
            )
            return result["notice"] == "queued"
        if order.status in ("shipped", "delivered"):
            order.carrier, order.tracking_number, order.tracking_url = (
                found.carrier,
                found.tracking_number,
                found.tracking_url,
            )
            session.add(order)
            session.flush()
        return False
