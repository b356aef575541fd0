"""PayPal's webhook (`POST /webhooks/paypal`) and the page PayPal returns the shopper to after
approving (`GET /payments/paypal/return`), where the approved order is captured. Each verified
event is recorded by id in the transaction that acts on it, as Stripe's are
(`service/payment_webhooks.py`); a capture is asked of PayPal before that transaction, under a
PayPal-Request-Id, so asking again never captures twice."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from bot.i18n import text_in
from bot.store.models import ORDER_NUMBER_OFFSET, MessageRecord, Order, ProviderEvent
from integrations.orders import order_by_payment_ref, settle_cancelled
from integrations.payments import PaymentUnavailable
from integrations.paypal_payments import Capture, CaptureRefused, PayPalPayments, cents_of, dig
from integrations.webhook_auth import WebhookRefused
from service.http import json_error, read_body, refused
from service.keys import DB, OUTBOX, PAYMENTS, SERVICES
from service.pay import PAGE, _language, _not_payable_page
from service.payment_webhooks import Context, Handled, _lock, record_event, settle_payment, tell_failed

log = logging.getLogger(__name__)
PAYPAL_BODY_BYTES = 256 * 1024  # PayPal's events are far smaller
PROVIDER = "paypal"


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/paypal", paypal_webhook)
    app.router.add_get("/payments/paypal/return", returned)


@dataclass(frozen=True)
class ToCapture:
    """What capturing a PayPal order needs: the shop's order, and which try this is (a declined
    funding source is tried again under a new PayPal-Request-Id, as a new capture)."""

    number: int
    attempt: int


def _failed_key(reference: str) -> str:
    return f"payment-failed:{reference}:"


def before_capture(session: Session, reference: str, event_id: str | None = None) -> ToCapture | Handled:
    """Capture only an order awaiting payment, for an event not acted on before; anything else is
    answered without asking PayPal."""
    if (
        event_id is not None
        and session.exec(
            select(ProviderEvent.id).where(ProviderEvent.provider == PROVIDER, ProviderEvent.event_id == event_id)
        ).first()
    ):
        return Handled("duplicate")
    order = order_by_payment_ref(session, reference)
    if order is None:
        return Handled("unknown")
    if order.status != "pending_payment":
        return Handled("not_pending", order=order.number)
    declined = session.exec(
        select(func.count())
        .select_from(MessageRecord)
        .where(MessageRecord.idempotency_key.startswith(_failed_key(reference)))  # type: ignore[union-attr]
    ).one()
    return ToCapture(order.number, declined + 1)


def after_capture(
    session: Session,
    reference: str,
    capture: Capture,
    attempt: int,
    context: Context,
    event: dict[str, Any] | None = None,
) -> Handled:
    """Act on what PayPal did with the capture (and record the event that asked for it, if one did)."""
    if event is not None and not record_event(session, PROVIDER, event["id"], event["event_type"]):
        return Handled("duplicate")
    if capture.status == "COMPLETED":
        return settle_payment(session, PROVIDER, reference, capture.amount_cents, capture.capture_id, context)
    if capture.status in ("DECLINED", "FAILED"):
        order = order_by_payment_ref(session, reference, lock=_lock(session))
        if order is None:
            return Handled("unknown")
        return tell_failed(session, order, _failed_key(reference) + (capture.capture_id or f"try-{attempt}"))
    return Handled("not_paid_yet")  # PENDING: PAYMENT.CAPTURE.COMPLETED follows


async def capture_order(
    app: web.Application, payments: PayPalPayments, reference: str, event: dict[str, Any] | None = None
) -> Handled:
    """Capture the approved PayPal order `reference` if its order awaits payment, and act on it.
    PayPal refusing the capture (the order is not approved) is an outcome, "refused", and logged.

    Raises:
        PaymentUnavailable: PayPal did not answer; nothing was recorded.
    """
    db = app[DB]
    step = await db.run(lambda s: before_capture(s, reference, event["id"] if event else None))
    if isinstance(step, ToCapture):
        try:
            capture = await payments.capture(step.number, reference, step.attempt)
        except CaptureRefused as exc:
            log.warning("paypal refused the capture", extra={"order": step.number, "reason": str(exc)[:200]})
            step = Handled("refused", order=step.number)
        else:
            context = Context(payments.currency, app[SERVICES].on_paid)
            return await db.run(lambda s: after_capture(s, reference, capture, step.attempt, context, event))
    if event is None or step.outcome == "duplicate":
        return step
    recorded = await db.run(lambda s: record_event(s, PROVIDER, event["id"], event["event_type"]))
    return step if recorded else Handled("duplicate")


async def _finish(app: web.Application, payments: PayPalPayments, handled: Handled) -> None:
    if handled.queued:
        app[OUTBOX].notify()
    if handled.refund is not None:
        order, capture_id = handled.refund
        await settle_cancelled(payments, order, "paid", None, capture_id)


async def paypal_webhook(request: web.Request) -> web.Response:
    """Ask PayPal whether it sent this event (403 and nothing stored when it says no or cannot be
    asked, 503 when it does not answer, so it delivers again; 400 for a verified body that is not
    an event), then record and act on it; 200 for anything verified."""
    payments = request.app[PAYMENTS]
    if not isinstance(payments, PayPalPayments):
        raise web.HTTPNotFound(text="PayPal is not this shop's payment provider.")
    raw = await read_body(request, PAYPAL_BODY_BYTES)
    try:
        event = await payments.verified(raw, request.headers)
    except WebhookRefused as exc:
        return refused("PayPal", exc)
    except ValueError as exc:
        log.warning("paypal webhook unreadable", extra={"reason": str(exc)[:200]})
        return json_error(400, f"verified, but not a PayPal event: {exc}")
    except PaymentUnavailable as exc:
        log.warning("paypal webhook not verified: PayPal did not answer", extra={"reason": str(exc)[:200]})
        return json_error(503, "PayPal did not answer the verification; deliver again later")
    try:
        if event["event_type"] == "CHECKOUT.ORDER.APPROVED":
            handled = await capture_order(request.app, payments, str(event["resource"].get("id", "")), event)
        else:
            context = Context(payments.currency, request.app[SERVICES].on_paid)
            handled = await request.app[DB].run(lambda s: handle_event(s, event, context))
    except IntegrityError:  # the same event, delivered twice at once: the other one has it
        handled = Handled("duplicate")
    except PaymentUnavailable as exc:  # nothing recorded: PayPal delivers the approval again
        log.warning("paypal capture failed", extra={"event": event["id"], "reason": str(exc)[:200]})
        return json_error(503, "the capture did not go through; deliver again later")
    log.info(
        "paypal event",
        extra={"event": event["id"], "type": event["event_type"], "outcome": handled.outcome, "order": handled.order},
    )
    await _finish(request.app, payments, handled)
    return web.json_response({"received": True})


def handle_event(session: Session, event: dict[str, Any], context: Context) -> Handled:
    """Record the event, then act on it, in the caller's transaction. A recorded event does nothing."""
    if not record_event(session, PROVIDER, event["id"], event["event_type"]):
        return Handled("duplicate")
    action = ACTIONS.get(event["event_type"])
    return action(session, event, event["resource"], context) if action else Handled("ignored")


def _reference(session: Session, resource: dict[str, Any]) -> str:
    """The PayPal order a capture belongs to; else the payment reference of the order in its `custom_id`."""
    related = dig(resource, "supplementary_data", "related_ids", "order_id")
    if isinstance(related, str) and related:
        return related
    number = str(resource.get("custom_id", ""))
    if number.isdigit() and int(number) > ORDER_NUMBER_OFFSET:
        order = session.get(Order, int(number) - ORDER_NUMBER_OFFSET)
        if order is not None and order.payment_ref:
            return order.payment_ref
    return ""


def capture_completed(session: Session, event: dict[str, Any], capture: dict[str, Any], context: Context) -> Handled:
    """The money is taken: settled if it is the order's total in the shop's currency."""
    capture_id = capture.get("id")
    return settle_payment(
        session,
        PROVIDER,
        _reference(session, capture),
        cents_of(capture.get("amount"), context.currency),
        capture_id if isinstance(capture_id, str) else None,
        context,
    )


def capture_declined(session: Session, event: dict[str, Any], capture: dict[str, Any], context: Context) -> Handled:
    """The capture was denied or declined: the shopper hears so, once per capture."""
    reference = _reference(session, capture)
    order = order_by_payment_ref(session, reference, lock=_lock(session)) if reference else None
    if order is None:
        return Handled("unknown")
    return tell_failed(session, order, _failed_key(reference) + str(capture.get("id") or event["id"]))


def capture_refunded(session: Session, event: dict[str, Any], refund: dict[str, Any], context: Context) -> Handled:
    """A refund went through (the resource is the refund; its `up` link is the capture). Orders
    have no "refunded" status yet: the log keeps it."""
    ups = [
        link.get("href") for link in dig(refund, "links") or [] if isinstance(link, dict) and link.get("rel") == "up"
    ]
    capture_id = ups[0].rstrip("/").rsplit("/", 1)[-1] if ups and isinstance(ups[0], str) else None
    order = session.exec(select(Order).where(Order.payment_capture_ref == capture_id)).first() if capture_id else None
    if order is None:
        return Handled("unknown")
    log.info(
        "paypal refund",
        extra={
            "order": order.number,
            "status": order.status,
            "amount": cents_of(refund.get("amount"), context.currency),
        },
    )
    return Handled("refund_noted", order=order.number)


ACTIONS = {
    "PAYMENT.CAPTURE.COMPLETED": capture_completed,
    "PAYMENT.CAPTURE.DENIED": capture_declined,
    "PAYMENT.CAPTURE.DECLINED": capture_declined,
    "PAYMENT.CAPTURE.REFUNDED": capture_refunded,
}


def _page(lang: str, title_key: str, text_key: str, status: int = 200, **values: object) -> web.Response:
    title = html.escape(text_in(lang, title_key, **values))
    body = f"<h1>{title}</h1><p>{html.escape(text_in(lang, text_key, **values))}</p>"
    return web.Response(text=PAGE.format(lang=lang, title=title, body=body), content_type="text/html", status=status)


async def returned(request: web.Request) -> web.Response:
    """Where PayPal sends the shopper after approving (`?token=` the PayPal order): capture it and
    say what happened; the chat has the confirmation. Only a known order awaiting payment is
    captured, so a forged or repeated visit charges nothing more."""
    payments = request.app[PAYMENTS]
    if not isinstance(payments, PayPalPayments):
        raise web.HTTPNotFound(text="PayPal is not this shop's payment provider.")
    reference = request.query.get("token", "")[:64]

    def load(session: Session) -> tuple[Order | None, str]:
        order = order_by_payment_ref(session, reference) if reference else None
        return order, _language(session, order.customer_id) if order is not None else "en"

    order, lang = await request.app[DB].run(load)
    if order is None:
        raise web.HTTPNotFound(text="Unknown payment.")
    try:
        handled = await capture_order(request.app, payments, reference)
    except PaymentUnavailable as exc:
        log.warning("paypal capture failed on return", extra={"order": order.number, "reason": str(exc)[:200]})
        handled = Handled("unavailable", order=order.number)
    await _finish(request.app, payments, handled)
    log.info("paypal return", extra={"order": order.number, "outcome": handled.outcome})
    order, _ = await request.app[DB].run(load)  # as it is now: paid here or by the webhook meanwhile
    if order is None:
        raise web.HTTPNotFound(text="Unknown payment.")
    if order.status == "paid":
        return _page(lang, "pay.received.title", "pay.received")
    if order.status != "pending_payment":
        return _not_payable_page(lang, order.number, order.status)
    if handled.outcome == "told":
        return _page(lang, "pay.cancelled.title", "pay.failed", number=order.number)
    if handled.outcome == "refused":
        return _page(lang, "pay.cancelled.title", "pay.cancelled")
    if handled.outcome == "unavailable":
        return _page(lang, "pay.cancelled.title", "order.pay_later", 503, number=order.number)
    return _page(lang, "pay.done.title", "pay.done")
