"""The web chat's routes: the widget's page and pictures, its session, messages (sent and
fetched), configuration and "continue on another channel" links."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlmodel import Session, select

from bot.channel import identity_key
from bot.conversation import identity
from bot.conversation.turn import command
from bot.delivery.outbox import mark_fetched
from bot.i18n import ZH, language_of, text_in
from bot.messages import InboundMessage, storable
from bot.store.database import StoreUnavailable
from bot.store.models import ChannelIdentity, Customer, MessageRecord, Product
from channels import web as web_channel
from channels.web import WebChannel
from service.http import bearer, http_error, read_object
from service.keys import ACCOUNTS, CATALOG, DB, ENGINE, SETTINGS, WEB

STATIC_DIR = Path(__file__).resolve().parent.parent / "channels" / "web_static"
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT column holds; a larger number cannot be a message
MAX_INT_ID = 2**31 - 1  # message ids are INTEGER on PostgreSQL: none is larger, and a larger bound is refused


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/products/{sku}.png", product_image)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_post("/api/web/session", web_session)
    app.router.add_post("/api/web/messages", web_send)
    app.router.add_get("/api/web/messages", web_history)
    app.router.add_get("/api/web/config", web_config)
    app.router.add_post("/api/web/link", web_link)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def solid_png(hex_colour: str, width: int = 320, height: int = 240) -> bytes:
    """A one-colour PNG: a product picture stand-in that every channel (WhatsApp too) accepts."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    row = b"\x00" + bytes((r, g, b)) * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def product_image(request: web.Request) -> web.Response:
    """A drawn placeholder picture per product, so the demo works offline."""
    sku = request.match_info["sku"]
    product = await request.app[DB].run(lambda s: s.get(Product, sku))
    if product is None:
        raise web.HTTPNotFound()
    colour = product.colour_hex if re.fullmatch(r"#[0-9a-fA-F]{6}", product.colour_hex) else "#888888"
    return web.Response(body=solid_png(colour), content_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _session(request: web.Request) -> str:
    session_id = request.app[WEB].session_of(bearer(request))
    if session_id is None:
        raise http_error(401, "missing, invalid or expired session")
    return session_id


async def web_session(request: web.Request) -> web.Response:
    session_id, token = request.app[WEB].new_session()
    return web.json_response({"token": token})


async def web_send(request: web.Request) -> web.Response:
    session_id = _session(request)
    body = await read_object(request, {"id", "text"})
    settings = request.app[SETTINGS]
    message_id, text = body.get("id"), body.get("text")
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.match(message_id):
        raise http_error(400, "id must be a string of 1-64 letters, digits, '-' or '_'")
    if not isinstance(text, str):
        raise http_error(400, "text must be a string")
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise http_error(400, "text must be valid Unicode without NUL characters")
    if not storable(text).strip():  # what would be stored: control characters are dropped
        raise http_error(400, "message is empty")
    if len(text) > settings.max_message_chars:
        raise http_error(400, f"message is too long (at most {settings.max_message_chars} characters)")
    engine = request.app[ENGINE]
    received = await engine.receive(
        # Ids come from the browser: they are unique only within one session.
        InboundMessage(
            channel=WebChannel.name, address=session_id, provider_message_id=f"{session_id}:{message_id}", text=text
        )
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
        {
            "duplicate": received.duplicate,
            "messages": [web_channel.render(r.id, r.direction, r.text, r.payload) for r in replies],
        }
    )


async def _web_customer(request: web.Request, session_id: str) -> str:
    """The customer behind a web session, created on first use."""

    def resolve(session: Session) -> str:
        return identity.resolve(session, WebChannel.name, session_id).id

    return await request.app[DB].run(resolve)


WELCOME_MENU = ("product_search", "check_stock", "order_status", "faq")


async def web_config(request: web.Request) -> web.Response:
    """What the widget needs to open: the channels to continue on, a greeting with suggestions in
    the shopper's language for an empty chat, and with `?product=SKU` (a campaign's link) that
    product, to show first."""
    session_id = _session(request)
    channels = [c for c in request.app[ACCOUNTS].channels() if c != WebChannel.name]
    language = await _web_language(request, session_id)
    config: dict[str, Any] = {
        "link_channels": channels,
        "welcome": {
            "text": text_in(language, "greet"),
            "choices": [
                {"title": text_in(language, f"menu.{intent}"), "value": command(intent)} for intent in WELCOME_MENU
            ],
        },
    }
    sku = request.query.get("product", "")
    if sku and len(sku) <= 40 and (product := await request.app[CATALOG].product(sku)) is not None:
        name = product.name_zh if language_of(language) == ZH and product.name_zh else product.name
        config["product"] = {
            "sku": product.sku,
            "name": name,
            "command": command("product_search", product=product.sku),
        }
    return web.json_response(config)


async def _web_language(request: web.Request, session_id: str) -> str:
    """The language of a web shopper we know, else the one their browser asks for first."""
    space, address = identity_key(WebChannel.name, session_id)

    def known(session: Session) -> str | None:
        return session.exec(
            select(Customer.language)
            .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
            .where(ChannelIdentity.channel == space, ChannelIdentity.address == address)
        ).first()

    language = await request.app[DB].run(known)
    if language:
        return language
    wanted = request.headers.get("Accept-Language", "").split(",")[0].strip().lower()
    return language_of(wanted)


async def web_link(request: web.Request) -> web.Response:
    """The widget's "Continue on ..." buttons: a link and a code for another channel."""
    session_id = _session(request)
    body = await read_object(request)
    channel = body.get("channel")
    available = [c for c in request.app[ACCOUNTS].channels() if c != WebChannel.name]
    if set(body) - {"channel"} or channel not in available:
        raise http_error(400, f"channel must be one of: {', '.join(available) or 'none configured'}")
    customer_id = await _web_customer(request, session_id)
    offer = await request.app[ACCOUNTS].offer(customer_id, channel, ("web", session_id))
    return web.json_response({"channel": channel, "url": offer.url, "code": offer.code, "minutes": offer.minutes})


async def web_history(request: web.Request) -> web.Response:
    session_id = _session(request)
    raw_after = request.query.get("after", "0")
    # int() would take " 5", "1_000" and other scripts' digits, and any size, which no column holds.
    if not (raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 19 and int(raw_after) <= MAX_ROW_ID):
        raise http_error(400, f"after must be a message id (0 to {MAX_ROW_ID})")
    after = int(raw_after)
    if not request.app[DB].is_sqlite:
        after = min(after, MAX_INT_ID)  # the same answer (nothing after it), in the column's range
    space, address = identity_key(WebChannel.name, session_id)

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
        mark_fetched(session, [r.id for r in rows if r.direction == "out" and r.channel == WebChannel.name])
        return rows

    rows = await request.app[DB].run(load)
    return web.json_response({"messages": [web_channel.render(r.id, r.direction, r.text, r.payload) for r in rows]})
