"""Orders and shipping: placing an order from the cart, status and tracking, cancels, returns."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlmodel import Session, select

from bot.store.database import Database
from bot.store.models import (
    ORDER_NUMBER_OFFSET,
    Customer,
    Order,
    OrderItem,
    ReturnRequest,
    Variant,
    as_utc,
    utcnow,
)
from integrations.cart import OutOfStock, cart_view, open_cart

RETURN_WINDOW = timedelta(days=30)
CANCELLABLE = ("pending_payment", "paid")


class OrderError(Exception):
    """An order cannot be placed, cancelled or returned; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OrderLine:
    id: int
    name: str
    size: str
    colour: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderView:
    number: int
    status: str
    total_cents: int
    shipping_address: str
    payment_url: str | None
    discount_code: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    created_at: str
    lines: tuple[OrderLine, ...]
    returnable: bool


class Orders(Protocol):
    async def place(self, customer_id: str, address: str, payment_link_for) -> OrderView: ...
    async def find(self, customer_id: str, number: int) -> OrderView | None: ...
    async def recent(self, customer_id: str, limit: int = 3) -> list[OrderView]: ...
    async def cancel(self, customer_id: str, number: int) -> OrderView: ...
    async def start_return(self, customer_id: str, number: int, line_id: int, reason: str) -> str: ...


def _view(session: Session, order: Order) -> OrderView:
    items = session.exec(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)).all()
    returnable = order.status == "delivered" and (
        order.delivered_at is None or utcnow() - as_utc(order.delivered_at) <= RETURN_WINDOW
    )
    return OrderView(
        number=order.number,
        status=order.status,
        total_cents=order.total_cents,
        shipping_address=order.shipping_address,
        discount_code=order.discount_code,
        payment_url=order.payment_url,
        carrier=order.carrier,
        tracking_number=order.tracking_number,
        tracking_url=order.tracking_url,
        created_at=order.created_at.strftime("%b %d"),
        lines=tuple(OrderLine(i.id, i.name, i.size, i.colour, i.quantity, i.unit_price_cents) for i in items),
        returnable=returnable,
    )


@dataclass(frozen=True)
class Payment:
    """What became of a payment: "paid" now, "not_payable" (the order is not awaiting payment:
    cancelled, or paid already) or "unknown" (no order has this payment reference)."""

    outcome: str
    customer_id: str | None = None
    order: OrderView | None = None


def _locked(session: Session, model, key, lock: bool):
    # A row lock on PostgreSQL, so a cancel and a payment of one order cannot both win.
    return session.get(model, key, with_for_update=lock)


def _own(session: Session, customer_id: str, number: int, lock: bool = False) -> Order | None:
    order = _locked(session, Order, number - ORDER_NUMBER_OFFSET, lock) if number > ORDER_NUMBER_OFFSET else None
    # Someone else's order number reads exactly like an unknown one.
    return order if order is not None and order.customer_id == customer_id else None


class StoreOrders:
    """Orders kept in our own store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def place(self, customer_id: str, address: str, payment_link_for) -> OrderView:
        """Turn the open cart into an order, take the stock and attach a payment link.

        `payment_link_for(number, amount_cents)` returns a `PaymentLink`.

        Raises:
            OrderError: the cart is empty.
            OutOfStock: an item sold out since it was added.
        """

        def place(session: Session) -> OrderView:
            cart = open_cart(session, customer_id, create=False)
            view = cart_view(session, cart)
            if cart is None or not view.lines:
                raise OrderError("empty_cart")
            discount = view.total_cents * cart.discount_percent // 100 if cart.discount_code else 0
            order = Order(customer_id=customer_id, shipping_address=address, total_cents=view.total_cents - discount,
                          discount_code=cart.discount_code if discount else None, discount_cents=discount)
            session.add(order)
            session.flush()
            for line in view.lines:
                variant = session.get(Variant, line.variant_sku, with_for_update=not self._db.is_sqlite)
                if variant is None or variant.stock < line.quantity:
                    raise OutOfStock(line.variant_sku, variant.stock if variant else 0)
                variant.stock -= line.quantity
                session.add(
                    OrderItem(
                        order_id=order.id, variant_sku=line.variant_sku, name=line.name, size=line.size,
                        colour=line.colour, quantity=line.quantity, unit_price_cents=line.unit_price_cents,
                    )
                )
            link = payment_link_for(order.number, order.total_cents)
            order.payment_ref, order.payment_url = link.reference, link.url
            cart.status = "checked_out"
            cart.updated_at = cart.checked_out_at = utcnow()
            customer = session.get(Customer, customer_id)
            if customer is not None:
                customer.shipping_address = address
            session.flush()
            return _view(session, order)

        return await self._db.run(place)

    async def find(self, customer_id: str, number: int) -> OrderView | None:
        return await self._db.run(lambda s: (o := _own(s, customer_id, number)) and _view(s, o))

    async def recent(self, customer_id: str, limit: int = 3) -> list[OrderView]:
        def load(session: Session) -> list[OrderView]:
            orders = session.exec(
                select(Order).where(Order.customer_id == customer_id).order_by(Order.id.desc()).limit(limit)
            ).all()
            return [_view(session, o) for o in orders]

        return await self._db.run(load)

    async def cancel(self, customer_id: str, number: int) -> OrderView:
        """Cancel an order that has not shipped and put its items back in stock.

        Raises:
            OrderError: unknown order ("not_found") or already shipped ("not_cancellable").
        """

        def cancel(session: Session) -> OrderView:
            order = _own(session, customer_id, number, lock=not self._db.is_sqlite)
            if order is None:
                raise OrderError("not_found")
            if order.status not in CANCELLABLE:
                raise OrderError("not_cancellable")
            for item in session.exec(select(OrderItem).where(OrderItem.order_id == order.id)).all():
                variant = session.get(Variant, item.variant_sku)
                if variant is not None:
                    variant.stock += item.quantity
            order.status = "cancelled"
            session.flush()
            return _view(session, order)

        return await self._db.run(cancel)

    async def start_return(self, customer_id: str, number: int, line_id: int, reason: str) -> str:
        """Open a return for one delivered item and give its reference.

        Raises:
            OrderError: unknown order or item ("not_found"), or not returnable ("not_returnable").
        """

        def start(session: Session) -> str:
            order = _own(session, customer_id, number)
            if order is None:
                raise OrderError("not_found")
            if not _view(session, order).returnable:
                raise OrderError("not_returnable")
            item = session.get(OrderItem, line_id)
            if item is None or item.order_id != order.id:
                raise OrderError("not_found")
            reference = f"R-{order.number}-{secrets.token_hex(3).upper()}"
            session.add(ReturnRequest(reference=reference, order_id=order.id, order_item_id=item.id, reason=reason))
            return reference

        return await self._db.run(start)

    async def mark_paid(self, reference: str,
                        on_paid: Callable[[Session, str, OrderView], None] | None = None) -> Payment:
        """Record a payment for an order awaiting one. `on_paid(session, customer_id, order)`
        runs in the same transaction (the shopper's notice is queued with the status change, so
        a crash keeps both or neither)."""

        def paid(session: Session) -> Payment:
            order_id = session.exec(select(Order.id).where(Order.payment_ref == reference)).first()
            if order_id is None:
                return Payment("unknown")
            order = _locked(session, Order, order_id, not self._db.is_sqlite)
            if order.status != "pending_payment":
                return Payment("not_payable", order.customer_id, _view(session, order))
            order.status = "paid"
            session.flush()
            view = _view(session, order)
            if on_paid is not None:
                on_paid(session, order.customer_id, view)
            return Payment("paid", order.customer_id, view)

        return await self._db.run(paid)
