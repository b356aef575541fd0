"""What a shopper is sent when their order is paid: the notice in the chat and, where they gave
an e-mail address for the receipt, the order's confirmation by e-mail (on the outbox's e-mail
lane), both queued in the transaction that marks the order paid."""

from __future__ import annotations

from sqlmodel import Session

from bot.delivery.mail import MAIL_LANE, is_email
from bot.delivery.outbox import queue_to_customer
from bot.i18n import EN, ZH, colour_in, date_text, language_of, money, size_in, text_in
from bot.messages import OutboundMessage, ProductCard
from bot.store.models import Customer
from integrations.orders import OrderView


def confirmation_key(number: int) -> str:
    """The idempotency key of an order's confirmation e-mail (its Message-ID is derived from it)."""
    return f"order-mail:{number}"


def confirmation_mail(order: OrderView, language: str, currency: str) -> OutboundMessage:
    """The confirmation e-mail: a subject, a short text, and the lines with their amounts, the
    discount, shipping and total as rows (cards), money as the shopper's locale writes it."""
    rows = [
        ProductCard(
            text_in(
                language,
                "mail.line",
                quantity=line.quantity,
                name=line.name_in(language_of(language) == ZH),
                size=size_in(language, line.size),
                colour=colour_in(language, line.colour),
            ),
            money(line.unit_price_cents * line.quantity, language, currency),
        )
        for line in order.lines
    ]
    if order.discount_cents:
        rows.append(
            ProductCard(
                text_in(language, "mail.discount", code=order.discount_code or ""),
                "−" + money(order.discount_cents, language, currency),
            )
        )
    rows.append(ProductCard(text_in(language, "mail.shipping"), money(order.shipping_cents, language, currency)))
    rows.append(ProductCard(text_in(language, "mail.total"), money(order.total_cents, language, currency)))
    arrives = date_text(language, order.estimated_delivery) if order.estimated_delivery else "-"
    return OutboundMessage(
        text=text_in(
            language, "mail.confirmation.body", number=order.number, date=arrives, address=order.shipping_address
        ),
        cards=tuple(rows),
        kind="post_purchase",
        language=language,
        subject=text_in(language, "mail.confirmation.subject", number=order.number),
    )


class OrderConfirmation:
    """`on_paid(session, customer_id, order)` for `mark_paid`: queues the chat notice, and the
    e-mail when `mail` is on and the order's receipt contact is an e-mail address; each once per
    order (by its idempotency key)."""

    def __init__(self, currency: str, mail: bool) -> None:
        self.currency = currency
        self.mail = mail

    def __call__(self, session: Session, customer_id: str, order: OrderView) -> None:
        customer = session.get(Customer, customer_id)
        language = language_of(customer.language if customer is not None else EN)
        queue_to_customer(
            session,
            customer_id,
            f"paid:{order.number}",
            OutboundMessage(text=text_in(language, "pay.notice", number=order.number), kind="post_purchase"),
        )
        if self.mail and is_email(order.receipt_contact):
            queue_to_customer(
                session,
                customer_id,
                confirmation_key(order.number),
                confirmation_mail(order, language, self.currency),
                channel=MAIL_LANE,
                address=order.receipt_contact,
            )
