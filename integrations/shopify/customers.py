"""Shopify's customers (scope `read_customers`, and `read_orders` for their orders): the one
with an e-mail address or phone number, its default address, and its orders with their
fulfillments' tracking, newest first."""

from __future__ import annotations

import logging
from typing import Any

from bot.delivery.mail import is_email
from integrations.commerce.model import price_cents
from integrations.customers import PlatformCustomer, PlatformUnavailable, WebsiteOrder
from integrations.shopify.client import ShopifyClient, ShopifyError
from integrations.shopify.mapping import MappingError, parse_time

log = logging.getLogger(__name__)

FIND_CUSTOMER = """
query CustomerByContact($query: String!) {
  customers(first: 1, query: $query) {
    nodes {
      id
      defaultAddress { address1 address2 city provinceCode zip countryCodeV2 }
    }
  }
}
"""

CUSTOMER_ORDERS = """
query CustomerOrders($id: ID!, $first: Int!) {
  customer(id: $id) {
    orders(first: $first, sortKey: CREATED_AT, reverse: true) {
      nodes {
        id
        name
        createdAt
        cancelledAt
        displayFinancialStatus
        displayFulfillmentStatus
        totalPriceSet { shopMoney { amount currencyCode } }
        lineItems(first: 10) { nodes { name quantity product { id } } }
        fulfillments(first: 5) {
          status
          displayStatus
          trackingInfo(first: 1) { number url company }
        }
      }
    }
  }
}
"""


def search_query(contact: str) -> str:
    """Shopify's search syntax for the customer with this contact: `email:"a@b.c"` or
    `phone:"+15551234567"` (quoted, so nothing in it is read as syntax)."""
    field = "email" if is_email(contact) else "phone"
    return f'{field}:"{contact.replace(chr(92), "").replace(chr(34), "")}"'


def address_text(address: dict[str, Any] | None) -> str | None:
    """A MailingAddress on one line: "12 Main St, Springfield, IL 62701, US"."""
    if not address or not address.get("address1"):
        return None
    region = " ".join(str(address[k]) for k in ("provinceCode", "zip") if address.get(k))
    parts = [
        address.get("address1"),
        address.get("address2"),
        address.get("city"),
        region,
        address.get("countryCodeV2"),
    ]
    return ", ".join(str(p).strip() for p in parts if p and str(p).strip())


def order_status(node: dict[str, Any]) -> str:
    """Our status of a Shopify order: cancelled, delivered, shipped, paid or waiting for payment."""
    if node.get("cancelledAt"):
        return "cancelled"
    fulfillments = [f for f in node.get("fulfillments") or [] if isinstance(f, dict)]
    if any(f.get("displayStatus") == "DELIVERED" for f in fulfillments):
        return "delivered"
    if fulfillments and any(f.get("status") == "SUCCESS" for f in fulfillments):
        return "shipped"
    if node.get("displayFulfillmentStatus") in ("FULFILLED", "PARTIALLY_FULFILLED"):
        return "shipped"
    if node.get("displayFinancialStatus") in ("PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "REFUNDED"):
        return "paid"
    return "pending_payment"


def website_order(node: dict[str, Any]) -> WebsiteOrder:
    """Raises:
    MappingError: a field we need is missing."""
    if not node.get("id") or not node.get("name"):
        raise MappingError("an order has no id or name")
    tracking: dict[str, Any] = {}
    for fulfillment in reversed(node.get("fulfillments") or []):  # the latest parcel's tracking
        info = next(iter(fulfillment.get("trackingInfo") or []), None)
        if isinstance(info, dict) and info.get("number"):
            tracking = info
            break
    url = tracking.get("url")
    items = [
        (int(line.get("quantity") or 0), str(line.get("name") or ""))
        for line in ((node.get("lineItems") or {}).get("nodes") or [])
        if isinstance(line, dict)
    ]
    products = tuple(
        str(line["product"]["id"])
        for line in ((node.get("lineItems") or {}).get("nodes") or [])
        if isinstance(line, dict) and isinstance(line.get("product"), dict) and line["product"].get("id")
    )
    money = (node.get("totalPriceSet") or {}).get("shopMoney") or {}
    return WebsiteOrder(
        id=str(node["id"]),
        name=str(node["name"]),
        created_at=parse_time(node.get("createdAt"), "createdAt").date().isoformat(),
        status=order_status(node),
        items=items,
        carrier=(str(tracking.get("company") or "").strip() or None) if tracking else None,
        tracking_number=str(tracking["number"]) if tracking else None,
        tracking_url=url if isinstance(url, str) and url.startswith("https://") else None,
        products=products,
        total_cents=price_cents(money["amount"]) if money.get("amount") is not None else None,
        currency=str(money["currencyCode"]) if money.get("currencyCode") else None,
    )


class ShopifyCustomers:
    """`PlatformCustomers` over the Admin GraphQL API."""

    def __init__(self, client: ShopifyClient) -> None:
        self.client = client

    async def find(self, contact: str) -> PlatformCustomer | None:
        try:
            data = await self.client.query("CustomerByContact", FIND_CUSTOMER, {"query": search_query(contact)})
        except ShopifyError as exc:
            raise PlatformUnavailable(str(exc)) from exc
        nodes = ((data.get("customers") or {}).get("nodes")) or []
        node = next((n for n in nodes if isinstance(n, dict) and n.get("id")), None)
        if node is None:
            return None
        return PlatformCustomer(str(node["id"]), address_text(node.get("defaultAddress")))

    async def orders(self, customer_id: str, limit: int = 5) -> list[WebsiteOrder]:
        try:
            data = await self.client.query("CustomerOrders", CUSTOMER_ORDERS, {"id": customer_id, "first": limit})
        except ShopifyError as exc:
            raise PlatformUnavailable(str(exc)) from exc
        nodes = (((data.get("customer") or {}).get("orders") or {}).get("nodes")) or []
        orders = []
        for node in nodes:
            try:
                orders.append(website_order(node))
            except (MappingError, TypeError, ValueError) as exc:
                log.warning("a website order could not be read", extra={"reason": str(exc)})
        return orders
