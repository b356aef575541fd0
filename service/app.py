"""The aiohttp application: routes, middleware, start-up and shutdown."""
from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import struct
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from botbuilder.core import BotState
from multidict import CIMultiDict
from sqlmodel import Session, select

from bot.channel import ChannelAdapter, RawRequest, load_json
from bot.config import Settings
from bot.conversation import identity
from bot.conversation.engine import CustomerConversationState, Engine
from bot.conversation.identity import StoreProfiles, identity_key
from bot.conversation.linking import LinkTargets, ShopperAccounts
from bot.conversation.sender_limit import SenderLimit
from bot.conversation.turn import command
from bot.delivery.dispatchers import DispatcherProcesses, dispatcher_count, make_outbox
from bot.delivery.outbox import apply_status, queue_to_customer
from bot.handoff.service import Handoffs
from bot.i18n import EN, ZH, language_of, money, text_in
from bot.marketing.scheduler import ShopScheduler, proactive
from bot.messages import InboundMessage, OutboundMessage, StatusUpdate, storable
from bot.nlu import CatalogTerm, Recognizer, load_examples, load_model
from bot.store.database import Database, StoreUnavailable, stored_secret
from bot.store.models import ChannelIdentity, Customer, MessageRecord, Order, Product, Variant, utcnow
from bot.store.seed import seed_demo
from bot.store.storage import SqlStorage
from channels import web as web_channel
from channels.messenger import MessengerChannel
from channels.registry import enabled
from channels.twilio import TwilioChannel, sms_keyword
from channels.web import WebChannel
from dialogs.main_dialog import MainDialog
from dialogs.shop import ShopServices
from dialogs.shop_bot import ShopBot
from integrations.cart import StoreCarts
from integrations.catalog import StoreCatalog
from integrations.faq import StoreFaq
from integrations.orders import StoreOrders, checkout_rules
from integrations.payments import SandboxPayments
from service import agents_api as handoff_api
from service import marketing_api as campaign_api
from service.keys import (
    ACCOUNTS,
    CATALOG,
    CHANNELS,
    DB,
    ENGINE,
    ORDERS,
    OUTBOX,
    PAYMENTS,
    SCHEDULER,
    SETTINGS,
    TASKS,
    TURN_SLOTS,
    WEB,
)
from service.security_headers import add_security_headers

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "channels" / "web_static"
MAX_BODY_BYTES = 1024 * 1024  # Messenger batches can be large; a web chat message is far smaller
WEB_BODY_BYTES = 64 * 1024
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT column holds; a larger number cannot be a message
MAX_INT_ID = 2**31 - 1  # message ids are INTEGER on PostgreSQL: none is larger, and a larger bound is refused
RETRY_AFTER_SECONDS = "5"
BACKGROUND_TURNS = 3  # turns at once after webhook answers (see service/keys.py TURN_SLOTS)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def build_recognizer(settings: Settings) -> Recognizer:
    """Load the model and fit the recogniser on the example utterances."""
    return Recognizer(
        load_model(settings.nlu_model, settings.nlu_threads), load_examples(), settings.nlu_threshold, settings.nlu_min_similarity,
        settings.nlu_batch_window_ms, settings.nlu_batch_max,
    )


def teach_shop(recognizer: Recognizer, db: Database, faq: StoreFaq) -> None:
    """Give the recogniser this shop's product names, colours and FAQ phrasings."""
    with db.session() as session:
        products = session.exec(select(Product)).all()
        colours = set(session.exec(select(Variant.colour).distinct()).all())
    recognizer.set_catalog(
        [CatalogTerm(p.sku, p.name, p.category, tuple(p.tags.split(",")), p.name_zh) for p in products], colours
    )
    recognizer.set_faq(faq.phrasings())


def link_targets(settings: Settings, channels: dict[str, ChannelAdapter]) -> LinkTargets:
    """Where shoppers can be sent to continue: the channels that are on, and the web chat."""
    return LinkTargets(
        settings.base_url,
        whatsapp_from=settings.twilio_whatsapp_from if "whatsapp" in channels else None,
        sms_from=settings.twilio_sms_from if "sms" in channels else None,
        messenger_page=settings.messenger_page_name if "messenger" in channels else None,
    )


def create_app(
    settings: Settings,
    recognizer: Recognizer | None = None,
    seed: bool = True,
    channels: dict[str, ChannelAdapter] | None = None,
) -> web.Application:
    """Build the whole service. Pass a `recognizer` to share one loaded model between apps."""
    db = Database(settings.database_url, settings.store_timeout_seconds)
    db.create_schema()
    if seed:
        seed_demo(db)
    faq = StoreFaq(db)
    owns_recognizer = recognizer is None
    recognizer = recognizer or build_recognizer(settings)
    teach_shop(recognizer, db, faq)

    storage = SqlStorage(db)
    conversation_state = CustomerConversationState(storage)
    catalog, orders = StoreCatalog(db), StoreOrders(db, checkout_rules(settings))
    channels = enabled(settings) if channels is None else channels
    payments = SandboxPayments(settings.base_url, stored_secret(db, "payments"))
    # The process that runs the scheduler also starts the extra dispatchers of OUTBOX_WORKERS.
    dispatchers = dispatcher_count(settings, db) if settings.scheduler_in_process else 1
    outbox = make_outbox(settings, db, channels, dispatchers)
    extra_dispatchers = DispatcherProcesses(dispatchers - 1)
    scheduler = ShopScheduler(proactive(settings, db, outbox), lead=settings.scheduler_in_process)
    handoffs = Handoffs.from_settings(db, settings, outbox.notify)
    shop = ShopServices(
        catalog=catalog, carts=StoreCarts(db, settings.codes), orders=orders, payments=payments, faq=faq,
        profiles=StoreProfiles(db), accounts=ShopperAccounts(db, link_targets(settings, channels), timedelta(minutes=settings.link_ttl_minutes)),
        memory=conversation_state.create_property("ShopMemory"),
        media_base=settings.base_url, currency=settings.currency, handoff=handoffs,
    )
    bot = ShopBot(conversation_state, MainDialog(shop))
    states: list[BotState] = [conversation_state]
    engine = Engine(
        db, recognizer, bot.on_turn, storage, states, settings.max_message_chars,
        frozenset(name for name, channel in channels.items() if channel.numbered_choices), handoffs,
        settings.default_timezone,
        SenderLimit.from_settings(settings.sender_rate_limit, settings.sender_rate_window_seconds,
                                  lambda language: text_in(language, "rate_limited")),
        lambda language: text_in(language, "turn_failed"),
    )

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[error_middleware])
    app[SETTINGS], app[DB], app[ENGINE] = settings, db, engine
    session_secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
    app[WEB] = WebChannel(session_secret.encode() or stored_secret(db, "web-sessions"))
    app[ORDERS], app[PAYMENTS], app[CATALOG] = orders, payments, catalog
    app[ACCOUNTS] = shop.accounts
    app[CHANNELS], app[OUTBOX], app[TASKS] = channels, outbox, set()
    app[TURN_SLOTS] = asyncio.Semaphore(BACKGROUND_TURNS)
    add_security_headers(app, settings.base_url)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/static/products/{sku}.png", product_image)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_post("/api/web/session", web_session)
    app.router.add_post("/api/web/messages", web_send)
    app.router.add_get("/api/web/messages", web_history)
    app.router.add_get("/api/web/config", web_config)
    app.router.add_post("/api/web/link", web_link)
    app.router.add_get("/pay/{reference}", pay_page)
    app.router.add_post("/pay/{reference}", pay_submit)
    app.router.add_post("/webhooks/twilio/whatsapp", webhook)
    app.router.add_post("/webhooks/twilio/sms", webhook)
    app.router.add_post("/webhooks/twilio/status", twilio_status)
    app.router.add_get("/webhooks/messenger", messenger_subscription)
    app.router.add_post("/webhooks/messenger", webhook)
    app[SCHEDULER] = scheduler
    campaign_api.add_routes(app)
    handoff_api.add_routes(app, handoffs, settings)

    async def on_startup(app: web.Application) -> None:
        outbox.start()
        extra_dispatchers.start()
        await scheduler.start()
        recovered = await engine.recover()
        if recovered:
            log.info("ran turns for stored messages left unprocessed", extra={"count": recovered})
            outbox.notify()

    async def on_cleanup(app: web.Application) -> None:
        if app[TASKS]:
            await asyncio.gather(*app[TASKS], return_exceptions=True)
        await scheduler.stop()
        await extra_dispatchers.stop()
        await outbox.stop()
        for channel in channels.values():
            await channel.close()
        if owns_recognizer:
            recognizer.batcher.close()
        db.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, exc.text or "request body too large")
    except web.HTTPException:
        raise
    except StoreUnavailable as exc:  # providers and the widget retry; nothing was half done
        log.warning("store unavailable", extra={"path": request.path, "reason": str(exc)})
        return unavailable()
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return json_error(500, "internal error")


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def unavailable() -> web.Response:
    """503 with Retry-After: the store did not answer in time; the same request later will do."""
    response = json_error(503, "the store is unavailable; try again shortly")
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers, and so does the store (a read, within its timeout)."""
    problem = await request.app[DB].check(write=False)
    if problem is not None:  # the store is down: say so, do not crash
        return web.json_response({"status": "unhealthy", "store": "unreachable", "reason": problem}, status=503)
    return web.json_response({"status": "ok", "store": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store would take a write within its timeout, so a webhook would be stored."""
    problem = await request.app[DB].check(write=True)
    if problem is not None:
        return web.json_response({"status": "unavailable", "store": problem}, status=503,
                                  headers={"Retry-After": RETRY_AFTER_SECONDS})
    return web.json_response({"status": "ready", "store": "ok"})


def solid_png(hex_colour: str, width: int = 320, height: int = 240) -> bytes:
    """A one-colour PNG: a product picture stand-in that every channel (WhatsApp too) accepts."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    row = b"\x00" + bytes((r, g, b)) * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")


async def product_image(request: web.Request) -> web.Response:
    """A drawn placeholder picture per product, so the demo works offline."""
    sku = request.match_info["sku"]
    product = await request.app[DB].run(lambda s: s.get(Product, sku))
    if product is None:
        raise web.HTTPNotFound()
    colour = product.colour_hex if re.fullmatch(r"#[0-9a-fA-F]{6}", product.colour_hex) else "#888888"
    return web.Response(body=solid_png(colour), content_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _session(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    session_id = request.app[WEB].verify(token)
    if session_id is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "missing, invalid or expired session"}), content_type="application/json"
        )
    return session_id


async def web_session(request: web.Request) -> web.Response:
    session_id, token = request.app[WEB].new_session()
    return web.json_response({"token": token})


async def _json_object(request: web.Request) -> dict[str, Any]:
    if (request.content_length or 0) > WEB_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(WEB_BODY_BYTES, request.content_length)
    raw = bytearray()
    async for chunk in request.content.iter_any():  # a chunked body has no length to check first
        raw += chunk
        if len(raw) > WEB_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(WEB_BODY_BYTES, len(raw))
    try:
        body = load_json(bytes(raw))
    except ValueError as exc:
        raise BadRequest(f"body must be JSON ({exc})" if "nested" in str(exc) else "body must be JSON")
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


async def web_send(request: web.Request) -> web.Response:
    session_id = _session(request)
    body = await _json_object(request)
    settings = request.app[SETTINGS]
    unknown = set(body) - {"id", "text"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    message_id, text = body.get("id"), body.get("text")
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.match(message_id):
        raise BadRequest("id must be a string of 1-64 letters, digits, '-' or '_'")
    if not isinstance(text, str):
        raise BadRequest("text must be a string")
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise BadRequest("text must be valid Unicode without NUL characters")
    if not storable(text).strip():  # what would be stored: control characters are dropped
        raise BadRequest("message is empty")
    if len(text) > settings.max_message_chars:
        raise BadRequest(f"message is too long (at most {settings.max_message_chars} characters)")
    engine = request.app[ENGINE]
    received = await engine.receive(
        # Ids come from the browser: they are unique only within one session.
        InboundMessage(channel="web", address=session_id, provider_message_id=f"{session_id}:{message_id}", text=text)
    )
    try:
        replies = await engine.run_turn(received, reply_status="delivered")
    except Exception:
        try:
            await engine.record_failure(received)  # the widget's retry with the same id runs it again
        except StoreUnavailable:
            pass  # the message stays stored as it was; the retry runs it
        raise
    return web.json_response(
        {"duplicate": received.duplicate,
         "messages": [web_channel.render(r.id, r.direction, r.text, r.payload) for r in replies]}
    )


async def _web_customer(request: web.Request, session_id: str) -> str:
    """The customer behind a web session, created on first use."""

    def resolve(session: Session) -> str:
        return identity.resolve(session, "web", session_id).id

    return await request.app[DB].run(resolve)


WELCOME_MENU = ("product_search", "check_stock", "order_status", "faq")


async def web_config(request: web.Request) -> web.Response:
    """What the widget needs to open: the channels to continue on, a greeting with suggestions in
    the shopper's language for an empty chat, and with `?product=SKU` (a campaign's link) that
    product, to show first."""
    session_id = _session(request)
    channels = [c for c in request.app[ACCOUNTS].channels() if c != "web"]
    language = await _web_language(request, session_id)
    config: dict[str, Any] = {
        "link_channels": channels,
        "welcome": {"text": text_in(language, "greet"),
                    "choices": [{"title": text_in(language, f"menu.{intent}"), "value": command(intent)}
                                for intent in WELCOME_MENU]},
    }
    sku = request.query.get("product", "")
    if sku and len(sku) <= 40 and (product := await request.app[CATALOG].product(sku)) is not None:
        name = product.name_zh if language_of(language) == ZH and product.name_zh else product.name
        config["product"] = {"sku": product.sku, "name": name, "command": command("product_search", product=product.sku)}
    return web.json_response(config)


async def _web_language(request: web.Request, session_id: str) -> str:
    """The language of a web shopper we know, else the one their browser asks for first."""
    space, address = identity_key("web", session_id)

    def known(session: Session) -> str | None:
        return session.exec(select(Customer.language).join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
                            .where(ChannelIdentity.channel == space, ChannelIdentity.address == address)).first()

    language = await request.app[DB].run(known)
    if language:
        return language
    wanted = request.headers.get("Accept-Language", "").split(",")[0].strip().lower()
    return language_of(wanted)


async def web_link(request: web.Request) -> web.Response:
    """The widget's "Continue on ..." buttons: a link and a code for another channel."""
    session_id = _session(request)
    body = await _json_object(request)
    channel = body.get("channel")
    available = [c for c in request.app[ACCOUNTS].channels() if c != "web"]
    if set(body) - {"channel"} or channel not in available:
        raise BadRequest(f"channel must be one of: {', '.join(available) or 'none configured'}")
    customer_id = await _web_customer(request, session_id)
    offer = await request.app[ACCOUNTS].offer(customer_id, channel, ("web", session_id))
    return web.json_response({"channel": channel, "url": offer.url, "code": offer.code, "minutes": offer.minutes})


def _mark_delivered(session: Session, ids: list[int]) -> None:
    for row in session.exec(select(MessageRecord).where(MessageRecord.id.in_(ids))).all():
        if row.status == "pending":
            row.status = "delivered"


async def web_history(request: web.Request) -> web.Response:
    session_id = _session(request)
    raw_after = request.query.get("after", "0")
    # int() would take " 5", "1_000" and other scripts' digits, and any size, which no column holds.
    if not (raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 19 and int(raw_after) <= MAX_ROW_ID):
        raise BadRequest(f"after must be a message id (0 to {MAX_ROW_ID})")
    after = int(raw_after)
    if not request.app[DB].is_sqlite:
        after = min(after, MAX_INT_ID)  # the same answer (nothing after it), in the column's range
    space, address = identity_key("web", session_id)

    def load(session: Session) -> list[MessageRecord]:
        customer_id = session.exec(
            select(ChannelIdentity.customer_id).where(
                ChannelIdentity.channel == space, ChannelIdentity.address == address
            )
        ).first()
        if customer_id is None:
            return []
        rows = list(
            session.exec(
                select(MessageRecord)
                .where(MessageRecord.customer_id == customer_id, MessageRecord.id > after)
                .order_by(MessageRecord.id)
                .limit(200)
            ).all()
        )
        _mark_delivered(session, [r.id for r in rows if r.direction == "out" and r.channel == "web"])
        return rows

    rows = await request.app[DB].run(load)
    return web.json_response(
        {"messages": [web_channel.render(r.id, r.direction, r.text, r.payload) for r in rows]}
    )


PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width,initial-scale=1"><title>{title}</title><link rel="stylesheet" href="/static/widget.css">
</head><body><main class="pay-page">{body}</main></body></html>"""


async def _payable(request: web.Request):
    reference, signature = request.match_info["reference"], request.query.get("sig", "")
    if request.method == "POST":
        signature = (await request.post()).get("sig", "") or signature
    if not request.app[PAYMENTS].verify(reference, str(signature)):
        raise web.HTTPForbidden(text="This payment link is not valid.")
    return reference, str(signature)


def _page(lang: str, title_key: str, body: str, status: int = 200, **values: object) -> web.Response:
    title = html.escape(text_in(lang, title_key, **values))
    return web.Response(text=PAGE.format(lang=lang, title=title, body=body), content_type="text/html", status=status)


def _not_payable_page(lang: str, number: int, status: str) -> web.Response:
    """An order that is not awaiting payment: 409, and why, so nobody thinks they paid."""
    why = "pay.refused.cancelled" if status == "cancelled" else "pay.refused.paid"
    body = f"<h1>{html.escape(text_in(lang, 'pay.refused.title', number=number))}</h1>" \
           f"<p>{html.escape(text_in(lang, why, number=number))}</p><p>{html.escape(text_in(lang, 'pay.back'))}</p>"
    return _page(lang, "pay.refused.title", body, 409, number=number)


async def pay_page(request: web.Request) -> web.Response:
    reference, signature = await _payable(request)

    def load(session: Session):
        order = session.exec(select(Order).where(Order.payment_ref == reference)).first()
        return order, _language(session, order.customer_id) if order is not None else "en"

    order, lang = await request.app[DB].run(load)
    if order is None:
        raise web.HTTPNotFound(text="Unknown payment.")
    if order.status != "pending_payment":
        return _not_payable_page(lang, order.number, order.status)
    currency = request.app[SETTINGS].currency
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

    def notice(session: Session, customer_id: str, order) -> None:
        lang = _language(session, customer_id)
        queue_to_customer(session, customer_id, f"paid:{order.number}", OutboundMessage(
            text=text_in(lang, "pay.notice", number=order.number), kind="post_purchase"))

    payment = await request.app[ORDERS].mark_paid(reference, notice)
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


def raw_request(request: web.Request, body: bytes) -> RawRequest:
    """The webhook as the provider signed it: our public URL (not the one behind a proxy)."""
    settings = request.app[SETTINGS]
    url = settings.base_url + request.rel_url.raw_path_qs  # as the provider signed it, still encoded
    return RawRequest(url, CIMultiDict(request.headers), body, dict(request.query))


WEBHOOK_CHANNEL = {
    "/webhooks/twilio/whatsapp": "whatsapp",
    "/webhooks/twilio/sms": "sms",
    "/webhooks/messenger": "messenger",
}
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def webhook(request: web.Request) -> web.Response:
    """Every provider webhook: verify (403), parse (400), store and dedupe, answer at once;
    the turns run after the answer and their replies go out through the outbox."""
    name = WEBHOOK_CHANNEL[request.path]
    channel = request.app[CHANNELS].get(name)
    if channel is None:
        return json_error(404, f"the {name} channel is not configured")
    req = raw_request(request, await request.read())
    if not channel.verify(req):
        log.warning("webhook signature refused", extra={"channel": name})
        return json_error(403, "invalid signature")
    try:
        events = channel.parse(req)
    except (ValueError, UnicodeDecodeError) as exc:
        return json_error(400, f"malformed webhook: {exc}")
    engine, db = request.app[ENGINE], request.app[DB]
    # Each event is stored on its own: one the store refuses is logged and skipped, and never
    # fails its neighbours. A store that does not answer fails the whole request with a 503
    # (StoreUnavailable, see `error_middleware`): the provider retries, and what was stored
    # already is recognised as a duplicate.
    await _apply_statuses(db, [e for e in events if isinstance(e, StatusUpdate)])
    for message in (e for e in events if isinstance(e, InboundMessage)):
        try:
            received = await engine.receive(message)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("inbound message refused by the store; skipped", extra={"channel": name})
            continue
        if received.duplicate and received.processed:
            continue
        if name == "sms" and (keyword := sms_keyword(message.text)):
            if await db.run(lambda s: _apply_sms_keyword(s, received.message_id, received.customer_id, keyword)):
                continue
        _in_background(request.app, _turn_then_send(request.app, received))
    if name == "messenger":
        return web.Response(text="EVENT_RECEIVED")
    return web.Response(text=TWIML_EMPTY, content_type="text/xml")


async def _apply_statuses(db: Database, updates: list[StatusUpdate]) -> None:
    """Delivery reports in one transaction; if the store refuses one, each on its own, skipping
    those it refuses.

    Raises: StoreUnavailable when the store does not answer within its timeout.
    """
    if not updates:
        return
    try:
        await db.run(lambda s: [apply_status(s, u) for u in updates], urgent=True, deadline=db.timeout)
        return
    except StoreUnavailable:
        raise
    except Exception:
        if len(updates) == 1:
            log.exception("delivery report refused by the store; skipped", extra={"channel": updates[0].channel})
            return
    for update_ in updates:
        try:
            await db.run(lambda s: apply_status(s, update_), urgent=True, deadline=db.timeout)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("delivery report refused by the store; skipped", extra={"channel": update_.channel})


def _apply_sms_keyword(session: Session, message_id: int, customer_id: str, keyword: str) -> bool:
    """Carrier keywords change consent before any dialog sees them. Twilio itself answers STOP,
    START and HELP on our number, so we add no second reply. Returns True if handled."""
    customer = session.get(Customer, customer_id)
    if keyword == "opt_in" and not customer.sms_opted_out and customer.marketing_consent is not False:
        return False  # "yes" to one of our questions, not a re-subscription
    if keyword == "opt_out":
        customer.sms_opted_out, customer.marketing_consent = True, False
    elif keyword == "opt_in":
        customer.sms_opted_out, customer.marketing_consent = False, True
    customer.consent_updated_at = utcnow()
    customer.consent_source = f"sms:{keyword}"
    session.get(MessageRecord, message_id).status = "processed"
    return True


async def _turn_then_send(app: web.Application, received) -> None:
    try:
        await app[ENGINE].run_turn(received, slots=app[TURN_SLOTS])
    except Exception:  # the message stays stored: a provider retry or the next start runs it again
        log.exception("turn failed", extra={"record_id": received.message_id})
        await app[ENGINE].record_failure(received)
        return
    app[OUTBOX].notify()


def _in_background(app: web.Application, coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


async def twilio_status(request: web.Request) -> web.Response:
    channels = [c for c in request.app[CHANNELS].values() if isinstance(c, TwilioChannel)]
    if not channels:
        return json_error(404, "no Twilio channel is configured")
    req = raw_request(request, await request.read())
    if not channels[0].verify(req):
        return json_error(403, "invalid signature")
    try:
        update_ = TwilioChannel.parse_status(req)
    except (ValueError, UnicodeDecodeError) as exc:
        return json_error(400, f"malformed status callback: {exc}")
    await _apply_statuses(request.app[DB], [update_])
    return web.Response(status=204)


async def messenger_subscription(request: web.Request) -> web.Response:
    channel = request.app[CHANNELS].get("messenger")
    if not isinstance(channel, MessengerChannel):
        return json_error(404, "the messenger channel is not configured")
    challenge = channel.verify_subscription(dict(request.query))
    if challenge is None:
        return web.Response(status=403, text="verify token mismatch")
    return web.Response(text=challenge)
