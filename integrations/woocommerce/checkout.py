"""Checkout with WooCommerce taking the payment: each order placed in chat becomes a pending
WooCommerce order (its lines by product and variation id, the discount as a negative fee line,
shipping as a shipping line, the billing e-mail when the shopper gave one) whose `payment_url`
is the shopper's payment link. WooCommerce takes no idempotency key: the order carries our
number in its `chat_order` meta, and a retry first looks for a recent pending order with it.
Meets the payments interface."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from bot.store.database import Database
from bot.store.models import CommerceVariant
from integrations.orders import OrderView
from integrations.payments import PaymentLink, PaymentUnavailable
from integrations.woocommerce.client import WooCommerceClient, WooCommerceError, WooCommerceUnavailable
from integrations.woocommerce.mapping import PLATFORM

log = logging.getLogger(__name__)
ORDER_META = "chat_order"  # the WooCommerce order's meta_data key naming our order's number
REF_PREFIX = "wc-order-"  # our payment reference of a WooCommerce order: wc-order-{id}
LOOKBACK = timedelta(hours=1)  # how far back a retry looks for the order an earlier attempt made


def reference_of(order_id: Any) -> str:
    return f"{REF_PREFIX}{order_id}"


def _money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def chat_number(body: dict[str, Any]) -> str | None:
    """Our order number in a WooCommerce order's `meta_data`, if it has one."""
    for meta in body.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == ORDER_META:
            return str(meta.get("value"))
    return None


def order_input(order: OrderView, variants: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The `POST orders` body of an order; `variants` maps our SKU to (product id, variation id).

    Raises:
        PaymentUnavailable: a line's variant is not one of WooCommerce's.
    """
    missing = [line.variant_sku for line in order.lines if line.variant_sku not in variants]
    if missing:
        raise PaymentUnavailable(f"variants not in WooCommerce: {', '.join(missing)}")
    items = []
    for line in order.lines:
        product_id, variation_id = variants[line.variant_sku]
        item: dict[str, Any] = {"product_id": int(product_id), "quantity": line.quantity}
        if variation_id != product_id:
            item["variation_id"] = int(variation_id)
        items.append(item)
    data: dict[str, Any] = {
        "status": "pending",
        "set_paid": False,
        "line_items": items,
        "shipping_lines": [
            {"method_id": "flat_rate", "method_title": "Shipping", "total": _money(order.shipping_cents)}
        ],
        "customer_note": f"Order #{order.number} placed in chat. Ship to: {order.shipping_address}",
        "meta_data": [{"key": ORDER_META, "value": str(order.number)}],
    }
    if order.discount_cents:
        # Our discount codes are not WooCommerce coupons: the discount is a negative fee.
        name = f"Discount {order.discount_code}" if order.discount_code else "Discount"
        data["fee_lines"] = [{"name": name, "total": _money(-order.discount_cents), "tax_status": "none"}]
    contact = order.receipt_contact or ""
    if "@" in contact:
        data["billing"] = {"email": contact}
    return data


class WooCommercePayments:
    """Payments through WooCommerce's own checkout: the link is a pending order's `payment_url`,
    `wc-order-{id}` the order's payment reference."""

    def __init__(self, client: WooCommerceClient, db: Database, currency: str) -> None:
        self.client = client
        self._db = db
        self.currency = currency

    def _variants(self, session: Session, skus: list[str]) -> dict[str, tuple[str, str]]:
        rows = session.exec(
            select(CommerceVariant).where(
                CommerceVariant.platform == PLATFORM, col(CommerceVariant.variant_sku).in_(skus)
            )
        ).all()
        return {row.variant_sku: (row.product_external_id, row.external_id) for row in rows}

    async def _made_before(self, order: OrderView) -> dict[str, Any] | None:
        """The pending order an earlier attempt made for this one, if any."""
        placed = order.placed_at or datetime.now(UTC)
        after = (placed.astimezone(UTC) - LOOKBACK).strftime("%Y-%m-%dT%H:%M:%S")
        params = {"status": "pending", "after": after, "dates_are_gmt": "true"}
        async for page in self.client.pages("orders", params):
            for found in page:
                if chat_number(found) == str(order.number) and found.get("id") and found.get("payment_url"):
                    return found
        return None

    async def create_link(self, order: OrderView) -> PaymentLink:
        """The order's WooCommerce order: the one made by an earlier attempt, else a new one.

        Raises:
            PaymentUnavailable: WooCommerce is down or refused the order.
        """
        try:
            made = await self._made_before(order)
            if made is None:
                skus = [line.variant_sku for line in order.lines]
                ids = await self._db.run(lambda s: self._variants(s, skus))
                try:
                    made = await self.client.post("orders", order_input(order, ids))
                except WooCommerceUnavailable:
                    # No answer: the order may have been made. Look once more before giving up.
                    made = await self._made_before(order)
                    if made is None:
                        raise
        except WooCommerceError as exc:
            raise PaymentUnavailable(str(exc)) from exc
        if not isinstance(made, dict) or not made.get("id") or not made.get("payment_url"):
            raise PaymentUnavailable("POST orders: no id or payment_url in the answer")
        total = made.get("total")
        if total is not None and Decimal(str(total)) != Decimal(order.total_cents) / 100:
            # WooCommerce adds its taxes; its order is what the shopper pays.
            log.info("woocommerce order total differs", extra={"order": order.number, "wc_total": str(total)})
        return PaymentLink(reference_of(made["id"]), str(made["payment_url"]))

    async def refund(
        self, order: OrderView, capture_ref: str, amount_cents: int | None = None, key: str | None = None
    ) -> None:
        """WooCommerce's payment gateway took the payment; its refund is made in the WooCommerce admin.

        Raises:
            PaymentUnavailable: always, so the cancel is logged for a person.
        """
        raise PaymentUnavailable("refund the order in the WooCommerce admin (WooCommerce took the payment)")

    async def close_link(self, reference: str) -> None:
        """Cancel the pending order of an order cancelled before it was paid.

        Raises:
            PaymentUnavailable: WooCommerce is down or refused.
        """
        order_id = reference.removeprefix(REF_PREFIX)
        try:
            await self.client.request("PUT", f"orders/{order_id}", json={"status": "cancelled"})
        except WooCommerceError as exc:
            raise PaymentUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self.client.close()
