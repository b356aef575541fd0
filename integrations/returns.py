"""Returns by carrier: the refund of a returned item once the carrier has scanned its parcel
(the prepaid label itself is bought by `StoreOrders.label_return`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from bot.delivery.policy import ORDER_UPDATE, Policy
from bot.delivery.proactive import Planned, queue
from bot.i18n import EN, language_of, money, text_in
from bot.messages import OutboundMessage
from bot.store.models import Customer, Order, OrderItem, ReturnRequest
from integrations.orders import OrderView, view_of
from integrations.shipments import PROGRESS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refund:
    """A refund to make after the transaction: the order, its payment, the amount, the key."""

    order: OrderView
    capture_ref: str
    amount_cents: int
    key: str


@dataclass(frozen=True)
class Scanned:
    outcome: str
    queued: bool = False
    order: int | None = None
    refund: Refund | None = None


def return_of_tracker(session: Session, tracker: dict[str, Any], lock: bool = False) -> ReturnRequest | None:
    row_id = session.exec(select(ReturnRequest.id).where(ReturnRequest.tracker_ref == str(tracker.get("id")))).first()
    return None if row_id is None else session.get(ReturnRequest, row_id, with_for_update=lock)


def refund_cents(session: Session, order: Order, item: OrderItem) -> int:
    """What the item cost the shopper: its price, less its share of the order's discount."""
    goods = sum(
        i.unit_price_cents * i.quantity
        for i in session.exec(select(OrderItem).where(OrderItem.order_id == order.id)).all()
    )
    price = item.unit_price_cents * item.quantity
    return price if not goods else price * (goods - order.discount_cents) // goods


def return_scanned(
    session: Session, policy: Policy, row: ReturnRequest, tracker: dict[str, Any], currency: str, now: datetime
) -> Scanned:
    """The return parcel's tracker moved: once the carrier has it (in transit or further), the
    return is marked so, the shopper told, and the item's refund handed back to the caller (to
    ask the payment provider after the transaction). Once per return."""
    order = session.get(Order, row.order_id)
    item = session.get(OrderItem, row.order_item_id)
    if order is None or item is None:
        return Scanned("unknown")
    if PROGRESS.get(str(tracker.get("status") or ""), 0) < PROGRESS["in_transit"]:
        return Scanned("not_scanned", order=order.number)
    if row.status == "in_transit":
        return Scanned("refunded_already", order=order.number)
    row.status = "in_transit"
    amount = refund_cents(session, order, item)
    customer = session.get(Customer, order.customer_id)
    language = language_of(customer.language if customer is not None else EN)
    message = OutboundMessage(
        text=text_in(
            language,
            "return.refunding",
            reference=row.reference,
            amount=money(amount, language, currency),
            name=item.name,
        )
    )
    counts = queue(session, policy, "return", row.id or 0, 0, [Planned(order.customer_id, message)], ORDER_UPDATE, now)
    refund = (
        Refund(view_of(session, order), order.payment_capture_ref, amount, f"return-{row.reference}-refund")
        if order.payment_capture_ref
        else None
    )
    if refund is None:
        log.info("returned item: no payment to refund through a provider", extra={"order": order.number})
    return Scanned("refund", counts.get("queued", 0) > 0, order.number, refund)
