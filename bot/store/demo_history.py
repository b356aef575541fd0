"""Demo history for the dashboard: two months of made-up conversations, recommendations, orders,
abandoned-cart reminders, handoffs and satisfaction answers, written once when the demo store is seeded so that
`/admin/analytics` is not empty on a fresh demo. Everything is generated from a fixed seed
(the same history relative to the day of seeding), its events carry `demo=True`, and its shoppers
are `demo-history-NN` with no channel address, so no message can ever be sent to them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.store.models import (
    AnalyticsEvent,
    Cart,
    CsatAnswer,
    Customer,
    Dispatch,
    HandoffTicket,
    Order,
    OrderItem,
    Product,
    Variant,
)

DAYS = 60  # two of the page's default 30-day periods, so its tiles have a change to show
SHOPPERS = 90
SEED = 17
CHANNELS = ("web", "whatsapp", "messenger", "sms")
INTENTS = ("product_search", "check_stock", "order_status", "faq", "recommend", "greet", "view_cart")
PREFIX = "demo-history-"


def write(session: Session, now: datetime) -> int:
    """Write the history ending at `now`; returns the number of conversations made up."""
    rng = random.Random(SEED)
    products = {p.sku: p for p in session.exec(select(Product)).all()}
    variants = [v for v in session.exec(select(Variant).order_by(col(Variant.sku))).all() if v.stock > 0]
    if not variants:
        return 0
    shoppers = []
    for n in range(1, SHOPPERS + 1):
        channel = CHANNELS[n % len(CHANNELS)]
        language = "zh-TW" if n % 3 == 0 else "en"
        customer = Customer(
            id=f"{PREFIX}{n:02d}",
            display_name=f"Demo history {n:02d}",
            language=language,
            last_channel=channel,
            marketing_consent=False,
            created_at=now - timedelta(days=DAYS + 1),
        )
        session.add(customer)
        shoppers.append(customer)
    session.flush()
    start = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    made = 0
    for day in range(DAYS):
        for _ in range(rng.randint(5, 11) + day // 10):  # a little busier as the weeks go by
            at = start + timedelta(days=day, hours=rng.randint(8, 21), minutes=rng.randint(0, 59))
            if at >= now:
                continue
            _conversation(session, rng, rng.choice(shoppers), at, variants, products)
            made += 1
    return made


def _conversation(
    session: Session,
    rng: random.Random,
    shopper: Customer,
    at: datetime,
    variants: list[Variant],
    products: dict[str, Product],
) -> None:
    channel, language = shopper.last_channel or "web", shopper.language
    slow = 2.5 if channel in ("whatsapp", "sms") else 1.0  # a provider's answer takes longer than the web's

    def event(kind: str, when: datetime, **values) -> AnalyticsEvent:
        return AnalyticsEvent(
            kind=kind, customer_id=shopper.id, channel=channel, language=language, received_at=when, demo=True, **values
        )

    turns = rng.randint(1, 4)
    handed_off = rng.random() < 0.08
    fallbacks = rng.random() < 0.12
    added: list[Variant] = []
    when = at
    for n in range(turns):
        outcome = "understood"
        if fallbacks and n < 2:
            outcome = "fallback"
        if handed_off and n == turns - 1:
            outcome = "handed_off"
        intent = None if outcome == "fallback" else "human" if outcome == "handed_off" else rng.choice(INTENTS)
        wait = timedelta(seconds=round(rng.uniform(0.3, 1.8) * slow, 2))
        session.add(
            event("turn", when, intent=intent, outcome=outcome, handoff=outcome == "handed_off", replied_at=when + wait)
        )
        if intent in ("recommend", "product_search") and rng.random() < 0.7:
            shown = rng.sample(variants, k=min(4, len(variants)))
            session.add_all([event("rec_shown", when, subject=v.product_sku) for v in shown])
            if rng.random() < 0.35:
                picked = shown[0]
                session.add(event("rec_clicked", when + timedelta(minutes=1), subject=picked.product_sku))
                if rng.random() < 0.6:
                    session.add(event("cart_add", when + timedelta(minutes=2), subject=picked.product_sku))
                    session.add(event("rec_added", when + timedelta(minutes=2), subject=picked.product_sku))
                    added.append(picked)
        elif intent == "check_stock" and rng.random() < 0.4:
            chosen = rng.choice(variants)
            session.add(event("cart_add", when + timedelta(minutes=1), subject=chosen.product_sku))
            added.append(chosen)
        when += timedelta(minutes=rng.randint(1, 6))
    if added and rng.random() < 0.55:
        extra = [rng.choice(variants)] if rng.random() < 0.6 else []
        _order(session, shopper, when + timedelta(hours=rng.randint(0, 5)), added + extra, products)
    elif added:  # left in the cart: reminded an hour later, and a third come back for it; the others
        # are "abandoned", a status nothing scans, so no real reminder goes to a made-up cart
        reminded = when + timedelta(hours=1)
        back = rng.random() < 0.35
        cart = Cart(
            customer_id=shopper.id,
            status="checked_out" if back else "abandoned",
            updated_at=when,
            checked_out_at=reminded + timedelta(hours=rng.randint(1, 12)) if back else None,
        )
        session.add(cart)
        session.flush()
        assert cart.id is not None  # the flush gave it its id
        session.add(
            Dispatch(
                key=f"demo-cart:{cart.id}",
                source="cart_reminder",
                source_id=cart.id,
                step=1,
                customer_id=shopper.id,
                channel=channel,
                created_at=reminded,
            )
        )
        if back:
            _order(session, shopper, cart.checked_out_at or reminded, added, products)
    if handed_off:
        opened = when
        ticket = HandoffTicket(
            customer_id=shopper.id,
            status="resolved",
            language=language,
            trigger="asked",
            agent_name="Demo agent",
            created_at=opened,
            assigned_at=opened + timedelta(minutes=rng.randint(1, 4)),
            resolved_at=opened + timedelta(minutes=rng.randint(6, 25)),
        )
        session.add(ticket)
        session.flush()
        assert ticket.id is not None and ticket.resolved_at is not None  # just set
        if rng.random() < 0.7:
            score = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]
            session.add(
                CsatAnswer(
                    ticket_id=ticket.id,
                    customer_id=shopper.id,
                    score=score,
                    created_at=ticket.resolved_at + timedelta(minutes=1),
                )
            )


def _order(
    session: Session, shopper: Customer, at: datetime, lines: list[Variant], products: dict[str, Product]
) -> None:
    order = Order(customer_id=shopper.id, status="delivered", shipping_address="Demo", created_at=at)
    session.add(order)
    session.flush()
    assert order.id is not None  # the flush gave it its id
    total = 0
    for variant in lines:
        product = products[variant.product_sku]
        session.add(
            OrderItem(
                order_id=order.id,
                variant_sku=variant.sku,
                name=product.name,
                size=variant.size,
                colour=variant.colour,
                quantity=1,
                unit_price_cents=product.price_cents,
            )
        )
        total += product.price_cents
    order.total_cents = total
