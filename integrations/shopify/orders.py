"""Shopify's order webhooks applied to the orders placed in chat: paid (the shopper told),
cancelled, fulfilled with carrier and tracking, delivered. An order's state only moves forward,
and a body older than the newest applied (Shopify's `updated_at`) changes nothing. Runs in the
caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from bot.delivery.policy import Policy
from bot.store.models import ORDER_NUMBER_OFFSET, Order, as_utc, utcnow
from integrations.orders import CheckoutRules, OrderView, mark_paid_in
from integrations.shipments import CARRIERS, Parcel, ship
from integrations.shopify.checkout import ORDER_ATTRIBUTE
from integrations.shopify.mapping import MappingError, gid, parse_time

RANK = {"pending_payment": 0, "paid": 1, "shipped": 2, "delivered": 3, "cancelled": 4}


@dataclass(frozen=True)
class OrderEvent:
    outcome: str
    queued: bool = False
    order: int | None = None


def _our_order(session: Session, body: dict[str, Any], external_id: str) -> Order | None:
    """The chat order this Shopify order is: by its id once known, else by the draft's attribute."""
    found = session.exec(select(Order).where(Order.external_order_id == external_id)).first()
    if found is not None:
        return found
    for attribute in body.get("note_attributes") or []:
        if isinstance(attribute, dict) and attribute.get("name") == ORDER_ATTRIBUTE:
            number = str(attribute.get("value", ""))
            if number.isdigit() and int(number) > ORDER_NUMBER_OFFSET:
                order = session.get(Order, int(number) - ORDER_NUMBER_OFFSET)
                # Only an order whose payment is this shop's draft order, never one named at random.
                if order is not None and (order.payment_ref or "").startswith("gid://shopify/DraftOrder/"):
                    return order
    return None


def _newer(order: Order, updated_at: datetime) -> bool:
    return order.external_updated_at is None or updated_at > as_utc(order.external_updated_at)


def _parcel(fulfillment: dict[str, Any]) -> Parcel | None:
    number = fulfillment.get("tracking_number") or next(iter(fulfillment.get("tracking_numbers") or []), None)
    if not isinstance(number, str) or not number.strip():
        return None
    carrier = str(fulfillment.get("tracking_company") or "Carrier").strip()[:40]
    url = fulfillment.get("tracking_url") or next(iter(fulfillment.get("tracking_urls") or []), None)
    known = CARRIERS.get("".join(c for c in carrier.lower() if c.isalpha()))
    if not isinstance(url, str) or not url.startswith("https://"):
        url = known[1].format(number.strip()) if known else None
    return Parcel(known[0] if known else carrier, number.strip(), url)


class ShopifyOrderEvents:
    """Applies order and fulfillment webhooks; `on_paid` queues the shopper's payment notice."""

    def __init__(
        self,
        policy: Policy,
        rules: CheckoutRules,
        on_paid: Callable[[Session, str, OrderView], None],
        shipping_template_sid: str | None = None,
    ) -> None:
        self.policy, self.rules, self.on_paid = policy, rules, on_paid
        self.shipping_template_sid = shipping_template_sid

    def order(self, session: Session, topic: str, body: dict[str, Any]) -> OrderEvent:
        """`orders/paid`, `orders/updated` (and `orders/cancelled`)."""
        external_id = gid("Order", body.get("admin_graphql_api_id") or body.get("id"))
        updated_at = parse_time(body.get("updated_at"))
        order = _our_order(session, body, external_id)
        if order is None:
            return OrderEvent("unknown")  # an order placed on the website: not one of the chat's
        if not _newer(order, updated_at):
            return OrderEvent("stale", order=order.number)
        order.external_order_id, order.external_updated_at = external_id, updated_at
        session.add(order)
        session.flush()
        queued = False
        paid = topic == "orders/paid" or body.get("financial_status") in ("paid", "partially_refunded", "refunded")
        if body.get("cancelled_at") and order.status in ("pending_payment", "paid"):
            order.status = "cancelled"
            session.add(order)
            return OrderEvent("cancelled", order=order.number)
        if paid and order.status == "pending_payment" and order.payment_ref:
            queued = mark_paid_in(session, order.payment_ref, self.on_paid).outcome == "paid"
        for fulfillment in body.get("fulfillments") or []:
            if isinstance(fulfillment, dict):
                queued = self._fulfil(session, order, fulfillment) or queued
        return OrderEvent("paid" if queued and order.status == "paid" else "applied", queued, order.number)

    def fulfillment(self, session: Session, body: dict[str, Any]) -> OrderEvent:
        """`fulfillments/create` and `fulfillments/update`."""
        if body.get("order_id") is None:
            raise MappingError("order_id is missing")
        external_id = gid("Order", body["order_id"])
        updated_at = parse_time(body.get("updated_at"))
        order = session.exec(select(Order).where(Order.external_order_id == external_id)).first()
        if order is None:
            return OrderEvent("unknown")
        if not _newer(order, updated_at):
            return OrderEvent("stale", order=order.number)
        order.external_updated_at = updated_at
        session.add(order)
        queued = self._fulfil(session, order, body)
        return OrderEvent("fulfilled", queued, order.number)

    def _fulfil(self, session: Session, order: Order, fulfillment: dict[str, Any]) -> bool:
        """Carrier and tracking onto the order, shipped (the shopper told once) or delivered;
        never back to an earlier state. True when a notice was queued."""
        if fulfillment.get("status") in ("cancelled", "error", "failure"):
            return False
        parcel = _parcel(fulfillment)
        now = utcnow()
        queued = False
        if parcel is not None:
            if order.status == "paid":
                result = ship(
                    session, self.policy, self.rules.estimate, order.number, parcel, now, self.shipping_template_sid
                )
                queued = result["notice"] == "queued"
            elif order.status in ("shipped", "delivered"):
                order.carrier, order.tracking_number, order.tracking_url = (
                    parcel.carrier,
                    parcel.tracking_number,
                    parcel.tracking_url,
                )
        if fulfillment.get("shipment_status") == "delivered" and RANK.get(order.status, 0) < RANK["delivered"]:
            if order.status in ("shipped", "paid"):
                order.status, order.delivered_at = "delivered", now
        session.add(order)
        session.flush()
        return queued
