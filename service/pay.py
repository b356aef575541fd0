"""The sandbox payment page: a signed link from the chat opens it, Pay now marks the order paid
and queues the shopper's notice (and confirmation e-mail) in the same transaction."""

from __future__ import annotations

import html
import logging

from aiohttp import web
from sqlmodel import Session, select

from bot.i18n import EN, language_of, money, text_in
from bot.store.models import Customer, Order
from integrations.payments import SandboxPayments
from service.keys import DB, ORDERS, OUTBOX, PAYMENTS, SERVICES, SETTINGS

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/pay/{reference}", pay_page)
    app.router.add_post("/pay/{reference}", pay_submit)


PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width,initial-scale=1"><title>{title}</title><link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="/static/widget.css">
</head><body><main class="pay-page">{body}</main></body></html>"""


async def _payable(request: web.Request):
    reference, signature = request.match_info["reference"], request.query.get("sig", "")
    if request.method == "POST":
        signature = (await request.post()).get("sig", "") or signature
    payments = request.app[PAYMENTS]
    if not isinstance(payments, SandboxPayments) or not payments.verify(reference, str(signature)):
        # Nothing of the order is read for a link that does not verify: the browser's language.
        lang = language_of(request.headers.get("Accept-Language", EN).split(",")[0].strip())
        body = f"<h1>{html.escape(text_in(lang, 'pay.invalid.title'))}</h1><p>{html.escape(text_in(lang, 'pay.invalid'))}</p>"
        title = html.escape(text_in(lang, "pay.invalid.title"))
        raise web.HTTPForbidden(text=PAGE.format(lang=lang, title=title, body=body), content_type="text/html")
    return reference, str(signature)


def _page(lang: str, title_key: str, body: str, status: int = 200, **values: object) -> web.Response:
    title = html.escape(text_in(lang, title_key, **values))
    return web.Response(text=PAGE.format(lang=lang, title=title, body=body), content_type="text/html", status=status)


def _not_payable_page(lang: str, number: int, status: str) -> web.Response:
    """An order that is not awaiting payment: 409, and why, so nobody thinks they paid."""
    why = "pay.refused.cancelled" if status == "cancelled" else "pay.refused.paid"
    body = (
        f"<h1>{html.escape(text_in(lang, 'pay.refused.title', number=number))}</h1>"
        f"<p>{html.escape(text_in(lang, why, number=number))}</p><p>{html.escape(text_in(lang, 'pay.back'))}</p>"
    )
    return _page(lang, "pay.refused.title", body, 409, number=number)


async def pay_page(request: web.Request) -> web.Response:
    reference, signature = await _payable(request)

    def load(session: Session):
        order = session.exec(select(Order).where(Order.payment_ref == reference)).first()
        return order, _language(session, order.customer_id) if order is not None else "en"

    order, lang = await request.app[DB].run(load)
    currency = request.app[SETTINGS].currency
    if order is None:
        raise web.HTTPNotFound(text="Unknown payment.")
    if order.status != "pending_payment":
        return _not_payable_page(lang, order.number, order.status)
    body = (
        f"<h1>{html.escape(text_in(lang, 'pay.heading', number=order.number))}</h1>"
        f"<p>{html.escape(text_in(lang, 'pay.amount', total=money(order.total_cents, lang, currency)))}</p>"
        f"<p>{html.escape(text_in(lang, 'pay.sandbox'))}</p>"
        f'<form method="post"><input type="hidden" name="sig" value="{html.escape(signature)}">'
        f'<button type="submit" id="pay">{html.escape(text_in(lang, "btn.pay_now"))}</button></form>'
    )
    return _page(lang, "pay.title", body)


async def pay_submit(request: web.Request) -> web.Response:
    """Pay an order awaiting payment; anything else (cancelled in the chat since the page was
    opened, or paid already) is refused with 409 and charges nothing."""
    reference, _ = await _payable(request)

    payment = await request.app[ORDERS].mark_paid(reference, request.app[SERVICES].on_paid)
    if payment.outcome == "unknown":
        raise web.HTTPNotFound(text="Unknown payment.")
    lang = await request.app[DB].run(lambda s: _language(s, payment.customer_id))
    if payment.outcome == "not_payable":
        log.info("payment refused", extra={"order": payment.order.number, "status": payment.order.status})
        return _not_payable_page(lang, payment.order.number, payment.order.status)
    request.app[OUTBOX].notify()
    body = f"<h1>{html.escape(text_in(lang, 'pay.received.title'))}</h1><p>{html.escape(text_in(lang, 'pay.received'))}</p>"
    return _page(lang, "pay.received.title", body)


def _language(session: Session, customer_id: str) -> str:
    customer = session.get(Customer, customer_id)
    return language_of(customer.language if customer is not None else EN)
