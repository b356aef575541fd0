"""Paid chat orders placed in Magento. The bot's own payments (PAYMENTS: the sandbox, Stripe,
PayPal) take the money: Magento's REST API offers no payment link for a shopper to open, so
once an order is paid it is placed through Magento's own checkout for guests (`POST guest-carts`,
its items, `shipping-information`, `PUT guest-carts/{id}/order` with an offline method such as
`checkmo`), which reserves the stock and totals it as a website order is.

Magento takes no idempotency key: the guest cart made for an order is recorded in the store
before anything is put in it, and a retry first asks that cart: once it is no longer active, the
order placed from it is found by its `quote_id` instead of being placed again. The record of
paid orders not yet in Magento is the order table itself; the poll retries them until placed."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from bot.store.database import Database
from bot.store.models import ORDER_NUMBER_OFFSET, CommerceVariant, Order, StateRecord, utcnow
from integrations.magento.client import Filter, MagentoClient, MagentoError, path_part
from integrations.orders import OrderView, view_of

log = logging.getLogger(__name__)
PLATFORM = "magento"
RECENT = timedelta(days=30)  # a paid order older than this, never placed, is left to a person


def cart_key(number: int) -> str:
    return f"magento-cart/{number}"


def address_of(order: OrderView, country: str, shop_host: str) -> dict[str, Any]:
    """Magento's address for the order's one-line address: the shopper gave it as text, so it is
    the street as given, the postcode found in it, the city its last part."""
    text = " ".join(order.shipping_address.split()) or "-"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    postcode = re.search(r"\b([A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|\d{4,6}(?:-\d{4})?)\b", text.upper())
    contact = order.receipt_contact or ""
    city = (
        re.sub(r"\b" + re.escape(postcode.group(1)) + r"\b", "", parts[-1], flags=re.I).strip()
        if postcode
        else parts[-1]
    )
    return {
        "firstname": "Chat",
        "lastname": f"order {order.number}",
        "street": [text[:255]],
        "city": (city or parts[-1])[:100],
        "postcode": postcode.group(1) if postcode else "-",
        "country_id": country,
        "telephone": contact if contact.startswith("+") else "-",
        "email": contact if "@" in contact else f"chat-order-{order.number}@{shop_host}",
    }


class MagentoCheckout:
    """Places each paid chat order in Magento once."""

    def __init__(self, client: MagentoClient, db: Database, payment_method: str, country: str, shop_url: str) -> None:
        self.client, self.db = client, db
        self.payment_method, self.country = payment_method, country
        self.shop_host = urlsplit(shop_url).hostname or "shop.invalid"

    def _waiting(self, session: Session) -> list[tuple[OrderView, dict[str, str], dict[str, Any]]]:
        orders = session.exec(
            select(Order).where(
                Order.status == "paid",
                col(Order.external_order_id).is_(None),
                col(Order.created_at) >= utcnow() - RECENT,
            )
        ).all()
        out = []
        for order in orders:
            view = view_of(session, order)
            skus = [line.variant_sku for line in view.lines]
            ours = {
                row.variant_sku: row.external_id
                for row in session.exec(
                    select(CommerceVariant).where(
                        CommerceVariant.platform == PLATFORM, col(CommerceVariant.variant_sku).in_(skus)
                    )
                ).all()
            }
            if len(ours) != len(set(skus)):
                continue  # not all of Magento's (an order from before the shop connected Magento)
            state = session.get(StateRecord, cart_key(order.number))
            out.append((view, ours, json.loads(state.data) if state is not None else {}))
        return out

    async def push_paid(self) -> int:
        """Place every paid order not yet in Magento; one that fails waits for the next poll.
        Returns how many were placed."""
        placed = 0
        for view, skus, state in await self.db.run(self._waiting):
            try:
                await self.place(view, skus, state)
                placed += 1
            except MagentoError as exc:
                log.warning("magento order not placed yet", extra={"order": view.number, "reason": str(exc)[:200]})
        return placed

    async def _remember(self, number: int, state: dict[str, Any]) -> None:
        def write(session: Session) -> None:
            row = session.get(StateRecord, cart_key(number)) or StateRecord(key=cart_key(number), etag="cart", data="")
            row.data, row.updated_at = json.dumps(state), utcnow()
            session.add(row)

        await self.db.run(write)

    async def _record(self, number: int, entity_id: Any) -> None:
        def write(session: Session) -> None:
            order = session.get(Order, number - ORDER_NUMBER_OFFSET)
            if order is not None and order.number == number:
                order.external_order_id = str(entity_id)
                session.add(order)

        await self.db.run(write)

    async def place(self, order: OrderView, skus: dict[str, str], state: dict[str, Any]) -> str:
        """The Magento order (`entity_id`) of a paid chat order: found, or placed now.

        Raises:
            MagentoError: Magento refused or is unavailable; safe to call again.
        """
        cart = state.get("cart")
        if not cart:
            cart = str(await self.client.call("POST", "guest-carts"))
            await self._remember(order.number, {"cart": cart})
        base = f"guest-carts/{path_part(cart)}"
        info = await self.client.get(base)
        if isinstance(info, dict) and info.get("is_active") is False:
            found = None
            async for items, _ in self.client.search("orders", [Filter("quote_id", str(info.get("id")))], page_size=1):
                found = next(iter(items), None)
            if found is not None:
                await self._record(order.number, found["entity_id"])
                return str(found["entity_id"])
        present = {str(i.get("sku")): i for i in await self.client.get(f"{base}/items") or [] if isinstance(i, dict)}
        for line in order.lines:
            sku = skus[line.variant_sku]
            if sku not in present:
                item = {"cartItem": {"sku": sku, "qty": line.quantity, "quote_id": cart}}
                await self.client.call("POST", f"{base}/items", json=item)
        address = address_of(order, self.country, self.shop_host)
        methods = await self.client.call("POST", f"{base}/estimate-shipping-methods", json={"address": address})
        method = next((m for m in methods or [] if isinstance(m, dict) and m.get("available", True)), None)
        if method is None:
            raise MagentoError(f"no shipping method for order #{order.number}'s address")
        shipping = {
            "addressInformation": {
                "shipping_address": address,
                "billing_address": address,
                "shipping_carrier_code": method["carrier_code"],
                "shipping_method_code": method["method_code"],
            }
        }
        await self.client.call("POST", f"{base}/shipping-information", json=shipping)
        entity_id = await self.client.call(
            "PUT", f"{base}/order", json={"paymentMethod": {"method": self.payment_method}}
        )
        await self._record(order.number, entity_id)
        note = {
            "statusHistory": {
                "comment": f"Order #{order.number} placed and paid in chat.",
                "is_customer_notified": 0,
                "is_visible_on_front": 0,
            }
        }
        try:
            await self.client.call("POST", f"orders/{path_part(str(entity_id))}/comments", json=note)
        except MagentoError as exc:  # the order is placed; the note is only for the shop's staff
            log.info("magento order note not added", extra={"order": order.number, "reason": str(exc)[:200]})
        log.info("magento order placed", extra={"order": order.number, "entity_id": str(entity_id)})
        return str(entity_id)
