"""Abandoned-cart reminders (at most two per cart, the second may carry a discount the checkout
honours) and back-in-stock notices to the restock waitlist (once per entry)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import exists, func
from sqlmodel import Session, col, select

from bot.conversation.turn import command
from bot.delivery.clicks import ClickLinks
from bot.delivery.policy import CART_REMINDER, REQUESTED, Policy
from bot.delivery.proactive import Planned, dispatch_key, queue
from bot.i18n import ZH, language_of, text_in
from bot.messages import Choice, Link, OutboundMessage, Template
from bot.store.database import among
from bot.store.models import Cart, CartItem, Customer, Dispatch, Product, Variant, WaitlistEntry, as_utc

# A cart older than its reminder time by more than this is left alone: nobody wants a first
# reminder for a cart from last month (and the scan stays an index range).
STALE_AFTER = timedelta(days=7)
SCAN_LIMIT = 1000
DISCOUNT_STEP = 2  # the reminder that carries the discount code, if there is one


@dataclass(frozen=True)
class ReminderSettings:
    delays: list[timedelta]
    discount: tuple[str, int] | None
    cart_template_sid: str | None = None
    restock_template_sid: str | None = None
    links: ClickLinks | None = None  # each reminder carries its tracked link (an offer's impression, its click)


def due_carts(session: Session, step: int, delay: timedelta, now: datetime, limit: int = SCAN_LIMIT) -> list[int]:
    """Open, non-empty carts untouched for `delay` with no reminder `step` yet (and, for later
    steps, the earlier one sent). An index range on (status, updated_at)."""
    cutoff = now - delay
    query = (
        select(Cart.id)
        .where(
            Cart.status == "open",
            Cart.updated_at <= cutoff,
            Cart.updated_at > cutoff - STALE_AFTER,
            exists().where(col(CartItem.cart_id) == Cart.id),
            ~exists().where(
                col(Dispatch.source) == "cart_reminder", col(Dispatch.source_id) == Cart.id, col(Dispatch.step) == step
            ),
        )
        .order_by(col(Cart.updated_at))
        .limit(limit)
    )
    if step > 1:
        query = query.where(
            exists().where(
                col(Dispatch.source) == "cart_reminder",
                col(Dispatch.source_id) == Cart.id,
                col(Dispatch.step) == step - 1,
                col(Dispatch.status) == "queued",
            )
        )
    return [cart_id for cart_id in session.exec(query).all() if cart_id is not None]  # primary keys: never None


def remind_carts(session: Session, policy: Policy, settings: ReminderSettings, now: datetime) -> dict[str, int]:
    """Queue the reminders that are due now. Returns counts by outcome."""
    counts: dict[str, int] = {}
    for step, delay in enumerate(settings.delays[:2], start=1):
        ids = due_carts(session, step, delay, now)
        if not ids:
            continue
        carts = session.exec(select(Cart).where(among(session, Cart.id, ids))).all()
        lines = session.exec(
            select(CartItem.cart_id, CartItem.quantity, Product.name, Product.name_zh)
            .join(Variant, col(Variant.sku) == CartItem.variant_sku)
            .join(Product, col(Product.sku) == Variant.product_sku)
            .where(among(session, CartItem.cart_id, ids))
            .order_by(col(CartItem.id))
        ).all()
        languages = dict(
            session.exec(
                select(Customer.id, Customer.language).where(
                    among(session, Customer.id, {c.customer_id for c in carts})
                )
            ).all()
        )
        discount = settings.discount if step == DISCOUNT_STEP else None
        for cart in carts:
            assert cart.id is not None  # a stored cart
            language = languages.get(cart.customer_id, "en")
            items = _items([line for line in lines if line[0] == cart.id], language)
            message = _tracked(
                _cart_message(language, step, items, discount),
                language,
                settings.links,
                dispatch_key("cart_reminder", cart.id, step, cart.customer_id),
            )
            template = None
            if settings.cart_template_sid:
                template = OutboundMessage(
                    text=message.text,
                    template=Template(settings.cart_template_sid, {"1": items, "2": discount[0] if discount else ""}),
                )

            def offered(customer_id: str, cart: Cart = cart) -> None:
                if discount:  # the checkout applies it; the reminder says so
                    cart.discount_code, cart.discount_percent = discount

            for outcome, n in queue(
                session,
                policy,
                "cart_reminder",
                cart.id,
                step,
                [Planned(cart.customer_id, message, template)],
                CART_REMINDER,
                now,
                on_queued=offered,
            ).items():
                counts[outcome] = counts.get(outcome, 0) + n
    return counts


def _tracked(message: OutboundMessage, language: str, links: ClickLinks | None, key: str) -> OutboundMessage:
    """The reminder with its tracked link to the shop, when the shop makes them."""
    if links is None:
        return message
    return replace(message, links=(*message.links, Link(text_in(language, "reminder.open_shop"), links.url(key))))


def _items(lines, language: str) -> str:
    names = [f"{q} × {(zh if language_of(language) == ZH and zh else name)}" for _, q, name, zh in lines]
    return ", ".join(names[:3]) + (" …" if len(names) > 3 else "")


def _cart_message(language: str, step: int, items: str, discount: tuple[str, int] | None) -> OutboundMessage:
    if step == DISCOUNT_STEP and discount:
        body = text_in(language, "reminder.cart2", items=items, code=discount[0], percent=discount[1])
    else:
        body = text_in(language, "reminder.cart1", items=items)
    return OutboundMessage(
        text=body,
        choices=(
            Choice(text_in(language, "reminder.checkout"), command("checkout")),
            Choice(text_in(language, "btn.view_cart"), command("view_cart")),
        ),
    )


def notify_restocked(session: Session, policy: Policy, settings: ReminderSettings, now: datetime) -> dict[str, int]:
    """Tell everyone waiting for a variant that is in stock again, once; close their entries."""
    rows = session.exec(
        select(WaitlistEntry, Variant, Product)
        .join(Variant, col(Variant.sku) == WaitlistEntry.variant_sku)
        .join(Product, col(Product.sku) == Variant.product_sku)
        .where(col(WaitlistEntry.notified_at).is_(None), Variant.stock > 0)
        .order_by(col(WaitlistEntry.id))
        .limit(SCAN_LIMIT)
    ).all()
    counts: dict[str, int] = {}
    languages = (
        dict(
            session.exec(
                select(Customer.id, Customer.language).where(
                    among(session, Customer.id, {e.customer_id for e, _, _ in rows})
                )
            ).all()
        )
        if rows
        else {}
    )
    for entry, variant, product in rows:
        assert entry.id is not None  # a stored entry
        language = languages.get(entry.customer_id, "en")
        name = product.name_zh if language_of(language) == ZH and product.name_zh else product.name
        message = OutboundMessage(
            text=text_in(language, "reminder.restock", name=name, size=variant.size, colour=variant.colour),
            choices=(
                Choice(
                    text_in(language, "btn.add_to_cart"),
                    command("add_to_cart", product=product.sku, size=variant.size, colour=variant.colour),
                ),
            ),
        )
        message = _tracked(message, language, settings.links, dispatch_key("restock", entry.id, 0, entry.customer_id))
        template = None
        if settings.restock_template_sid:
            template = OutboundMessage(
                text=message.text,
                template=Template(settings.restock_template_sid, {"1": name, "2": f"{variant.size}, {variant.colour}"}),
            )
        for outcome, n in queue(
            session, policy, "restock", entry.id, 0, [Planned(entry.customer_id, message, template)], REQUESTED, now
        ).items():
            counts[outcome] = counts.get(outcome, 0) + n
        entry.notified_at = now
    return counts


def recovery(session: Session) -> dict[str, float | int]:
    """Cart recovery: reminded carts, and how many were checked out after a reminder."""
    first = (
        select(Dispatch.source_id, func.min(Dispatch.created_at).label("at"))
        .where(Dispatch.source == "cart_reminder", Dispatch.status == "queued")
        .group_by(col(Dispatch.source_id))
        .subquery()
    )
    rows = session.exec(select(first.c.at, Cart.checked_out_at).join(Cart, col(Cart.id) == first.c.source_id)).all()
    reminded = len(rows)
    recovered = sum(1 for at, done in rows if done is not None and as_utc(done) >= as_utc(at))
    return {
        "carts_reminded": reminded,
        "carts_recovered": recovered,
        "recovery_rate": round(recovered / reminded, 4) if reminded else 0.0,
    }
