"""Orders and shipping: placing an order from the cart, status and tracking, cancels, returns."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import Session, select

from bot.delivery.estimates import DeliveryEstimate
from bot.store.database import Database
from bot.store.models import (
    ORDER_NUMBER_OFFSET,
    Cart,
    Customer,
    Order,
    OrderItem,
    Product,
    ReturnRequest,
    Variant,
    as_utc,
    utcnow,
)
from integrations.cart import CartView, OutOfStock, cart_view, open_cart
from integrations.payments import PaymentUnavailable
from integrations.shipping import ReturnLabel, Shipping

if TYPE_CHECKING:
    from integrations.payments import Payments

log = logging.getLogger(__name__)

RETURN_WINDOW = timedelta(days=30)
CANCELLABLE = ("pending_payment", "payment_review", "paid")
PAID = ("payment_review", "paid")  # money was taken: a cancel refunds it
RISKY = ("elevated", "highest")  # Stripe Radar's risk levels a person checks before the order is confirmed
# A payment link's try holds its order this long (no other process tries it meanwhile); the try
# is cut off at half of it, so the hold never runs out under a try still going.
LINK_LEASE = timedelta(minutes=2)
LINK_RETRY_BASE = timedelta(seconds=30)  # the first try again; each next one waits twice as long ...
LINK_RETRY_MAX = timedelta(minutes=15)  # ... up to this


class OrderError(Exception):
    """An order cannot be placed, cancelled or returned; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckoutRules:
    """What an order costs beyond its goods, and when it arrives: a shipping fee that is waived
    from `free_shipping_from_cents` (after the discount; None = never), and the delivery estimate."""

    shipping_fee_cents: int = 599
    free_shipping_from_cents: int | None = 5000
    estimate: DeliveryEstimate = DeliveryEstimate(1, 5, ZoneInfo("America/New_York"))

    def shipping(self, goods_cents: int) -> int:
        free = self.free_shipping_from_cents is not None and goods_cents >= self.free_shipping_from_cents
        return 0 if free else self.shipping_fee_cents


@dataclass(frozen=True)
class Quote:
    """What the open cart would cost as an order placed now."""

    cart: CartView
    subtotal_cents: int
    discount_code: str | None
    discount_percent: int
    discount_cents: int
    shipping_cents: int
    total_cents: int
    arrives_by: date


def quote_cart(cart: Cart | None, view: CartView, rules: CheckoutRules, now: datetime) -> Quote:
    subtotal = view.total_cents
    code = cart.discount_code if cart is not None and cart.discount_code and cart.discount_percent else None
    discount = subtotal * cart.discount_percent // 100 if code else 0
    shipping = rules.shipping(subtotal - discount) if view.lines else 0
    return Quote(
        view,
        subtotal,
        code if discount else None,
        cart.discount_percent if discount else 0,
        discount,
        shipping,
        subtotal - discount + shipping,
        rules.estimate.arrives_by(now),
    )


@dataclass(frozen=True)
class OrderLine:
    id: int
    name: str
    size: str
    colour: str
    quantity: int
    unit_price_cents: int
    variant_sku: str = ""
    name_zh: str | None = None  # the product's Traditional Chinese name, when the catalog has one

    def name_in(self, zh: bool) -> str:
        """The line's product name in the shopper's language (the name kept on the order otherwise)."""
        return self.name_zh if zh and self.name_zh else self.name


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
    discount_cents: int = 0
    shipping_cents: int = 0
    estimated_delivery: date | None = None
    receipt_contact: str | None = None
    placed_at: datetime | None = None  # when it was placed (UTC)
    customer_id: str = ""
    payment_risk_level: str | None = None


@dataclass(frozen=True)
class RefundView:
    """Money on its way back to the shopper: a cancelled order, or a return opened for an item."""

    number: int  # the order's number
    kind: str  # "cancelled" | "return"
    opened: str  # when the order was cancelled or the return opened, "Dec 01"
    reference: str | None = None  # the return's reference
    item: str | None = None  # the returned item's name


class Orders(Protocol):
    async def quote(self, customer_id: str) -> Quote: ...
    async def place(
        self,
        customer_id: str,
        address: str,
        payments: Payments,
        receipt_contact: str | None = None,
        arrives_by: date | None = None,
    ) -> OrderView: ...
    async def payment_link(self, customer_id: str, number: int, payments: Payments) -> OrderView | None: ...
    async def find(self, customer_id: str, number: int) -> OrderView | None: ...
    async def recent(self, customer_id: str, limit: int = 3) -> list[OrderView]: ...
    async def cancel(self, customer_id: str, number: int, payments: Payments | None = None) -> OrderView: ...
    async def start_return(self, customer_id: str, number: int, line_id: int, reason: str) -> str: ...
    async def label_return(self, customer_id: str, reference: str, shipping: Shipping) -> ReturnLabel | None: ...

    async def refunds(self, customer_id: str, limit: int = 3) -> list[RefundView]: ...


def _view(session: Session, order: Order) -> OrderView:
    items = session.exec(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)).all()
    skus = {i.variant_sku for i in items}
    names_zh = dict(
        session.exec(
            select(Variant.sku, Product.name_zh)
            .join(Product, Product.sku == Variant.product_sku)
            .where(Variant.sku.in_(skus))  # type: ignore[attr-defined]
        ).all()
        if skus
        else ()
    )
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
        lines=tuple(
            OrderLine(
                i.id,
                i.name,
                i.size,
                i.colour,
                i.quantity,
                i.unit_price_cents,
                i.variant_sku,
                names_zh.get(i.variant_sku),
            )
            for i in items
        ),
        returnable=returnable,
        discount_cents=order.discount_cents,
        shipping_cents=order.shipping_cents,
        estimated_delivery=order.estimated_delivery,
        receipt_contact=order.receipt_contact,
        placed_at=as_utc(order.created_at),
        customer_id=order.customer_id,
        payment_risk_level=order.payment_risk_level,
    )


@dataclass(frozen=True)
class PaymentRisk:
    """A payment provider's fraud screening of a payment (Stripe Radar's outcome on its charge)."""

    level: str | None  # normal | elevated | highest | not_assessed | unknown
    score: int | None = None  # 0-100


@dataclass(frozen=True)
class Payment:
    """What became of a payment: "paid" now, "held" (paid, with a risk a person checks before
    the order is confirmed), "not_payable" (the order is not awaiting payment: cancelled, or paid
    already), "wrong_amount" (the provider took another amount than the order's total: not marked
    paid) or "unknown" (no order has this payment reference)."""

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

    def __init__(
        self, db: Database, rules: CheckoutRules | None = None, retry_base: timedelta = LINK_RETRY_BASE
    ) -> None:
        self._db = db
        self.rules = rules or CheckoutRules()
        self.retry_base = retry_base  # the wait before a payment link is tried again, doubled each time

    async def quote(self, customer_id: str) -> Quote:
        """The open cart's subtotal, discount, shipping, total and delivery date, were it ordered now."""

        def read(session: Session) -> Quote:
            cart = open_cart(session, customer_id, create=False)
            return quote_cart(cart, cart_view(session, cart), self.rules, utcnow())

        return await self._db.run(read)

    async def place(
        self,
        customer_id: str,
        address: str,
        payments: Payments,
        receipt_contact: str | None = None,
        arrives_by: date | None = None,
    ) -> OrderView:
        """Turn the open cart into an order (its discount code, the shipping fee and the delivery
        estimate, or the carrier's date `arrives_by`, included), take the stock and attach a
        payment link from `payments`. A receipt contact is kept on the order and remembered for
        the shopper's next checkout.

        The order is placed first and the link asked for after, outside the transaction (a
        provider may be slow): when the provider does not answer, the order waits with its stock
        held and no `payment_url`; `payment_link` asks again later.

        Raises:
            OrderError: the cart is empty.
            OutOfStock: an item sold out since it was added.
        """

        def place(session: Session) -> OrderView:
            cart = open_cart(session, customer_id, create=False)
            view = cart_view(session, cart)
            if cart is None or not view.lines:
                raise OrderError("empty_cart")
            quote = quote_cart(cart, view, self.rules, utcnow())
            order = Order(
                customer_id=customer_id,
                shipping_address=address,
                total_cents=quote.total_cents,
                discount_code=quote.discount_code,
                discount_cents=quote.discount_cents,
                shipping_cents=quote.shipping_cents,
                estimated_delivery=arrives_by or quote.arrives_by,
                receipt_contact=receipt_contact,
                link_held_until=utcnow() + LINK_LEASE,  # its first try of the payment link is this turn's
            )
            session.add(order)
            session.flush()
            for line in view.lines:
                variant = session.get(Variant, line.variant_sku, with_for_update=not self._db.is_sqlite)
                if variant is None or variant.stock < line.quantity:
                    raise OutOfStock(line.variant_sku, variant.stock if variant else 0)
                variant.stock -= line.quantity
                session.add(
                    OrderItem(
                        order_id=order.id,
                        variant_sku=line.variant_sku,
                        name=line.name,
                        size=line.size,
                        colour=line.colour,
                        quantity=line.quantity,
                        unit_price_cents=line.unit_price_cents,
                    )
                )
            cart.status = "checked_out"
            cart.updated_at = cart.checked_out_at = utcnow()
            customer = session.get(Customer, customer_id)
            if customer is not None:
                customer.shipping_address = address
                if receipt_contact:
                    customer.receipt_contact = receipt_contact
            session.flush()
            return _view(session, order)

        return await self.attach_link(await self._db.run(place), payments, claimed=True)

    async def attach_link(
        self,
        order: OrderView,
        payments: Payments,
        claimed: bool = False,
        on_attached: Callable[[Session, OrderView], None] | None = None,
        due_only: bool = False,
    ) -> OrderView:
        """Ask `payments` for the order's link and keep it on the order; `on_attached(session,
        order)` runs in the transaction that keeps it (the scheduled retry queues the shopper's
        message there). One try of an order runs at a time, across processes: this one takes the
        order's try first (`claim_link`, with `due_only` once its backoff is over) unless the caller
        has (`claimed`), and gives the order back as it is when a try is under way elsewhere. A
        try that fails is recorded, and the next scheduled one is due after a backoff (`link_failed`).

        A link made for an order cancelled meanwhile is not kept: it is closed at the provider."""
        order_id = order.number - ORDER_NUMBER_OFFSET
        if not claimed and not await self._db.run(lambda s: claim_link(s, order_id, utcnow(), due_only)):
            return order
        try:
            async with asyncio.timeout(LINK_LEASE.total_seconds() / 2):
                link = await payments.create_link(order)
        except (PaymentUnavailable, TimeoutError) as exc:
            log.warning(
                "payment link not made: the order waits for its next try",
                extra={"order": order.number, "reason": str(exc)[:200] or type(exc).__name__},
            )
            return await self._db.run(lambda s: link_failed(s, order_id, utcnow(), self.retry_base)) or order

        def attach(session: Session) -> tuple[OrderView | None, bool]:
            row = _locked(session, Order, order_id, not self._db.is_sqlite)
            if row is None:
                return None, False
            if row.status != "pending_payment" and row.payment_ref is None:
                return _view(session, row), True  # cancelled while the link was made
            if row.payment_ref is None:  # a retry that raced another keeps the first link
                row.payment_ref, row.payment_url = link.reference, link.url
                row.link_retry_at = row.link_held_until = None
                session.flush()
                view = _view(session, row)
                if on_attached is not None:
                    on_attached(session, view)
                return view, False
            return _view(session, row), False

        view, close = await self._db.run(attach)
        if close:
            await settle_cancelled(payments, order, "pending_payment", link.reference, None)
        return view or order

    async def payment_link(self, customer_id: str, number: int, payments: Payments) -> OrderView | None:
        """The order, with a payment link asked for again if it awaits payment without one (the
        provider was down when it was placed) and no try is under way. None for an unknown order."""
        order = await self.find(customer_id, number)
        if order is None or order.status != "pending_payment" or order.payment_url:
            return order
        return await self.attach_link(order, payments)

    async def find(self, customer_id: str, number: int) -> OrderView | None:
        return await self._db.run(lambda s: (o := _own(s, customer_id, number)) and _view(s, o))

    async def recent(self, customer_id: str, limit: int = 3) -> list[OrderView]:
        def load(session: Session) -> list[OrderView]:
            orders = session.exec(
                select(Order).where(Order.customer_id == customer_id).order_by(Order.id.desc()).limit(limit)
            ).all()
            return [_view(session, o) for o in orders]

        return await self._db.run(load)

    async def cancel(self, customer_id: str, number: int, payments: Payments | None = None) -> OrderView:
        """Cancel an order that has not shipped and put its items back in stock. With `payments`,
        a paid order is refunded and an unpaid one's payment link closed, after the cancel.

        Raises:
            OrderError: unknown order ("not_found") or already shipped ("not_cancellable").
        """

        def cancel(session: Session) -> tuple[OrderView, str, str | None, str | None]:
            order = _own(session, customer_id, number, lock=not self._db.is_sqlite)
            if order is None:
                raise OrderError("not_found")
            if order.status not in CANCELLABLE:
                raise OrderError("not_cancellable")
            was = order.status
            cancel_order(session, order)
            return _view(session, order), was, order.payment_ref, order.payment_capture_ref

        view, was, reference, capture_ref = await self._db.run(cancel)
        if payments is not None:
            await settle_cancelled(payments, view, was, reference, capture_ref)
        return view

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

    async def label_return(self, customer_id: str, reference: str, shipping: Shipping) -> ReturnLabel | None:
        """Buy the prepaid label of the shopper's return `reference`, from the order's shipping
        address, and keep it (and its parcel's tracker) with the return. None: no label (no
        carrier service, or not this shopper's return).

        Raises:
            ShippingUnavailable: the carrier service is down or refused.
        """

        def address(session: Session) -> str | None:
            row = session.exec(select(ReturnRequest).where(ReturnRequest.reference == reference)).first()
            order = session.get(Order, row.order_id) if row is not None else None
            return order.shipping_address if order is not None and order.customer_id == customer_id else None

        where = await self._db.run(address)
        label = await shipping.return_label(reference, where) if where is not None else None
        if label is None:
            return None

        def keep(session: Session) -> None:
            row = session.exec(select(ReturnRequest).where(ReturnRequest.reference == reference)).one()
            row.label_url, row.tracker_ref = label.label_url, label.tracker_ref
            if row.status == "open":
                row.status = "label_sent"

        await self._db.run(keep)
        return label

    async def refunds(self, customer_id: str, limit: int = 3) -> list[RefundView]:
        """The shopper's latest returns and cancelled orders, newest first."""

        def load(session: Session) -> list[RefundView]:
            returns = session.exec(
                select(ReturnRequest, Order, OrderItem)
                .where(ReturnRequest.order_id == Order.id, ReturnRequest.order_item_id == OrderItem.id)
                .where(Order.customer_id == customer_id)
                .order_by(ReturnRequest.id.desc())
                .limit(limit)
            ).all()
            cancelled = session.exec(
                select(Order)
                .where(Order.customer_id == customer_id, Order.status == "cancelled")
                .order_by(Order.id.desc())
                .limit(limit)
            ).all()
            found = [
                (r.created_at, RefundView(o.number, "return", _day(r.created_at), r.reference, i.name))
                for r, o, i in returns
            ] + [(o.created_at, RefundView(o.number, "cancelled", _day(o.created_at))) for o in cancelled]
            found.sort(key=lambda pair: as_utc(pair[0]), reverse=True)
            return [view for _, view in found[:limit]]

        return await self._db.run(load)

    async def mark_paid(
        self, reference: str, on_paid: Callable[[Session, str, OrderView], None] | None = None
    ) -> Payment:
        """Record a payment for an order awaiting one. `on_paid(session, customer_id, order)`
        runs in the same transaction (the shopper's notice is queued with the status change, so
        a crash keeps both or neither)."""

        return await self._db.run(lambda s: mark_paid_in(s, reference, on_paid, lock=not self._db.is_sqlite))


def _day(moment: datetime) -> str:
    return moment.strftime("%b %d")


def order_by_payment_ref(session: Session, reference: str, lock: bool = False) -> Order | None:
    """The order whose payment reference (the provider's id of its checkout) this is."""
    order_id = session.exec(select(Order.id).where(Order.payment_ref == reference)).first()
    return None if order_id is None else _locked(session, Order, order_id, lock)


def view_of(session: Session, order: Order) -> OrderView:
    return _view(session, order)


def claim_link(
    session: Session, order_id: int, now: datetime, due_only: bool = False, lease: timedelta = LINK_LEASE
) -> bool:
    """Take a try of an order's payment link: true for one caller only, in any process, while the
    order awaits payment without a link and no other try holds it; with `due_only` (the
    scheduled retry), only once its backoff is over too. The try holds the order until
    `now + lease` (a compare-and-set on `link_held_until`: SQLite's writes are one at a time,
    and PostgreSQL's second UPDATE waits for the first and reads its result)."""
    table = Order.__table__
    conditions = [
        table.c.id == order_id,
        table.c.status == "pending_payment",
        table.c.payment_ref.is_(None),
        or_(table.c.link_held_until.is_(None), table.c.link_held_until <= now),
    ]
    if due_only:
        conditions.append(or_(table.c.link_retry_at.is_(None), table.c.link_retry_at <= now))
    taken = session.connection().execute(update(table).where(*conditions).values(link_held_until=now + lease))
    return taken.rowcount == 1


def link_retry_delay(attempts: int, base: timedelta) -> timedelta:
    """How long after its `attempts`-th failed try an order's payment link is tried again."""
    return min(base * 2 ** min(max(attempts - 1, 0), 16), LINK_RETRY_MAX)


def link_failed(session: Session, order_id: int, now: datetime, base: timedelta) -> OrderView | None:
    """Record a failed try of an order's payment link; the next one is due after the backoff."""
    row = session.get(Order, order_id)
    if row is None:
        return None
    if row.payment_ref is None:
        row.link_attempts += 1
        row.link_retry_at = now + link_retry_delay(row.link_attempts, base)
        row.link_held_until = None
        session.flush()
    return _view(session, row)


def mark_paid_in(
    session: Session,
    reference: str,
    on_paid: Callable[[Session, str, OrderView], None] | None = None,
    lock: bool = False,
    amount_cents: int | None = None,
    capture_ref: str | None = None,
    risk: PaymentRisk | None = None,
) -> Payment:
    """`StoreOrders.mark_paid` inside a caller's transaction (a webhook records its event in
    the same one). With `amount_cents` (what the provider took), an order whose total differs is
    not marked paid ("wrong_amount"); `capture_ref` is kept for refunds. With a `risk` of
    elevated or highest, the order is held for a person ("payment_review", "held") and `on_paid`
    waits for `approve_reviewed`."""
    order = order_by_payment_ref(session, reference, lock)
    if order is None:
        return Payment("unknown")
    if order.status != "pending_payment":
        return Payment("not_payable", order.customer_id, _view(session, order))
    if amount_cents is not None and amount_cents != order.total_cents:
        return Payment("wrong_amount", order.customer_id, _view(session, order))
    order.payment_capture_ref = capture_ref or order.payment_capture_ref
    if risk is not None:
        order.payment_risk_level, order.payment_risk_score = risk.level, risk.score
    if risk is not None and risk.level in RISKY:
        order.status = "payment_review"
        session.flush()
        return Payment("held", order.customer_id, _view(session, order))
    order.status = "paid"
    session.flush()
    view = _view(session, order)
    if on_paid is not None:
        on_paid(session, order.customer_id, view)
    return Payment("paid", order.customer_id, view)


def approve_reviewed(
    session: Session, number: int, on_paid: Callable[[Session, str, OrderView], None] | None = None, lock: bool = False
) -> Payment:
    """A person checked a held payment and confirms the order: paid, and `on_paid` runs as for
    any payment. "not_payable" for an order not under review, "unknown" for no such order."""
    order = _locked(session, Order, number - ORDER_NUMBER_OFFSET, lock) if number > ORDER_NUMBER_OFFSET else None
    if order is None:
        return Payment("unknown")
    if order.status != "payment_review":
        return Payment("not_payable", order.customer_id, _view(session, order))
    order.status = "paid"
    session.flush()
    view = _view(session, order)
    if on_paid is not None:
        on_paid(session, order.customer_id, view)
    return Payment("paid", order.customer_id, view)


async def settle_cancelled(
    payments: Payments, order: OrderView, was: str, reference: str | None, capture_ref: str | None
) -> None:
    """Give back the money of a cancelled order that was paid, or close the link of one that was
    not. The provider's idempotency keys make a repeat harmless; a provider that is down is
    logged for a person, as the order is cancelled either way."""
    try:
        if was in PAID and capture_ref:
            await payments.refund(order, capture_ref)
            log.info("refunded a cancelled order", extra={"order": order.number})
        elif was == "pending_payment" and reference:
            await payments.close_link(reference)
    except PaymentUnavailable as exc:
        log.error(
            "payment provider unavailable after a cancel: a person must finish it",
            extra={"order": order.number, "was": was, "reason": str(exc)},
        )


def cancel_order(session: Session, order: Order) -> None:
    """Cancel it and put its items back in stock (the caller checked it may be cancelled)."""
    for item in session.exec(select(OrderItem).where(OrderItem.order_id == order.id)).all():
        variant = session.get(Variant, item.variant_sku)
        if variant is not None:
            variant.stock += item.quantity
    order.status = "cancelled"
    session.flush()


def checkout_rules(settings) -> CheckoutRules:
    """The shipping fee and delivery estimate of these `Settings`."""
    return CheckoutRules(
        settings.shipping_fee_cents,
        settings.free_shipping_from_cents,
        DeliveryEstimate(settings.processing_days, settings.transit_days, ZoneInfo(settings.default_timezone)),
    )
