"""Shipping: the interface checkout, shipments and returns use to reach a carrier service, and the
built-in one (`SHIPPING=store`) that checks nothing and leaves dates to the shop's own estimate.
EasyPost meets the same interface in `integrations/easypost_shipping.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol


class ShippingUnavailable(Exception):
    """The carrier service did not answer, or refused: nothing to tell the shopper from it yet."""


@dataclass(frozen=True)
class AddressCheck:
    """What the carrier service made of a shipping address.

    `problem`: None (deliverable), "unreadable" (not street, city, state and ZIP) or
    "undeliverable" (the carrier service does not know it). `arrives_by`: the carrier's delivery
    date for an order placed now; None leaves it to the shop's own estimate.
    """

    address: str
    problem: str | None = None
    arrives_by: date | None = None


@dataclass(frozen=True)
class ReturnLabel:
    """A bought, prepaid return label: where to print it, and the tracker of its parcel."""

    label_url: str
    tracker_ref: str | None
    tracking_code: str | None


class Shipping(Protocol):
    async def check_address(self, address: str, now: datetime) -> AddressCheck:
        """Check a shopper's address and date its delivery.

        Raises:
            ShippingUnavailable: the carrier service is down; checkout goes on unchecked.
        """
        ...

    async def track(self, number: int, carrier: str, tracking_number: str) -> str | None:
        """Ask for tracking updates of a shipped order's parcel; the tracker's id, None if there is none.

        Raises:
            ShippingUnavailable: the carrier service is down or refused.
        """
        ...

    async def return_label(self, reference: str, address: str) -> ReturnLabel | None:
        """Buy a prepaid label for a return from `address` to the shop; None: returns go by post
        without one (the built-in service).

        Raises:
            ShippingUnavailable: the carrier service is down or refused.
        """
        ...

    async def close(self) -> None: ...


class StoreShipping:
    """No carrier service: addresses are taken as given, dates come from the shop's estimate,
    parcels are followed through the carrier's own tracking page."""

    async def check_address(self, address: str, now: datetime) -> AddressCheck:
        return AddressCheck(address)

    async def track(self, number: int, carrier: str, tracking_number: str) -> str | None:
        return None

    async def return_label(self, reference: str, address: str) -> ReturnLabel | None:
        return None

    async def close(self) -> None:
        pass
