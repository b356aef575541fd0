"""Magento's customers (the integration needs the Customers and Sales resources): the one with an
e-mail address or default billing phone, its default shipping address, and its orders newest
first, with their shipments' tracks.

An e-mail address is `customers/search` on `email`. Magento keeps phone numbers on addresses
only; the customer search can filter on the default billing address's (`billing_telephone`, as
typed on the website), so a phone is looked for with `like` on its digits in order with anything
between them ("%5%5%5%1%2%3%4%5%6%7"), then each found number normalised must be the contact's.
A phone on another address of the customer is not found, and a phone two customers share
matches neither.

A customer's orders are those with its `customer_id` or, placed as a guest before the account
(or without logging in), with its e-mail as `customer_email`: one filter group, so either. A
proved e-mail address with no account but guest orders is a guest customer (`GUEST` + the
address): the orders with that `customer_email`."""

from __future__ import annotations

import logging
from typing import Any

from bot.delivery.mail import is_email
from integrations.commerce.model import price_cents
from integrations.customers import (
    GUEST,
    PlatformCustomer,
    PlatformUnavailable,
    WebsiteOrder,
    national_number,
    same_phone,
)
from integrations.magento.client import PAGE_SIZE, MagentoClient, MagentoError
from integrations.magento.mapping import MappingError, parse_time
from integrations.magento.orders import parcel_of
from integrations.shipments import Parcel

log = logging.getLogger(__name__)

SEARCH_PAGE = 20  # customers read for a phone
PAID = ("processing",)
SHIPPED = ("complete",)  # invoiced and shipped
CANCELLED = ("canceled", "closed")  # closed: refunded


def criteria(groups: list[list[tuple[str, str, str]]], size: int, sort: str | None = None) -> dict[str, str]:
    """searchCriteria query parameters: filters in a group are ORed, groups ANDed; newest first
    when `sort` is given."""
    params: dict[str, str] = {}
    for g, group in enumerate(groups):
        for f, (field, value, condition) in enumerate(group):
            prefix = f"searchCriteria[filter_groups][{g}][filters][{f}]"
            params[f"{prefix}[field]"] = field
            params[f"{prefix}[value]"] = value
            params[f"{prefix}[condition_type]"] = condition
    if sort:
        params["searchCriteria[sortOrders][0][field]"] = sort
        params["searchCriteria[sortOrders][0][direction]"] = "DESC"
    params["searchCriteria[pageSize]"] = str(size)
    params["searchCriteria[currentPage]"] = "1"
    return params


def digits_like(contact: str) -> str:
    """A `like` value for the number's digits (without the country code) with anything between:
    "(555) 123-4567" and "+1 555 123 4567" both match."""
    return "%" + "%".join(national_number(contact)) + "%"


def address_text(address: Any) -> str | None:
    """A customer address (`street` lines, `city`, `region`, `postcode`, `country_id`) on one line."""
    if not isinstance(address, dict):
        return None
    street = [str(s).strip() for s in address.get("street") or [] if str(s or "").strip()]
    if not street:
        return None
    region = address.get("region")
    # A customer address has `region` as an object; an order address has `region_code` beside it.
    code = (
        (region.get("region_code") or region.get("region"))
        if isinstance(region, dict)
        else (address.get("region_code") or region)
    )
    area = " ".join(str(v).strip() for v in (code, address.get("postcode")) if str(v or "").strip())
    parts = [*street, address.get("city"), area, address.get("country_id")]
    return ", ".join(str(p).strip() for p in parts if p and str(p).strip())


def order_address(item: dict[str, Any]) -> str | None:
    """An order's shipping address (its first shipping assignment's), else its billing address."""
    assignments = (item.get("extension_attributes") or {}).get("shipping_assignments") or []
    for assignment in assignments:
        shipping = (assignment or {}).get("shipping") or {} if isinstance(assignment, dict) else {}
        if text := address_text(shipping.get("address")):
            return text
    return address_text(item.get("billing_address"))


def default_address(customer: dict[str, Any]) -> str | None:
    """The default shipping address, else the default billing one."""
    addresses = [a for a in customer.get("addresses") or [] if isinstance(a, dict)]
    for flag, key in (("default_shipping", "default_shipping"), ("default_billing", "default_billing")):
        chosen = next(
            (a for a in addresses if a.get(flag) is True or str(a.get("id")) == str(customer.get(key) or "")),
            None,
        )
        if chosen is not None and (text := address_text(chosen)):
            return text
    return None


def billing_phone(customer: dict[str, Any]) -> str | None:
    addresses = [a for a in customer.get("addresses") or [] if isinstance(a, dict)]
    chosen = next(
        (
            a
            for a in addresses
            if a.get("default_billing") is True or str(a.get("id")) == str(customer.get("default_billing") or "")
        ),
        None,
    )
    return chosen.get("telephone") if chosen else None


def order_status(item: dict[str, Any], parcel: Parcel | None) -> str:
    """Our status of a Magento order from its `state`: complete (or a track) is shipped, closed
    (refunded) reads as cancelled; Magento has no delivered state."""
    state = item.get("state")
    if state in CANCELLED:
        return "cancelled"
    if parcel is not None or state in SHIPPED:
        return "shipped"
    if state in PAID or float(item.get("total_paid") or 0) > 0:
        return "paid"
    return "pending_payment"


def website_order(item: dict[str, Any], parcel: Parcel | None) -> WebsiteOrder:
    """Raises:
    MappingError: a field we need is missing."""
    if item.get("entity_id") is None or not item.get("increment_id"):
        raise MappingError("an order has no entity_id or increment_id")
    lines = [i for i in item.get("items") or [] if isinstance(i, dict) and not i.get("parent_item_id")]
    total = item.get("grand_total")
    return WebsiteOrder(
        id=str(item["entity_id"]),
        name=f"#{item['increment_id']}",
        created_at=parse_time(item.get("created_at"), "created_at").date().isoformat(),
        status=order_status(item, parcel),
        items=[(int(float(i.get("qty_ordered") or 0)), str(i.get("name") or i.get("sku") or "")) for i in lines],
        carrier=parcel.carrier if parcel else None,
        tracking_number=parcel.tracking_number if parcel else None,
        tracking_url=parcel.tracking_url if parcel else None,
        # An order item's sku is the variant's (a configurable's line carries its child's): read
        # as its product through the copy's variants.
        products=tuple(str(i["sku"]) for i in lines if i.get("sku")),
        total_cents=price_cents(total) if total is not None else None,
        currency=str(item.get("order_currency_code") or "") or None,
    )


class MagentoCustomers:
    """`PlatformCustomers` over the REST API."""

    def __init__(self, client: MagentoClient) -> None:
        self.client = client

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await self.client.get(path, params)
        except MagentoError as exc:
            raise PlatformUnavailable(str(exc)) from exc

    async def _items(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        body = await self._get(path, params)
        if not isinstance(body, dict):
            raise PlatformUnavailable(f"GET {path}: not a search result")
        return [i for i in body.get("items") or [] if isinstance(i, dict)]

    async def find(self, contact: str) -> PlatformCustomer | None:
        if is_email(contact):
            found = [
                c
                for c in await self._items("customers/search", criteria([[("email", contact, "eq")]], SEARCH_PAGE))
                if str(c.get("email") or "").lower() == contact
            ]
            if not found:
                guest = [[("customer_email", contact, "eq")], [("customer_is_guest", "1", "eq")]]
                newest = await self._items("orders", criteria(guest, 1, sort="created_at"))
                if newest:
                    return PlatformCustomer(GUEST + contact, order_address(newest[0]))
        else:
            params = criteria([[("billing_telephone", digits_like(contact), "like")]], SEARCH_PAGE)
            found = [c for c in await self._items("customers/search", params) if same_phone(billing_phone(c), contact)]
        ids = {str(c.get("id")) for c in found if c.get("id") is not None}
        if len(ids) != 1:
            if ids:
                log.warning("a contact is several customers' on magento: none is matched")
            return None
        return PlatformCustomer(ids.pop(), default_address(found[0]))

    async def orders(self, customer_id: str, limit: int = 5) -> list[WebsiteOrder]:
        if customer_id.startswith(GUEST):  # every order with the address, an account's made since too
            either = [("customer_email", customer_id.removeprefix(GUEST), "eq")]
        else:
            try:
                account = await self.client.get(f"customers/{customer_id}")
            except MagentoError as exc:
                if exc.status == 404:  # the account was deleted: nothing of it to show
                    return []
                raise PlatformUnavailable(str(exc)) from exc
            email = str((account or {}).get("email") or "").lower() if isinstance(account, dict) else ""
            either = [("customer_id", customer_id, "eq")] + ([("customer_email", email, "eq")] if email else [])
        items = await self._items("orders", criteria([either], limit, sort="created_at"))
        items.sort(key=lambda i: str(i.get("created_at") or ""), reverse=True)
        items = items[:limit]
        parcels = await self._parcels([str(i["entity_id"]) for i in items if i.get("entity_id") is not None])
        orders = []
        for item in items:
            try:
                orders.append(website_order(item, parcels.get(str(item.get("entity_id")))))
            except (MappingError, TypeError, ValueError) as exc:
                log.warning("a website order could not be read", extra={"reason": str(exc)})
        return orders

    async def _parcels(self, order_ids: list[str]) -> dict[str, Parcel]:
        """The newest track of each order's shipments (`shipments` by `order_id` in ...). Tracks
        that cannot be read leave the orders without them rather than the list unread."""
        if not order_ids:
            return {}
        params = criteria([[("order_id", ",".join(order_ids), "in")]], PAGE_SIZE)
        try:
            body = await self.client.get("shipments", params)
        except MagentoError as exc:
            log.warning("website orders' shipments could not be read", extra={"reason": str(exc)})
            return {}
        found: dict[str, Parcel] = {}
        shipments = (
            [s for s in (body or {}).get("items") or [] if isinstance(s, dict)] if isinstance(body, dict) else []
        )
        for shipment in sorted(shipments, key=lambda s: str(s.get("created_at") or s.get("updated_at") or "")):
            for track in shipment.get("tracks") or []:
                parcel = parcel_of(track) if isinstance(track, dict) else None
                if parcel is not None:
                    found[str(shipment.get("order_id"))] = parcel
        return found
