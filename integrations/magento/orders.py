"""Magento's orders and shipments, found by the poll, applied to the orders placed in chat (each
knows its Magento order's `entity_id` once it is placed there): a shipment's track marks the
order shipped with its carrier and tracking number (the shopper told once, through the shipments
path); an order's change older than the newest applied changes nothing. Runs in the caller's
transaction."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, select

from bot.delivery.policy import Policy
from bot.store.models import Order, as_utc, utcnow
from integrations.magento.mapping import MappingError, parse_time
from integrations.orders import CheckoutRules
from integrations.shipments import CARRIERS, Parcel, ship

log = logging.getLogger(__name__)


def parcel_of(track: dict[str, Any]) -> Parcel | None:
    """A shipment track (`track_number`, `carrier_code` ups/usps/fedex/dhl/custom, `title`)."""
    number = track.get("track_number")
    if not isinstance(number, str) or not number.strip():
        return None
    code = str(track.get("carrier_code") or "").lower()
    known = CARRIERS.get(code)
    if known is not None:
        return Parcel(known[0], number.strip(), known[1].format(number.strip()))
    title = str(track.get("title") or code or "Carrier").strip()[:40]
    return Parcel(title, number.strip(), None)


class MagentoOrderEvents:
    """Applies orders and shipments read by the poll."""

    def __init__(self, policy: Policy, rules: CheckoutRules, shipping_template_sid: str | None = None) -> None:
        self.policy, self.rules, self.shipping_template_sid = policy, rules, shipping_template_sid

    @staticmethod
    def _ours(session: Session, entity_id: Any) -> Order | None:
        if entity_id is None:
            raise MappingError("the order's entity_id is missing")
        return session.exec(select(Order).where(Order.external_order_id == str(entity_id))).first()

    def order(self, session: Session, item: dict[str, Any]) -> str:
        """An order of `GET orders`: its newest `updated_at` is kept; a cancelled one is logged for
        a person (the shopper paid in chat, so the refund is the shop's decision)."""
        order = self._ours(session, item.get("entity_id"))
        if order is None:
            return "unknown"  # placed on the website: not one of the chat's
        updated_at = parse_time(item.get("updated_at"))
        if order.external_updated_at is not None and as_utc(order.external_updated_at) >= updated_at:
            return "stale"
        order.external_updated_at = updated_at
        session.add(order)
        if item.get("state") == "canceled" and order.status in ("paid", "shipped"):
            log.warning(
                "magento order cancelled after payment; a person decides the refund", extra={"order": order.number}
            )
            return "cancelled"
        return "applied"

    def shipment(self, session: Session, item: dict[str, Any]) -> bool:
        """A shipment of `GET shipments` with its tracks: the paid order is shipped (the shopper's
        notice queued once); a shipped one gets the newest tracking. True when a notice was queued."""
        order = self._ours(session, item.get("order_id"))
        if order is None:
            return False
        parse_time(item.get("updated_at"))  # a shipment without a time is not Magento's
        parcels = [p for p in (parcel_of(t) for t in item.get("tracks") or [] if isinstance(t, dict)) if p]
        if not parcels:
            return False
        parcel = parcels[-1]
        if order.status == "paid":
            result = ship(
                session, self.policy, self.rules.estimate, order.number, parcel, utcnow(), self.shipping_template_sid
            )
            return result["notice"] == "queued"
        if order.status in ("shipped", "delivered"):
            order.carrier, order.tracking_number, order.tracking_url = (
                parcel.carrier,
                parcel.tracking_number,
                parcel.tracking_url,
            )
            session.add(order)
        return False
