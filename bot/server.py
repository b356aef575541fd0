"""The aiohttp application: routes, middleware, start-up and shutdown."""
from __future__ import annotations

import html
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web
from botbuilder.core import BotState
from sqlalchemy import text as sql_text
from sqlmodel import Session, select

from bot.config import Settings
from bot.engine import CustomerConversationState, Engine
from bot.identity import StoreProfiles, identity_key
from bot.messages import InboundMessage, OutboundMessage
from bot.nlu import CatalogTerm, Recognizer, load_examples, load_model
from bot.store.database import Database
from bot.store.models import ChannelIdentity, Customer, MessageRecord, Order, Product, StateRecord, Variant
from bot.store.seed import seed_demo
from bot.store.storage import SqlStorage
from channels import web as web_channel
from channels.web import WebChannel
from dialogs.main_dialog import MainDialog
from dialogs.shop import ShopServices
from dialogs.shop_bot import ShopBot
from integrations.cart import StoreCarts
from integrations.catalog import StoreCatalog
from integrations.faq import StoreFaq
from integrations.orders import StoreOrders
from integrations.payments import SandboxPayments

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "channels" / "web_static"
MAX_BODY_BYTES = 64 * 1024
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
ENGINE = web.AppKey("engine", Engine)
WEB = web.AppKey("web", WebChannel)
ORDERS = web.AppKey("orders", StoreOrders)
PAYMENTS = web.AppKey("payments", SandboxPayments)
CATALOG = web.AppKey("catalog", StoreCatalog)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def stored_secret(db: Database, name: str) -> bytes:
    """A random secret kept in the store, so signed links and sessions survive restarts."""
    key = f"secret/{name}"

    def get_or_create(session: Session) -> str:
        row = session.get(StateRecord, key)
        if row is None:
            row = StateRecord(key=key, etag="secret", data=secrets.token_hex(32))
            session.add(row)
        return row.data

    return db.transaction(get_or_create).encode()


def build_recognizer(settings: Settings) -> Recognizer:
    """Load the model and fit the recogniser on the example utterances."""
    return Recognizer(
        load_model(settings.nlu_model), load_examples(), settings.nlu_threshold, settings.nlu_min_similarity,
        settings.nlu_batch_window_ms, settings.nlu_batch_max,
    )


def teach_shop(recognizer: Recognizer, db: Database, faq: StoreFaq) -> None:
    """Give the recogniser this shop's product names, colours and FAQ phrasings."""
    with db.session() as session:
        products = session.exec(select(Product)).all()
        colours = set(session.exec(select(Variant.colour).distinct()).all())
    recognizer.set_catalog(
        [CatalogTerm(p.sku, p.name, p.category, tuple(p.tags.split(","))) for p in products], colours
    )
    recognizer.set_faq(faq.phrasings())


def create_app(settings: Settings, recognizer: Recognizer | None = None, seed: bool = True) -> web.Application:
    """Build the whole service. Pass a `recognizer` to share one loaded model between apps."""
    db = Database(settings.database_url)
    db.create_schema()
    if seed:
        seed_demo(db)
    faq = StoreFaq(db)
    owns_recognizer = recognizer is None
    recognizer = recognizer or build_recognizer(settings)
    teach_shop(recognizer, db, faq)

    storage = SqlStorage(db)
    conversation_state = CustomerConversationState(storage)
    catalog, orders = StoreCatalog(db), StoreOrders(db)
    payments = SandboxPayments(settings.base_url, stored_secret(db, "payments"))
    shop = ShopServices(
        catalog=catalog, carts=StoreCarts(db), orders=orders, payments=payments, faq=faq,
        profiles=StoreProfiles(db), memory=conversation_state.create_property("ShopMemory"),
        media_base=settings.base_url,
    )
    bot = ShopBot(conversation_state, MainDialog(shop))
    states: list[BotState] = [conversation_state]
    engine = Engine(db, recognizer, bot.on_turn, storage, states, settings.max_message_chars)

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[error_middleware])
    app[SETTINGS], app[DB], app[ENGINE] = settings, db, engine
    session_secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
    app[WEB] = WebChannel(session_secret.encode() or stored_secret(db, "web-sessions"))
    app[ORDERS], app[PAYMENTS], app[CATALOG] = orders, payments, catalog
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/products/{sku}.svg", product_image)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_post("/api/web/session", web_session)
    app.router.add_post("/api/web/messages", web_send)
    app.router.add_get("/api/web/messages", web_history)
    app.router.add_get("/pay/{reference}", pay_page)
    app.router.add_post("/pay/{reference}", pay_submit)

    async def on_startup(app: web.Application) -> None:
        recovered = await engine.recover()
        if recovered:
            log.info("ran turns for stored messages left unprocessed", extra={"count": recovered})

    async def on_cleanup(app: web.Application) -> None:
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
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return json_error(500, "internal error")


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    db = request.app[DB]
    try:
        await db.run(lambda s: s.execute(sql_text("SELECT 1")).scalar())
    except Exception:  # the store is down: say so, do not crash
        return web.json_response({"status": "unhealthy", "store": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "store": "ok"})


async def product_image(request: web.Request) -> web.Response:
    """A drawn placeholder picture per product, so the demo works offline."""
    sku = request.match_info["sku"]
    product = await request.app[DB].run(lambda s: s.get(Product, sku))
    if product is None:
        raise web.HTTPNotFound()
    colour = product.colour_hex if re.fullmatch(r"#[0-9a-fA-F]{6}", product.colour_hex) else "#888888"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        f'<rect width="320" height="240" fill="{colour}"/>'
        '<text x="160" y="128" font-family="sans-serif" font-size="22" fill="#fff" text-anchor="middle">'
        f"{html.escape(product.name)}</text></svg>"
    )
    return web.Response(text=svg, content_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"})


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
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body must be JSON")
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
    if not text.strip():
        raise BadRequest("message is empty")
    if len(text) > settings.max_message_chars:
        raise BadRequest(f"message is too long (at most {settings.max_message_chars} characters)")
    engine = request.app[ENGINE]
    received, replies = await engine.handle(
        InboundMessage(channel="web", address=session_id, provider_message_id=message_id, text=text),
        reply_status="delivered",
    )
    return web.json_response(
        {"duplicate": received.duplicate,
         "messages": [web_channel.render(r.id, r.direction, r.text, r.payload) for r in replies]}
    )


def _mark_delivered(session: Session, ids: list[int]) -> None:
    for row in session.exec(select(MessageRecord).where(MessageRecord.id.in_(ids))).all():
        if row.status == "pending":
            row.status = "delivered"


async def web_history(request: web.Request) -> web.Response:
    session_id = _session(request)
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise BadRequest("after must be a message id")
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


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width,initial-scale=1"><title>{title}</title><link rel="stylesheet" href="/static/widget.css">
</head><body><main class="pay-page" style="max-width:28rem;margin:3rem auto;font-family:sans-serif">{body}</main></body></html>"""


async def _payable(request: web.Request):
    reference, signature = request.match_info["reference"], request.query.get("sig", "")
    if request.method == "POST":
        signature = (await request.post()).get("sig", "") or signature
    if not request.app[PAYMENTS].verify(reference, str(signature)):
        raise web.HTTPForbidden(text="This payment link is not valid.")
    return reference, str(signature)


async def pay_page(request: web.Request) -> web.Response:
    reference, signature = await _payable(request)
    order = await request.app[DB].run(
        lambda s: s.exec(select(Order).where(Order.payment_ref == reference)).first()
    )
    if order is None:
        raise web.HTTPNotFound(text="Unknown payment.")
    if order.status != "pending_payment":
        body = f"<h1>Order #{order.number}</h1><p>This order is {html.escape(order.status.replace('_', ' '))}.</p>"
    else:
        body = (
            f"<h1>Pay for order #{order.number}</h1><p>Amount: <strong>${order.total_cents / 100:,.2f}</strong></p>"
            "<p>This is the sandbox payment provider: no card is charged.</p>"
            f'<form method="post"><input type="hidden" name="sig" value="{html.escape(signature)}">'
            '<button type="submit" id="pay">Pay now</button></form>'
        )
    return web.Response(text=PAGE.format(title="Payment", body=body), content_type="text/html")


async def pay_submit(request: web.Request) -> web.Response:
    reference, _ = await _payable(request)
    result = await request.app[ORDERS].mark_paid(reference)
    if result is not None:
        customer_id, order = result
        await request.app[DB].run(
            lambda s: _queue_notice(
                s, customer_id, f"paid:{order.number}",
                OutboundMessage(text=f"Payment received for order #{order.number} — thank you! "
                                     "We'll let you know when it ships."),
            )
        )
    body = "<h1>Payment received</h1><p>Thank you! You can close this page and go back to the chat.</p>"
    return web.Response(text=PAGE.format(title="Payment received", body=body), content_type="text/html")


def _queue_notice(session: Session, customer_id: str, key: str, message: OutboundMessage) -> None:
    """A message the shop sends on its own, on the shopper's most recent channel, at most once."""
    if session.exec(select(MessageRecord.id).where(MessageRecord.idempotency_key == key)).first():
        return
    customer = session.get(Customer, customer_id)
    session.add(
        MessageRecord(
            customer_id=customer_id, channel=(customer.last_channel if customer else None) or "web",
            direction="out", text=message.text, payload=message.to_dict(), idempotency_key=key, status="pending",
        )
    )
