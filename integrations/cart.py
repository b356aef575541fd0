"""The shopper's cart: lines, quantities and totals, with stock respected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from bot.store.database import MISSING, Database
from bot.store.models import Cart, CartItem, Product, Variant, utcnow


class OutOfStock(Exception):
    """Fewer items are in stock than asked for."""

    def __init__(self, variant_sku: str, available: int) -> None:
        super().__init__(f"{variant_sku}: only {available} in stock")
        self.variant_sku = variant_sku
        self.available = available


@dataclass(frozen=True)
class CartLine:
    variant_sku: str
    product_sku: str
    name: str
    size: str
    colour: str
    quantity: int
    unit_price_cents: int  # the price now: what the order charges
    seen_price_cents: int | None = None  # the price when added (or last told): differs when it changed

    @property
    def price_changed(self) -> bool:
        return self.seen_price_cents is not None and self.seen_price_cents != self.unit_price_cents

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True)
class CartView:
    lines: tuple[CartLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


class Carts(Protocol):
    async def get(self, customer_id: str) -> CartView: ...
    async def add(self, customer_id: str, variant_sku: str, quantity: int = 1) -> CartView: ...
    async def set_quantity(self, customer_id: str, variant_sku: str, quantity: int) -> CartView: ...
    async def apply_code(self, customer_id: str, code: str) -> int | None: ...
    async def accept_prices(self, customer_id: str) -> None: ...


def open_cart(session: Session, customer_id: str, create: bool = True) -> Cart | None:
    cart = session.exec(
        select(Cart).where(Cart.customer_id == customer_id, Cart.status == "open").order_by(Cart.id)
    ).first()
    if cart is None and create:
        cart = Cart(customer_id=customer_id)
        session.add(cart)
        session.flush()
    return cart


def cart_view(session: Session, cart: Cart | None) -> CartView:
    if cart is None:
        return CartView(())
    rows = session.exec(
        select(CartItem, Variant, Product)
        .join(Variant, Variant.sku == CartItem.variant_sku)
        .join(Product, Product.sku == Variant.product_sku)
        .where(CartItem.cart_id == cart.id)
        .order_by(CartItem.id)
    ).all()
    return CartView(
        tuple(
            CartLine(v.sku, p.sku, p.name, v.size, v.colour, item.quantity, p.price_cents, item.seen_price_cents)
            for item, v, p in rows
        )
    )


_CART, _ITEM = Cart.__table__, CartItem.__table__
_VARIANT, _PRODUCT = Variant.__table__, Product.__table__
# The name a turn reads the shopper's open cart ahead under (see `Engine`'s `read_ahead`).
READ_AHEAD = "cart"
# What `cart_view(open_cart(...))` reads, in one prepared statement: every "view cart" runs it.
_OPEN_CART_LINES = (
    sa_select(
        _VARIANT.c.sku,
        _PRODUCT.c.sku,
        _PRODUCT.c.name,
        _VARIANT.c.size,
        _VARIANT.c.colour,
        _ITEM.c.quantity,
        _PRODUCT.c.price_cents,
        _ITEM.c.seen_price_cents,
    )
    .select_from(
        _ITEM.join(_VARIANT, _VARIANT.c.sku == _ITEM.c.variant_sku).join(
            _PRODUCT, _PRODUCT.c.sku == _VARIANT.c.product_sku
        )
    )
    .where(
        _ITEM.c.cart_id
        == sa_select(func.min(_CART.c.id))
        .where(_CART.c.customer_id == bindparam("customer"), _CART.c.status == "open")
        .scalar_subquery()
    )
    .order_by(_ITEM.c.id)
)


class StoreCarts:
    """Carts kept in our own store; every change is one transaction. `codes` are the discount
    codes a shopper may apply (code -> percent off)."""

    def __init__(self, db: Database, codes: dict[str, int] | None = None) -> None:
        self._db = db
        self._codes = {code.upper(): percent for code, percent in (codes or {}).items()}

    async def apply_code(self, customer_id: str, code: str) -> int | None:
        """Put a discount code on the open cart (one code per cart: it replaces another); the
        checkout applies it. Returns its percent off, or None for a code we do not know."""
        percent = self._codes.get(code.strip().upper())
        if percent is None:
            return None

        def apply(session: Session) -> int:
            cart = open_cart(session, customer_id)
            cart.discount_code, cart.discount_percent = code.strip().upper(), percent
            return percent

        return await self._db.run(apply)

    @staticmethod
    def read_open(session: Session, customer_id: str) -> CartView:
        """The open cart, read in the caller's transaction: a turn reads it ahead (READ_AHEAD)."""
        rows = session.connection().execute(_OPEN_CART_LINES, {"customer": customer_id})
        return CartView(tuple(CartLine(*row) for row in rows))

    async def get(self, customer_id: str) -> CartView:
        found = self._db.ahead((READ_AHEAD, customer_id))
        if found is not MISSING:
            return found
        return await self._db.run(lambda session: self.read_open(session, customer_id))

    async def add(self, customer_id: str, variant_sku: str, quantity: int = 1) -> CartView:
        """Add to the open cart.

        Raises:
            OutOfStock: the cart would hold more than is in stock.
            KeyError: no such variant.
        """

        def add(session: Session) -> CartView:
            variant = session.get(Variant, variant_sku, with_for_update=not self._db.is_sqlite)
            if variant is None:
                raise KeyError(variant_sku)
            cart = open_cart(session, customer_id)
            item = session.exec(
                select(CartItem).where(CartItem.cart_id == cart.id, CartItem.variant_sku == variant_sku)
            ).first()
            wanted = quantity + (item.quantity if item else 0)
            if wanted > variant.stock:
                raise OutOfStock(variant_sku, variant.stock - (item.quantity if item else 0))
            price = session.get(Product, variant.product_sku)
            seen = price.price_cents if price is not None else None  # the price the shopper sees now
            if item:
                item.quantity, item.seen_price_cents = wanted, seen
            else:
                session.add(
                    CartItem(cart_id=cart.id, variant_sku=variant_sku, quantity=quantity, seen_price_cents=seen)
                )
            cart.updated_at = utcnow()
            session.flush()
            return cart_view(session, cart)

        return await self._db.run(add)

    async def accept_prices(self, customer_id: str) -> None:
        """The shopper was told the open cart's prices now: a price changed since they added an
        item is the one they have seen (told once)."""

        def accept(session: Session) -> None:
            cart = open_cart(session, customer_id, create=False)
            if cart is None:
                return
            for item, product in session.exec(
                select(CartItem, Product)
                .join(Variant, Variant.sku == CartItem.variant_sku)
                .join(Product, Product.sku == Variant.product_sku)
                .where(CartItem.cart_id == cart.id)
            ).all():
                if item.seen_price_cents is not None and item.seen_price_cents != product.price_cents:
                    item.seen_price_cents = product.price_cents
                    session.add(item)
            session.flush()

        await self._db.run(accept)

    async def set_quantity(self, customer_id: str, variant_sku: str, quantity: int) -> CartView:
        """Set a line's quantity; 0 removes the line.

        Raises:
            OutOfStock: more than is in stock.
        """

        def change(session: Session) -> CartView:
            cart = open_cart(session, customer_id, create=False)
            if cart is None:
                return CartView(())
            item = session.exec(
                select(CartItem).where(CartItem.cart_id == cart.id, CartItem.variant_sku == variant_sku)
            ).first()
            if item is not None:
                if quantity <= 0:
                    session.delete(item)
                else:
                    variant = session.get(Variant, variant_sku)
                    if variant is not None and quantity > variant.stock:
                        raise OutOfStock(variant_sku, variant.stock)
                    item.quantity = quantity
                cart.updated_at = utcnow()
                session.flush()
            return cart_view(session, cart)

        return await self._db.run(change)
