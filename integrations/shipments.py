"""Marking a paid order shipped: carrier, tracking number and tracking link, and the shopper told
through the outbox on their channel for updates. One function serves the admin API and the
command line. With a carrier service (SHIPPING=easypost) the parcel gets a tracker, and its
updates move the order on (`track_update`), each step told once and never backwards."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from bot.delivery.estimates import DeliveryEstimate
from bot.delivery.policy import ORDER_UPDATE, Policy
from bot.delivery.proactive import Planned, queue
from bot.i18n import EN, date_text, language_of, text_in
from bot.messages import Link, OutboundMessage, Template
from bot.store.database import Database
from bot.store.models import ORDER_NUMBER_OFFSET, Customer, Order
from integrations.shipping import Shipping, ShippingUnavailable

log = logging.getLogger(__name__)

# Carriers we can link to: canonical name and tracking page.
CARRIERS = {
    "ups": ("UPS", "https://www.ups.com/track?tracknum={}"),
    "usps": ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
    "fedex": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={}"),
    "dhl": ("DHL", "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={}"),
}
CARRIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .&'-]{1,39}")
TRACKING_RE = re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}")


class ShipmentError(Exception):
    """The shipment cannot be recorded; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Parcel:
    carrier: str
    tracking_number: str
    tracking_url: str | None


def parcel(carrier: object, tracking_number: object) -> Parcel:
    """A carrier's name and tracking number, checked and tidied; known carriers get a link.

    Raises:
        ShipmentError: 400, with what is wrong.
    """
    if not isinstance(carrier, str) or not CARRIER_RE.fullmatch(carrier.strip()):
        raise ShipmentError(400, "carrier must be a name of 2 to 40 letters, digits, spaces or . & ' -")
    if not isinstance(tracking_number, str):
        raise ShipmentError(400, "tracking_number must be a string")
    number = re.sub(r"\s+", "", tracking_number).upper()
    if not TRACKING_RE.fullmatch(number):
        raise ShipmentError(400, "tracking_number must be 4 to 40 letters, digits or '-'")
    known = CARRIERS.get(re.sub(r"[^a-z]", "", carrier.lower()))
    if known is None:
        return Parcel(" ".join(carrier.split()), number, None)
    return Parcel(known[0], number, known[1].format(number))


def ship(
    session: Session,
    policy: Policy,
    estimate: DeliveryEstimate,
    number: int,
    shipment: Parcel,
    now: datetime,
    template_sid: str | None = None,
) -> dict:
    """Mark a paid order shipped and queue the shopper's notice (once per order), in the
    caller's transaction. Returns the order's shipment and what became of the notice.

    Raises:
        ShipmentError: 404 unknown order, 409 not paid or shipped already.
    """
    order_id = number - ORDER_NUMBER_OFFSET
    order = (
        session.get(Order, order_id, with_for_update=session.bind.dialect.name != "sqlite") if order_id > 0 else None
    )
    if order is None:
        raise ShipmentError(404, f"no order #{number}")
    if order.status in ("shipped", "delivered"):
        raise ShipmentError(409, f"order #{number} has shipped already")
    if order.status != "paid":
        raise ShipmentError(409, f"order #{number} is not paid (it is {order.status.replace('_', ' ')})")
    order.status, order.shipped_at = "shipped", now
    order.carrier, order.tracking_number, order.tracking_url = (
        shipment.carrier,
        shipment.tracking_number,
        shipment.tracking_url,
    )
    order.estimated_delivery = estimate.arrives_after_shipping(now)
    customer = session.get(Customer, order.customer_id)
    language = language_of(customer.language if customer is not None else EN)
    message = OutboundMessage(
        text=text_in(
            language,
            "shipment.shipped",
            number=number,
            carrier=shipment.carrier,
            tracking=shipment.tracking_number,
            date=date_text(language, order.estimated_delivery),
        ),
        links=(Link(text_in(language, "btn.track_parcel"), shipment.tracking_url),) if shipment.tracking_url else (),
    )
    template = (
        OutboundMessage(
            text=message.text,
            template=Template(template_sid, {"1": str(number), "2": shipment.carrier, "3": shipment.tracking_number}),
        )
        if template_sid
        else None
    )
    counts = queue(
        session, policy, "shipment", order.id, 0, [Planned(order.customer_id, message, template)], ORDER_UPDATE, now
    )
    return {
        "number": number,
        "status": order.status,
        "carrier": order.carrier,
        "tracking_number": order.tracking_number,
        "tracking_url": order.tracking_url,
        "estimated_delivery": order.estimated_delivery.isoformat(),
        "notice": next(iter(counts), "queued"),
    }


async def ship_order(
    db: Database,
    policy: Policy,
    estimate: DeliveryEstimate,
    number: int,
    carrier: object,
    tracking_number: object,
    now: datetime,
    template_sid: str | None = None,
    shipping: Shipping | None = None,
) -> dict:
    """`ship` in its own transaction, after checking the input; then, with a carrier service,
    a tracker for the parcel (`tracker`: its id, or "unavailable" when the service did not
    answer: the order has shipped either way, and the shopper can follow the carrier's link).

    Raises:
        ShipmentError: 400 bad input, 404 unknown order, 409 not paid or shipped already.
    """
    shipment = parcel(carrier, tracking_number)
    result = await db.run(lambda s: ship(s, policy, estimate, number, shipment, now, template_sid))
    if shipping is None:
        return result
    try:
        tracker = await shipping.track(number, shipment.carrier, shipment.tracking_number)
    except ShippingUnavailable as exc:
        log.warning("no tracker for a shipped order", extra={"order": number, "reason": str(exc)})
        return {**result, "tracker": "unavailable"}
    if tracker:

        def keep(session: Session) -> None:
            order = session.get(Order, number - ORDER_NUMBER_OFFSET)
            if order is not None:
                order.tracker_ref = tracker

        await db.run(keep)
    return {**result, "tracker": tracker}


# How far a parcel has got, by the tracker's status (EasyPost's names): an update never moves an
# order back, so a late or repeated event changes nothing.
PROGRESS = {"pre_transit": 0, "in_transit": 1, "out_for_delivery": 2, "available_for_pickup": 2, "delivered": 3}
PROBLEMS = ("return_to_sender", "failure", "error", "cancelled")  # each told once, moving nothing on
# The shopper's notice for a status: its step among the order's shipment notices (step 0 is the
# shipped notice `ship` queues, so "in transit" after it is the same notice, not a second one).
NOTICES = {
    "in_transit": (0, "shipment.shipped"),
    "out_for_delivery": (1, "shipment.out_for_delivery"),
    "available_for_pickup": (1, "shipment.pickup"),
    "delivered": (2, "shipment.delivered"),
}


@dataclass(frozen=True)
class Tracked:
    """What a tracker update did: `outcome` for the log, `queued` when a notice waits."""

    outcome: str
    queued: bool = False
    order: int | None = None


def _progress(status: str | None) -> int:
    return PROGRESS.get(status or "", 1 if status in PROBLEMS else 0)


def order_of_tracker(session: Session, tracker: dict[str, Any], lock: bool = False) -> Order | None:
    """The shipped order a tracker follows: by the tracker's id, or by its tracking code (an
    update that beat the tracker's id into the store)."""
    order_id = session.exec(select(Order.id).where(Order.tracker_ref == str(tracker.get("id")))).first()
    code = tracker.get("tracking_code")
    if order_id is None and isinstance(code, str) and code:
        order_id = session.exec(
            select(Order.id).where(Order.tracking_number == code.upper(), Order.status.in_(("shipped", "delivered")))  # type: ignore[attr-defined]
        ).first()
    return None if order_id is None else session.get(Order, order_id, with_for_update=lock)


def track_update(
    session: Session,
    policy: Policy,
    order: Order,
    tracker: dict[str, Any],
    now: datetime,
    template_sid: str | None = None,
) -> Tracked:
    """Move a shipped order on by its tracker's status, in the caller's transaction, and queue
    the shopper's notice (once per step): out for delivery, delivered (the order is delivered,
    its return window opens) or a problem. A status behind the order's is ignored."""
    status = str(tracker.get("status") or "")
    number = order.number
    if order.status not in ("shipped", "delivered"):
        return Tracked("not_shipped", order=number)
    if order.status == "delivered" or order.tracking_status == "delivered":
        return Tracked("delivered_already", order=number)
    if status in PROBLEMS:
        step, key = 3 + PROBLEMS.index(status), "shipment.problem"
    elif status in PROGRESS:
        if PROGRESS[status] <= _progress(order.tracking_status):
            return Tracked("stale", order=number)
        step, key = NOTICES.get(status, (-1, ""))
    else:
        return Tracked("ignored", order=number)
    order.tracking_status = status
    if status == "delivered":
        order.status, order.delivered_at = "delivered", now
    elif status in PROGRESS and (estimated := _date(tracker.get("est_delivery_date"))) is not None:
        order.estimated_delivery = estimated
    session.flush()
    if step < 0:  # pre_transit: nothing to tell yet
        return Tracked(status, order=number)
    customer = session.get(Customer, order.customer_id)
    language = language_of(customer.language if customer is not None else EN)
    values = {
        "number": number,
        "carrier": order.carrier or "",
        "tracking": order.tracking_number or "",
        "date": date_text(language, order.estimated_delivery) if order.estimated_delivery else "",
    }
    words = text_in(language, key, **values)
    message = OutboundMessage(
        text=words,
        links=(Link(text_in(language, "btn.track_parcel"), order.tracking_url),) if order.tracking_url else (),
    )
    template = (
        OutboundMessage(text=words, template=Template(template_sid, {"1": str(number), "2": words}))
        if template_sid
        else None
    )
    counts = queue(
        session,
        policy,
        "shipment",
        order.id or 0,
        step,
        [Planned(order.customer_id, message, template)],
        ORDER_UPDATE,
        now,
    )
    return Tracked(status, counts.get("queued", 0) > 0, number)


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None
