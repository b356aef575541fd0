"""Orders waiting for their payment link: the payment provider or the commerce platform (Shopify's
draft order, WooCommerce's pending order) was down, slow or throttling when the order was placed.
The order table is the durable record (no link yet, `link_attempts`, `link_retry_at`); the
scheduled job `payment-link-retry` tries each one again once its backoff is over, and the link
it makes goes to the shopper through the policy gate and the outbox, once (the idempotency key
`payment-link:{order number}:0:{customer}`). No link after PAYMENT_LINK_GIVE_UP_HOURS: a person's
ticket is opened and the shopper told, once.

Never two drafts for one order: one try of an order runs at a time across processes
(`claim_link` in `integrations/orders.py`), and each provider's `create_link` first finds what
an earlier try made (Shopify by the draft's tag, WooCommerce by the `chat_order` meta, Stripe and
PayPal by their idempotency keys), also after a create whose answer was lost."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from bot.delivery.policy import ORDER_UPDATE, Policy
from bot.delivery.proactive import Planned, queue
from bot.handoff.service import Handoffs, Trigger
from bot.i18n import EN, language_of, money, text_in
from bot.messages import Link, OutboundMessage
from bot.store.database import Database
from bot.store.models import Customer, Order, as_utc, utcnow
from integrations.orders import OrderView, StoreOrders, claim_link, view_of
from integrations.payments import Payments

log = logging.getLogger(__name__)
SOURCE = "payment-link"  # the dispatches' source: step 0 the link, step 1 the word that a person will help
RECENT = timedelta(days=7)  # an order older than this, never given a link, is left alone (from before 0012)
BATCH = 100  # orders looked at in one run
FAILURES_PER_RUN = 3  # a run stops after this many failed tries: the provider is down, the next run tries again
GIVE_UP_TRIGGER = Trigger("payment_link", "payment", 2)


@dataclass(frozen=True)
class Run:
    """What one run did: links made and sent, tries that failed, orders given to a person."""

    made: int = 0
    failed: int = 0
    gave_up: int = 0


class PaymentLinkRetries:
    """The scheduled retry of payment links (`run`, the job `payment-link-retry`)."""

    def __init__(
        self,
        db: Database,
        orders: StoreOrders,
        payments: Payments,
        policy: Policy,
        currency: str,
        give_up_after: timedelta,
        handoffs: Handoffs | None = None,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db, self.orders, self.payments, self.policy = db, orders, payments, policy
        self.currency = currency
        self.give_up_after = give_up_after
        self.handoffs = handoffs
        self.wake = wake

    def _due(self, session: Session, now: datetime) -> list[tuple[int, datetime]]:
        """Orders awaiting a link whose next try is due: (id, when placed), oldest first."""
        rows = session.exec(
            select(Order.id, Order.created_at)
            .where(
                Order.status == "pending_payment",
                col(Order.payment_ref).is_(None),
                col(Order.link_gave_up_at).is_(None),
                col(Order.created_at) >= now - RECENT,
                or_(col(Order.link_retry_at).is_(None), col(Order.link_retry_at) <= now),
                or_(col(Order.link_held_until).is_(None), col(Order.link_held_until) <= now),
            )
            .order_by(col(Order.id))
            .limit(BATCH)
        ).all()
        return [(order_id, as_utc(created)) for order_id, created in rows if order_id is not None]

    async def run(self) -> Run:
        """Try every order whose try is due; tell each shopper whose link is made, and call a
        person for each order without one after `give_up_after`."""
        now = utcnow()
        made = failed = gave_up = 0
        for order_id, placed in await self.db.run(lambda s: self._due(s, now)):
            if now - placed >= self.give_up_after:
                given, opened = await self.db.run(lambda s, i=order_id: self._give_up(s, i, utcnow()))
                gave_up += given
                if opened and self.handoffs is not None:
                    self.handoffs.metrics.handoff_opened()
                continue
            order = await self.db.run(lambda s, i=order_id: self._claim(s, i))
            if order is None:  # another process is trying it, or it has its link now
                continue
            after = await self.orders.attach_link(order, self.payments, claimed=True, on_attached=self._tell)
            if after.payment_url:
                made += 1
                log.info("payment link made on a retry", extra={"order": order.number})
            else:
                failed += 1
                if failed >= FAILURES_PER_RUN:
                    break
        if made or gave_up:
            self.wake()
        return Run(made, failed, gave_up)

    @staticmethod
    def _claim(session: Session, order_id: int) -> OrderView | None:
        if not claim_link(session, order_id, utcnow(), due_only=True):
            return None
        row = session.get(Order, order_id)
        return view_of(session, row) if row is not None else None

    def _language(self, session: Session, customer_id: str) -> str:
        customer = session.get(Customer, customer_id)
        return language_of(customer.language if customer is not None else EN)

    def _tell(self, session: Session, order: OrderView) -> None:
        """Queue the link for the shopper, in the transaction that keeps it on the order."""
        lang = self._language(session, order.customer_id)
        message = OutboundMessage(
            text=text_in(
                lang, "order.link_ready", number=order.number, total=money(order.total_cents, lang, self.currency)
            ),
            links=(Link(text_in(lang, "btn.pay_now"), order.payment_url or ""),),
        )
        counts = queue(
            session,
            self.policy,
            SOURCE,
            order.number,
            0,
            [Planned(order.customer_id, message)],
            ORDER_UPDATE,
            utcnow(),
        )
        log.info(
            "payment link queued for the shopper", extra={"order": order.number, "outcome": next(iter(counts), "")}
        )

    def _give_up(self, session: Session, order_id: int, now: datetime) -> tuple[int, bool]:
        """No link after `give_up_after`: a person's ticket and a word to the shopper, once (the
        order is marked given up in the same transaction, unless a try holds it). Returns
        (1 if given up now, whether a ticket was opened)."""
        table = Order.__table__
        taken = session.connection().execute(
            update(table)
            .where(
                table.c.id == order_id,
                table.c.status == "pending_payment",
                table.c.payment_ref.is_(None),
                table.c.link_gave_up_at.is_(None),
                or_(table.c.link_held_until.is_(None), table.c.link_held_until <= now),
            )
            .values(link_gave_up_at=now, link_retry_at=None)
        )
        row = session.get(Order, order_id) if taken.rowcount == 1 else None
        if row is None:
            return 0, False
        session.refresh(row)
        lang = self._language(session, row.customer_id)
        opened = False
        if self.handoffs is not None:
            details = {
                "payment_link": {
                    "order": row.number,
                    "total_cents": row.total_cents,
                    "tries": row.link_attempts,
                    "placed_at": as_utc(row.created_at).isoformat(),
                    "what_to_do": "make the payment link in the payment provider's or platform's admin and send it",
                }
            }
            _, opened = self.handoffs.open_ticket(session, row.customer_id, GIVE_UP_TRIGGER, lang, [], details=details)
        message = OutboundMessage(text=text_in(lang, "order.link_gave_up", number=row.number))
        queue(session, self.policy, SOURCE, row.number, 1, [Planned(row.customer_id, message)], ORDER_UPDATE, now)
        log.error(
            "payment link still not made: a person is called",
            extra={"order": row.number, "tries": row.link_attempts, "ticket_opened": opened},
        )
        return 1, opened
