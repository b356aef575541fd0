"""EasyPost's webhook (`POST /webhooks/easypost`): each verified event is recorded by its id and
acted on in one transaction, so a retry or a duplicate is processed once; tracker updates move a
shipped order on (never backwards) and a scanned return parcel refunds its item."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.delivery.policy import Policy
from bot.store.models import ProviderEvent, utcnow
from integrations.easypost_shipping import EasyPostShipping
from integrations.payments import PaymentUnavailable
from integrations.returns import Refund, return_of_tracker, return_scanned
from integrations.shipments import order_of_tracker, track_update
from integrations.webhook_auth import WebhookRefused
from service.http import json_error, read_body, refused
from service.keys import DB, OUTBOX, PAYMENTS, SERVICES, SETTINGS

log = logging.getLogger(__name__)
EASYPOST_BODY_BYTES = 512 * 1024  # a tracker with a long history of scans stays well below


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/easypost", easypost_webhook)


@dataclass(frozen=True)
class Handled:
    outcome: str
    queued: bool = False
    order: int | None = None
    refund: Refund | None = None


async def easypost_webhook(request: web.Request) -> web.Response:
    """Verify `X-Hmac-Signature` on the raw body (403 and nothing stored when it fails; 400 for a
    signed body that is not an event), then record and act on the event; 200 for anything
    verified, an unknown tracker included, so EasyPost retries only what we could not store."""
    services = request.app[SERVICES]
    shipping = services.shipping
    if not isinstance(shipping, EasyPostShipping):
        raise web.HTTPNotFound(text="EasyPost is not this shop's shipping service.")
    raw = await read_body(request, EASYPOST_BODY_BYTES)
    try:
        event = shipping.verified_event(raw, request.headers.get("X-Hmac-Signature", ""))
    except WebhookRefused as exc:
        return refused("EasyPost", exc)
    except ValueError as exc:
        log.warning("easypost webhook unreadable", extra={"reason": str(exc)[:200]})
        return json_error(400, f"signed, but not an EasyPost event: {exc}")
    settings = request.app[SETTINGS]
    try:
        handled = await request.app[DB].run(
            lambda s: handle_event(
                s, event, services.policy, settings.currency, settings.whatsapp_order_update_template_sid
            )
        )
    except IntegrityError:  # the same event, delivered twice at once: the other one has it
        handled = Handled("duplicate")
    log.info(
        "easypost event",
        extra={
            "event": event["id"],
            "type": event["description"][:100],
            "outcome": handled.outcome,
            "order": handled.order,
        },
    )
    if handled.queued:
        request.app[OUTBOX].notify()
    if handled.refund is not None:
        refund = handled.refund
        try:
            await request.app[PAYMENTS].refund(refund.order, refund.capture_ref, refund.amount_cents, refund.key)
            log.info("refunded a returned item", extra={"order": refund.order.number, "amount": refund.amount_cents})
        except PaymentUnavailable as exc:
            log.error(
                "payment provider unavailable for a return's refund: a person must finish it",
                extra={"order": refund.order.number, "reason": str(exc)},
            )
    return web.json_response({"received": True})


def handle_event(
    session: Session, event: dict[str, Any], policy: Policy, currency: str, template_sid: str | None
) -> Handled:
    """Record the event, then act on it, in the caller's transaction. A recorded event does nothing."""
    if session.exec(
        select(ProviderEvent.id).where(ProviderEvent.provider == "easypost", ProviderEvent.event_id == event["id"])
    ).first():
        return Handled("duplicate")
    session.add(ProviderEvent(provider="easypost", event_id=event["id"], type=event["description"][:100]))
    session.flush()
    if event["description"] not in ("tracker.updated", "tracker.created"):
        return Handled("ignored")
    tracker: dict[str, Any] = event["result"]
    lock = session.get_bind().dialect.name != "sqlite"
    now = utcnow()
    order = order_of_tracker(session, tracker, lock)
    if order is not None:
        tracked = track_update(session, policy, order, tracker, now, template_sid)
        return Handled(tracked.outcome, tracked.queued, tracked.order)
    returned = return_of_tracker(session, tracker, lock)
    if returned is not None:
        scanned = return_scanned(session, policy, returned, tracker, currency, now)
        return Handled(scanned.outcome, scanned.queued, scanned.order, scanned.refund)
    return Handled("unknown_tracker")
