"""Stripe's webhook (`POST /webhooks/stripe`) and the pages its Checkout returns the shopper to:
each verified event is recorded and acted on in one transaction, so a retry, a duplicate or an
event out of order is processed once and never moves an order backwards. A completed payment's
Radar risk is read from Stripe first: elevated or highest holds the order for a person. The steps
PayPal's webhook shares (recording an event, settling a payment, telling of a decline) are here too."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.delivery.outbox import queue_to_customer
from bot.handoff.service import Handoffs, Trigger
from bot.i18n import text_in
from bot.messages import OutboundMessage
from bot.store.models import ORDER_NUMBER_OFFSET, Order, ProviderEvent
from integrations.orders import (
    OrderView,
    PaymentRisk,
    cancel_order,
    mark_paid_in,
    order_by_payment_ref,
    settle_cancelled,
)
from integrations.payments import PaymentUnavailable
from integrations.stripe_payments import StripePayments
from integrations.webhook_auth import WebhookRefused
from service.http import json_error, read_body, refused
from service.keys import DB, OUTBOX, PAYMENTS, SERVICES
from service.pay import PAGE, _language

log = logging.getLogger(__name__)
STRIPE_BODY_BYTES = 256 * 1024  # Stripe's events are far smaller
PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
REVIEW_TRIGGER = Trigger("payment_risk", "payment", 2)  # a held payment goes before most questions


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/stripe", stripe_webhook)
    app.router.add_get("/payments/done", returned_page)
    app.router.add_get("/payments/cancelled", returned_page)


@dataclass(frozen=True)
class Handled:
    """What an event did: `outcome` for the log, `queued` when a message to the shopper waits."""

    outcome: str
    queued: bool = False
    order: int | None = None
    refund: tuple[OrderView, str] | None = None  # money taken for a cancelled order: give it back
    handoff: bool = False  # a ticket was opened for a person


@dataclass(frozen=True)
class Context:
    """What acting on an event needs besides the event: the shop's currency, what a payment
    queues for the shopper, the handoffs (a held payment opens one) and Radar's risk of the
    payment, read from Stripe before the transaction."""

    currency: str
    on_paid: Callable[[Session, str, OrderView], None]
    handoffs: Handoffs | None = None
    risk: PaymentRisk | None = None


async def stripe_webhook(request: web.Request) -> web.Response:
    """Verify Stripe's signature on the raw body (403 and nothing stored when it fails; 400 for
    a signed body that is not an event), then record and act on the event; 200 for anything
    verified, so Stripe retries only what we could not store."""
    payments = request.app[PAYMENTS]
    if not isinstance(payments, StripePayments):
        raise web.HTTPNotFound(text="Stripe is not this shop's payment provider.")
    raw = await read_body(request, STRIPE_BODY_BYTES)
    try:
        event = payments.verified_event(raw, request.headers.get("Stripe-Signature", ""))
    except WebhookRefused as exc:
        return refused("Stripe", exc)
    except ValueError as exc:
        log.warning("stripe webhook unreadable", extra={"reason": str(exc)[:200]})
        return json_error(400, f"signed, but not a Stripe event: {exc}")
    services = request.app[SERVICES]
    risk = None
    intent = event["data"]["object"].get("payment_intent")
    if (
        event["type"] in PAID_EVENTS
        and isinstance(intent, str)
        and not await request.app[DB].run(lambda s: _recorded(s, event["id"]))
    ):
        try:
            risk = await payments.risk(intent)
        except PaymentUnavailable as exc:  # nothing stored: Stripe sends the event again later
            log.warning("stripe risk unavailable; event left for Stripe's retry", extra={"reason": str(exc)})
            return json_error(503, "payment risk unavailable, retry later")
    context = Context(payments.currency, services.on_paid, services.handoffs, risk)
    try:
        handled = await request.app[DB].run(lambda s: handle_event(s, event, context))
    except IntegrityError:  # the same event, delivered twice at once: the other one has it
        handled = Handled("duplicate")
    log.info(
        "stripe event",
        extra={"event": event["id"], "type": event["type"], "outcome": handled.outcome, "order": handled.order},
    )
    if handled.handoff:
        services.handoffs.metrics.handoff_opened()
    if handled.queued:
        request.app[OUTBOX].notify()
    if handled.refund is not None:
        order, intent = handled.refund
        await settle_cancelled(payments, order, "paid", None, intent)
    return web.json_response({"received": True})


def _recorded(session: Session, event_id: str, provider: str = "stripe") -> bool:
    return (
        session.exec(
            select(ProviderEvent.id).where(ProviderEvent.provider == provider, ProviderEvent.event_id == event_id)
        ).first()
        is not None
    )


def record_event(session: Session, provider: str, event_id: str, event_type: str) -> bool:
    """Keep a provider's event by its id, in the caller's transaction: False when it was kept before
    (a retry or a duplicate, to do nothing with). Two at once: the unique key refuses the second."""
    if _recorded(session, event_id, provider):
        return False
    session.add(ProviderEvent(provider=provider, event_id=event_id, type=event_type[:100]))
    session.flush()
    return True


def handle_event(session: Session, event: dict[str, Any], context: Context) -> Handled:
    """Record the event, then act on it, in the caller's transaction. A recorded event does nothing."""
    if not record_event(session, "stripe", event["id"], event["type"]):
        return Handled("duplicate")
    obj: dict[str, Any] = event["data"]["object"]
    action = ACTIONS.get(event["type"])
    return action(session, event, obj, context) if action else Handled("ignored")


def _lock(session: Session) -> bool:
    return session.get_bind().dialect.name != "sqlite"


def settle_payment(
    session: Session, provider: str, reference: str, amount_cents: int, capture_ref: str | None, context: Context
) -> Handled:
    """The provider took `amount_cents` (-1: not in the shop's currency) for the checkout
    `reference`: the order is marked paid and the shopper's notice queued together if that is its
    total; another amount is left for a person to look at; money for an order cancelled meanwhile
    goes back; a payment Radar rates elevated or highest holds the order for a person (see `held`)."""
    payment = mark_paid_in(
        session,
        reference,
        context.on_paid,
        lock=_lock(session),
        amount_cents=amount_cents,
        capture_ref=capture_ref,
        risk=context.risk,
    )
    number = payment.order.number if payment.order else None
    if payment.outcome == "held" and payment.order is not None:
        return held(session, payment.order, context)
    if payment.outcome == "wrong_amount":
        log.error(
            "the provider took another amount than the order's total: not marked paid; a person must check it",
            extra={
                "provider": provider,
                "order": number,
                "amount": amount_cents,
                "total": payment.order.total_cents if payment.order else None,
            },
        )
    elif payment.outcome == "not_payable" and payment.order and payment.order.status == "cancelled":
        # Paid on a checkout that was still open when the order was cancelled: refund it.
        log.warning("payment for a cancelled order: refunding it", extra={"provider": provider, "order": number})
        if capture_ref:
            return Handled("refund_cancelled", order=number, refund=(payment.order, capture_ref))
    return Handled(payment.outcome, payment.outcome == "paid", number)


def tell_failed(session: Session, order: Order, key: str) -> Handled:
    """A payment was declined: the shopper hears so, once per `key`, while the order still awaits payment."""
    if order.status != "pending_payment":
        return Handled("not_pending", order=order.number)
    lang = _language(session, order.customer_id)
    queued = queue_to_customer(
        session,
        order.customer_id,
        key,
        OutboundMessage(text=text_in(lang, "pay.failed", number=order.number), kind="post_purchase"),
    )
    return Handled("told", queued is not None, order.number)


def session_completed(session: Session, event: dict[str, Any], obj: dict[str, Any], context: Context) -> Handled:
    """Paid: settled if Stripe took the order's total in the shop's currency."""
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        return Handled("not_paid_yet")  # a delayed method: checkout.session.async_payment_succeeded follows
    amount = obj.get("amount_total")
    if not isinstance(amount, int) or str(obj.get("currency", "")).lower() != context.currency.lower():
        amount = -1  # never equal to a total
    intent = obj.get("payment_intent")
    return settle_payment(
        session, "stripe", str(obj.get("id", "")), amount, intent if isinstance(intent, str) else None, context
    )


def held(session: Session, order: OrderView, context: Context) -> Handled:
    """A payment a person must check: a handoff ticket whose summary names the order and Radar's
    verdict, and a neutral word to the shopper (nothing about fraud)."""
    lang = _language(session, order.customer_id)
    opened = False
    if context.handoffs is not None:
        risk = context.risk or PaymentRisk(None)
        details = {
            "payment_review": {
                "order": order.number,
                "total_cents": order.total_cents,
                "risk_level": risk.level,
                "risk_score": risk.score,
                "confirm": f"python app.py order approve {order.number}",
            }
        }
        _, opened = context.handoffs.open_ticket(session, order.customer_id, REVIEW_TRIGGER, lang, [], details=details)
    log.warning(
        "stripe payment held for a person: radar risk",
        extra={"order": order.number, "risk_level": context.risk.level if context.risk else None},
    )
    queue_to_customer(
        session,
        order.customer_id,
        f"payment-review:{order.number}",
        OutboundMessage(text=text_in(lang, "pay.review", number=order.number), kind="post_purchase"),
    )
    return Handled("held", True, order.number, handoff=opened)


def session_expired(session: Session, event: dict[str, Any], obj: dict[str, Any], context: Context) -> Handled:
    """Never paid in time: an order still awaiting this payment is cancelled and its stock freed."""
    order = order_by_payment_ref(session, str(obj.get("id", "")), lock=_lock(session))
    if order is None:
        return Handled("unknown")
    if order.status != "pending_payment":  # paid since, or cancelled already: leave it be
        return Handled("not_pending", order=order.number)
    cancel_order(session, order)
    return Handled("cancelled", order=order.number)


def payment_failed(session: Session, event: dict[str, Any], obj: dict[str, Any], context: Context) -> Handled:
    """A card was declined: the shopper hears so, while the order still awaits payment."""
    order = _order_of_intent(session, obj)
    if order is None:
        return Handled("unknown")
    return tell_failed(session, order, f"payment-failed:{event['id']}")


def charge_refunded(session: Session, event: dict[str, Any], obj: dict[str, Any], context: Context) -> Handled:
    """A refund went through. Orders have no "refunded" status yet: the log keeps it."""
    intent = obj.get("payment_intent")
    order = (
        session.exec(select(Order).where(Order.payment_capture_ref == intent)).first()
        if isinstance(intent, str)
        else None
    )
    if order is None:
        return Handled("unknown")
    log.info(
        "stripe refund",
        extra={
            "order": order.number,
            "status": order.status,
            "amount_refunded": obj.get("amount_refunded"),
            "full": obj.get("refunded"),
        },
    )
    return Handled("refund_noted", order=order.number)


def _order_of_intent(session: Session, intent: dict[str, Any]) -> Order | None:
    number = str((intent.get("metadata") or {}).get("order_number", ""))
    if not number.isdigit() or int(number) <= ORDER_NUMBER_OFFSET:
        return None
    return session.get(Order, int(number) - ORDER_NUMBER_OFFSET)


ACTIONS = {
    "checkout.session.completed": session_completed,
    "checkout.session.async_payment_succeeded": session_completed,
    "checkout.session.expired": session_expired,
    "payment_intent.payment_failed": payment_failed,
    "charge.refunded": charge_refunded,
}


async def returned_page(request: web.Request) -> web.Response:
    """Where Stripe Checkout sends the shopper back: the chat confirms the payment, not this page."""
    done = request.path.endswith("/done")
    lang = "en" if "zh" not in request.headers.get("Accept-Language", "")[:5].lower() else "zh-TW"
    title = html.escape(text_in(lang, "pay.done.title" if done else "pay.cancelled.title"))
    body = f"<h1>{title}</h1><p>{html.escape(text_in(lang, 'pay.done' if done else 'pay.cancelled'))}</p>"
    return web.Response(text=PAGE.format(lang=lang, title=title, body=body), content_type="text/html")
