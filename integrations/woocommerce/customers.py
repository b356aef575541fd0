"""WooCommerce's customers (REST API v3, a key with Read access): the one with an e-mail address
or billing phone, its saved address, and its orders newest first, with their tracking from the
Shipment Tracking meta or an order note, as chat orders read it.

WooCommerce has no phone filter: `customers?search=` searches the WordPress user's login, e-mail,
URL and names only (a number: its login or id), so a billing phone is looked for there first (shops
that make the phone the login) and then in `orders?search=`, which searches the orders' billing and
shipping addresses as typed, phone included: first for the number's digits without the country code
("5551234567"), then, since a phone typed "(555) 123-4567" holds no such run, for its last four
digits among the newest 100 orders that have them. Either way the billing phone found must be the
contact's once normalised, and a phone that two customers share matches neither. A customer with
no order and a phone that is not their login is not found by phone (they prove their e-mail).

A customer's orders are `orders?customer=ID` and, since a customer's orders placed before they
had an account (or without logging in) are guest orders (`customer_id` 0), the guest orders with
the customer's e-mail as billing e-mail (`orders?search=`, compared exactly). A proved e-mail
address with no account but guest orders is a guest customer (`GUEST` + the address): its guest
orders, and the account's once one is made with that address."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.delivery.mail import is_email
from integrations.commerce.model import MappingError, parse_time, price_cents
from integrations.customers import (
    GUEST,
    PlatformCustomer,
    PlatformUnavailable,
    WebsiteOrder,
    national_number,
    same_phone,
)
from integrations.shipments import Parcel
from integrations.woocommerce.client import PER_PAGE, WooCommerceClient, WooCommerceError
from integrations.woocommerce.mapping import woo_id
from integrations.woocommerce.orders import tracking_from_meta, tracking_from_notes

log = logging.getLogger(__name__)

SEARCH_PAGE = 20  # candidates read for a phone or a guest e-mail (newest first)
PENDING = ("pending", "on-hold", "checkout-draft")
PAID = ("processing",)
SHIPPED = ("completed",)  # WooCommerce's last state: the order was sent
CANCELLED = ("cancelled", "failed", "refunded")


def address_text(address: Any) -> str | None:
    """A billing or shipping address on one line: "12 Main St, Springfield, IL 62701, US"."""
    if not isinstance(address, dict) or not str(address.get("address_1") or "").strip():
        return None
    region = " ".join(str(address[k]).strip() for k in ("state", "postcode") if str(address.get(k) or "").strip())
    parts = [address.get("address_1"), address.get("address_2"), address.get("city"), region, address.get("country")]
    return ", ".join(str(p).strip() for p in parts if p and str(p).strip())


def platform_customer(body: dict[str, Any]) -> PlatformCustomer:
    """A customer of `GET customers`: its saved address is the shipping one, else the billing one.

    Raises:
        MappingError: it has no id.
    """
    return PlatformCustomer(
        woo_id(body.get("id"), "customer id"), address_text(body.get("shipping")) or address_text(body.get("billing"))
    )


def order_status(body: dict[str, Any], parcel: Parcel | None) -> str:
    """Our status of a WooCommerce order: refunded reads as cancelled (the parcel is not coming);
    one with a tracking number is shipped (WooCommerce has no delivered state)."""
    status = body.get("status")
    if status in CANCELLED:
        return "cancelled"
    if parcel is not None or status in SHIPPED:
        return "shipped"
    if status in PAID:
        return "paid"
    return "pending_payment"


def website_order(body: dict[str, Any], parcel: Parcel | None) -> WebsiteOrder:
    """Raises:
    MappingError: a field we need is missing."""
    number = body.get("number") or body.get("id")
    lines = [line for line in body.get("line_items") or [] if isinstance(line, dict)]
    total = body.get("total")
    return WebsiteOrder(
        id=woo_id(body.get("id"), "order id"),
        name=f"#{number}",
        created_at=parse_time(body.get("date_created_gmt"), "date_created_gmt").date().isoformat(),
        status=order_status(body, parcel),
        items=[(int(line.get("quantity") or 0), str(line.get("name") or "")) for line in lines],
        carrier=parcel.carrier if parcel else None,
        tracking_number=parcel.tracking_number if parcel else None,
        tracking_url=parcel.tracking_url if parcel else None,
        products=tuple(str(line["product_id"]) for line in lines if line.get("product_id")),
        total_cents=price_cents(total) if total not in (None, "") else None,
        currency=str(body["currency"]) if body.get("currency") else None,
    )


class WooCommerceCustomers:
    """`PlatformCustomers` over the REST API v3."""

    def __init__(self, client: WooCommerceClient) -> None:
        self.client = client

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return await self.client.get(path, params)
        except WooCommerceError as exc:
            raise PlatformUnavailable(str(exc)) from exc

    async def _list(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        body = await self._get(path, params)
        if not isinstance(body, list):
            raise PlatformUnavailable(f"GET {path}: not a list")
        return [item for item in body if isinstance(item, dict)]

    async def find(self, contact: str) -> PlatformCustomer | None:
        if is_email(contact):
            found = await self._account(contact)
            if not found:
                guest = await self._guest_orders(contact, 1)
                if guest:
                    newest = guest[0]
                    return PlatformCustomer(
                        GUEST + contact, address_text(newest.get("shipping")) or address_text(newest.get("billing"))
                    )
        else:
            found = await self._by_phone(contact)
        if len(found) != 1:
            if found:
                log.warning("a contact is several customers' on woocommerce: none is matched")
            return None
        try:
            return platform_customer(found[0])
        except MappingError as exc:
            raise PlatformUnavailable(str(exc)) from exc

    async def _account(self, email: str) -> list[dict[str, Any]]:
        """The registered customers with this e-mail address (WordPress allows one)."""
        listed = await self._list("customers", {"email": email, "role": "all"})
        return [c for c in listed if str(c.get("email") or "").lower() == email]

    async def _guest_orders(self, email: str, limit: int = SEARCH_PAGE) -> list[dict[str, Any]]:
        """Guest orders (`customer_id` 0) whose billing e-mail is this one, newest first: the
        search matches any part of any address field, so the e-mail is compared exactly."""
        found = [
            o
            for o in await self._list("orders", {"search": email, "per_page": SEARCH_PAGE})
            if not o.get("customer_id") and str((o.get("billing") or {}).get("email") or "").lower() == email
        ]
        found.sort(key=lambda o: str(o.get("date_created_gmt") or ""), reverse=True)
        return found[:limit]

    async def _by_phone(self, contact: str) -> list[dict[str, Any]]:
        """The customers whose billing phone is `contact`: those whose login holds it, else those
        of the orders with it (one each, read by id)."""
        digits = national_number(contact)
        params = {"search": digits, "role": "all", "per_page": SEARCH_PAGE}
        customers = [
            c
            for c in await self._list("customers", params)
            if same_phone((c.get("billing") or {}).get("phone"), contact)
        ]
        if customers:
            return customers
        ids: set[str] = set()
        # The digits as one run, then the last four alone: kept as typed, "(555) 123-4567" holds
        # only the latter, so those are read a page of the newest at a time.
        for term, size in ((digits, SEARCH_PAGE), (digits[-4:], PER_PAGE)):
            orders = await self._list("orders", {"search": term, "per_page": size})
            ids = {
                str(o["customer_id"])
                for o in orders
                if o.get("customer_id") and same_phone((o.get("billing") or {}).get("phone"), contact)
            }
            if ids:
                break
        if len(ids) > 1:  # several customers: not read, none will be matched
            return [{"id": i} for i in ids]
        bodies = [await self._get(f"customers/{woo_id(i, 'customer id')}") for i in ids]
        return [b for b in bodies if isinstance(b, dict)]

    async def orders(self, customer_id: str, limit: int = 5) -> list[WebsiteOrder]:
        account_id: str | None
        if customer_id.startswith(GUEST):
            email = customer_id.removeprefix(GUEST)
            account = await self._account(email)  # made since the match: its orders are theirs too
            account_id = woo_id(account[0].get("id"), "customer id") if len(account) == 1 else None
        else:
            account_id = woo_id(customer_id, "customer id")
            body = await self._get(f"customers/{account_id}")
            email = str(body.get("email") or "").lower() if isinstance(body, dict) else ""
        mine: list[dict[str, Any]] = []
        if account_id is not None:
            params = {"customer": account_id, "per_page": limit, "orderby": "date", "order": "desc"}
            mine = await self._list("orders", params)
        guest = await self._guest_orders(email) if email else []
        bodies = list({str(o.get("id")): o for o in [*mine, *guest]}.values())
        bodies.sort(key=lambda o: str(o.get("date_created_gmt") or ""), reverse=True)
        bodies = bodies[:limit]
        parcels = await asyncio.gather(*(self._parcel(o) for o in bodies))
        orders = []
        for body, parcel in zip(bodies, parcels, strict=True):
            try:
                orders.append(website_order(body, parcel))
            except (MappingError, TypeError, ValueError) as exc:
                log.warning("a website order could not be read", extra={"reason": str(exc)})
        return orders

    async def _parcel(self, body: dict[str, Any]) -> Parcel | None:
        """The order's parcel: from the Shipment Tracking meta, else (a paid order) its notes. A note
        that cannot be read leaves the order without its tracking rather than the list unread."""
        found = tracking_from_meta(body)
        if found is not None or body.get("status") not in (*PAID, *SHIPPED):
            return found
        try:
            notes = await self.client.get(f"orders/{woo_id(body.get('id'), 'order id')}/notes")
        except (WooCommerceError, MappingError) as exc:
            log.warning("a website order's notes could not be read", extra={"reason": str(exc)})
            return None
        return tracking_from_notes(notes if isinstance(notes, list) else [])
