"""Marking a paid order shipped: carrier, tracking number and tracking link, and the shopper told
through the outbox on their channel for updates. One function serves the admin API and the
command line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.delivery.estimates import DeliveryEstimate
from bot.delivery.policy import ORDER_UPDATE, Policy
from bot.delivery.proactive import Planned, queue
from bot.i18n import EN, date_text, language_of, text_in
from bot.messages import Link, OutboundMessage, Template
from bot.store.database import Database
from bot.store.models import ORDER_NUMBER_OFFSET, Customer, Order

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
) -> dict:
    """`ship` in its own transaction, after checking the input.

    Raises:
        ShipmentError: 400 bad input, 404 unknown order, 409 not paid or shipped already.
    """
    shipment = parcel(carrier, tracking_number)
    return await db.run(lambda s: ship(s, policy, estimate, number, shipment, now, template_sid))
