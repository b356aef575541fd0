"""Checkout with Shopify taking the payment: each order placed in chat becomes a draft order
(its lines by Shopify variant id, the discount as its applied discount, shipping as its shipping
line) whose `invoiceUrl` is the shopper's payment link. Meets the payments interface."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from bot.store.database import Database
from bot.store.models import CommerceVariant
from integrations.commerce.mirror import PLATFORM
from integrations.orders import OrderView
from integrations.payments import PaymentLink, PaymentUnavailable
from integrations.shopify.client import ShopifyClient, ShopifyError, ShopifyUnavailable

log = logging.getLogger(__name__)
ORDER_ATTRIBUTE = "chat_order"  # the draft's custom attribute (the order's note attribute) naming our order

DRAFT_ORDER_CREATE = """
mutation DraftOrderCreate($input: DraftOrderInput!) {
  draftOrderCreate(input: $input) {
    draftOrder { id invoiceUrl totalPriceSet { shopMoney { amount currencyCode } } }
    userErrors { field message }
  }
}
"""
DRAFT_ORDERS_TAGGED = """
query DraftOrdersTagged($query: String!) {
  draftOrders(first: 1, query: $query) { nodes { id invoiceUrl } }
}
"""
DRAFT_ORDER_DELETE = """
mutation DraftOrderDelete($input: DraftOrderDeleteInput!) {
  draftOrderDelete(input: $input) { deletedId userErrors { field message } }
}
"""


def order_tag(number: int) -> str:
    """The tag that finds an order's draft again: draftOrderCreate takes no idempotency key."""
    return f"chat-order-{number}"


def _money(cents: int) -> str:
    return str(Decimal(cents) / 100)


def draft_input(order: OrderView, variant_ids: dict[str, str], currency: str) -> dict[str, Any]:
    """The DraftOrderInput of an order.

    Raises:
        PaymentUnavailable: a line's variant is not one of Shopify's.
    """
    missing = [line.variant_sku for line in order.lines if line.variant_sku not in variant_ids]
    if missing:
        raise PaymentUnavailable(f"variants not in Shopify: {', '.join(missing)}")
    data: dict[str, Any] = {
        "lineItems": [{"variantId": variant_ids[line.variant_sku], "quantity": line.quantity} for line in order.lines],
        "tags": [order_tag(order.number)],
        "customAttributes": [{"key": ORDER_ATTRIBUTE, "value": str(order.number)}],
        "note": f"Order #{order.number} placed in chat. Ship to: {order.shipping_address}",
        "shippingLine": {
            "title": "Shipping",
            "priceWithCurrency": {"amount": _money(order.shipping_cents), "currencyCode": currency},
        },
    }
    if order.discount_cents:
        data["appliedDiscount"] = {
            "valueType": "FIXED_AMOUNT",
            "value": float(Decimal(order.discount_cents) / 100),
            "title": order.discount_code or "Discount",
        }
    contact = order.receipt_contact or ""
    if "@" in contact:
        data["email"] = contact
    elif contact.startswith("+"):
        data["phone"] = contact
    return data


class ShopifyPayments:
    """Payments through Shopify's own checkout: the link is a draft order's invoice URL, its id
    (`gid://shopify/DraftOrder/...`) the order's payment reference."""

    def __init__(self, client: ShopifyClient, db: Database, currency: str) -> None:
        self.client = client
        self._db = db
        self.currency = currency

    def _variant_ids(self, session: Session, skus: list[str]) -> dict[str, str]:
        rows = session.exec(
            select(CommerceVariant).where(
                CommerceVariant.platform == PLATFORM, col(CommerceVariant.variant_sku).in_(skus)
            )
        ).all()
        return {row.variant_sku: row.external_id for row in rows}

    async def _made_before(self, order: OrderView) -> PaymentLink | None:
        """The draft an earlier attempt made for this order (found by its tag), if any."""
        found = await self.client.query(
            "DraftOrdersTagged", DRAFT_ORDERS_TAGGED, {"query": f"tag:{order_tag(order.number)}"}
        )
        for node in (found.get("draftOrders") or {}).get("nodes") or []:
            if node.get("id") and node.get("invoiceUrl"):
                return PaymentLink(node["id"], node["invoiceUrl"])
        return None

    async def create_link(self, order: OrderView) -> PaymentLink:
        """The order's draft: the one made by an earlier attempt (found by its tag), else a new one.

        Raises:
            PaymentUnavailable: Shopify is down or refused the draft.
        """
        try:
            made = await self._made_before(order)
            if made is not None:
                return made
            skus = [line.variant_sku for line in order.lines]
            ids = await self._db.run(lambda s: self._variant_ids(s, skus))
            try:
                data = await self.client.query(
                    "DraftOrderCreate", DRAFT_ORDER_CREATE, {"input": draft_input(order, ids, self.currency)}
                )
            except ShopifyUnavailable:
                # No answer: the draft may have been made. Look once more before giving up; the
                # next try looks again first (Shopify's search may show a new draft a little later).
                made = await self._made_before(order)
                if made is None:
                    raise
                return made
        except ShopifyError as exc:
            raise PaymentUnavailable(str(exc)) from exc
        result = data.get("draftOrderCreate") or {}
        errors = result.get("userErrors") or []
        draft = result.get("draftOrder") or {}
        if errors or not draft.get("id") or not draft.get("invoiceUrl"):
            raise PaymentUnavailable("draftOrderCreate: " + "; ".join(str(e.get("message")) for e in errors))
        total = ((draft.get("totalPriceSet") or {}).get("shopMoney") or {}).get("amount")
        if total is not None and Decimal(str(total)) != Decimal(order.total_cents) / 100:
            # Shopify adds the taxes and its own rounding; the invoice is what the shopper pays.
            log.info("shopify draft total differs", extra={"order": order.number, "draft_total": str(total)})
        return PaymentLink(draft["id"], draft["invoiceUrl"])

    async def refund(
        self, order: OrderView, capture_ref: str, amount_cents: int | None = None, key: str | None = None
    ) -> None:
        """Shopify took the payment; its refund is made in the Shopify admin.

        Raises:
            PaymentUnavailable: always, so the cancel is logged for a person.
        """
        raise PaymentUnavailable("refund the order in the Shopify admin (Shopify took the payment)")

    async def close_link(self, reference: str) -> None:
        """Delete the draft of an order cancelled before it was paid, so its invoice takes no payment.

        Raises:
            PaymentUnavailable: Shopify is down or refused.
        """
        try:
            data = await self.client.query("DraftOrderDelete", DRAFT_ORDER_DELETE, {"input": {"id": reference}})
        except ShopifyError as exc:
            raise PaymentUnavailable(str(exc)) from exc
        errors = (data.get("draftOrderDelete") or {}).get("userErrors") or []
        if errors:
            raise PaymentUnavailable("draftOrderDelete: " + "; ".join(str(e.get("message")) for e in errors))

    async def close(self) -> None:
        await self.client.close()
