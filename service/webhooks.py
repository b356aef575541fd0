"""The one webhook handler every channel's paths share: size limit, signature (403), parse (400),
store and dedupe, consent keywords, the provider's acknowledgement; the turns run after the
answer and their replies go out through the outbox. A provider's GET subscription check
(Meta's) is answered here too."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiohttp import web
from multidict import CIMultiDict

from bot.channel import ChannelAdapter, RawRequest
from bot.conversation.keywords import apply_keyword
from bot.delivery.outbox import apply_status
from bot.messages import InboundMessage, StatusUpdate
from bot.store.database import Database, StoreUnavailable
from service.http import json_error
from service.keys import CHANNELS, DB, ENGINE, METRICS, OUTBOX, SETTINGS, TASKS, TURN_SLOTS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Messenger batches can be large


def add_routes(app: web.Application, channel_classes: Iterable[type]) -> None:
    """A route for every path a channel declares, whether or not the channel is on (one that is
    off answers 404 and says so), and for its subscription check if it has one."""
    posts: list[str] = []
    gets: list[str] = []
    for cls in channel_classes:
        posts += [p for p in cls.webhook_paths if p not in posts]
        gets += [p for p in getattr(cls, "subscription_paths", ()) if p not in gets]
    for path in posts:
        app.router.add_post(path, webhook)
    for path in gets:
        app.router.add_get(path, subscription)


def channel_for(request: web.Request) -> ChannelAdapter | None:
    """The channel that is on and answers this path (the first one: Twilio's WhatsApp and SMS
    share their status path, and either reads a report of both)."""
    return next((c for c in request.app[CHANNELS].values() if request.path in c.webhook_paths), None)


def raw_request(request: web.Request, body: bytes) -> RawRequest:
    """The webhook as the provider signed it: our public URL (not the one behind a proxy)."""
    url = request.app[SETTINGS].base_url + request.rel_url.raw_path_qs  # still encoded, as signed
    return RawRequest(url, CIMultiDict(request.headers), body, dict(request.query), request.path)


async def webhook(request: web.Request) -> web.Response:
    """Handle a provider's webhook, counting its answer and how long it took by channel and status."""
    started = time.monotonic()
    channel = channel_for(request)
    status = 500
    try:
        response = await handle_webhook(request, channel)
        status = response.status
        return response
    except StoreUnavailable:
        status = 503  # answered by the error middleware
        raise
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        name = channel.name if channel is not None else "unconfigured"
        request.app[METRICS].webhook(name, status, time.monotonic() - started)


async def handle_webhook(request: web.Request, channel: ChannelAdapter | None) -> web.Response:
    if channel is None:
        return json_error(404, f"the channel for {request.path} is not configured")
    req = raw_request(request, await request.read())
    if not channel.verify(req):
        log.warning("webhook signature refused", extra={"channel": channel.name})
        return json_error(403, "invalid signature")
    try:
        events = channel.parse(req)
    except (ValueError, UnicodeDecodeError) as exc:
        return json_error(400, f"malformed webhook: {exc}")
    engine, db = request.app[ENGINE], request.app[DB]
    # Each event is stored on its own: one the store refuses is logged and skipped, and never
    # fails its neighbours. A store that does not answer fails the whole request with a 503
    # (StoreUnavailable): the provider retries, and what was stored already is a duplicate then.
    await apply_statuses(db, [e for e in events if isinstance(e, StatusUpdate)])
    for message in (e for e in events if isinstance(e, InboundMessage)):
        try:
            received = await engine.receive(message)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("inbound message refused by the store; skipped", extra={"channel": channel.name})
            continue
        if received.duplicate and received.processed:
            continue
        if keyword := channel.keyword(message.text):
            handled = await db.run(
                lambda s: apply_keyword(s, received.message_id, received.customer_id, channel.name, keyword)
            )
            if handled:
                continue
        in_background(request.app, turn_then_send(request.app, received))
    ack = channel.acknowledge(req)
    return web.Response(status=ack.status, text=ack.body or None, content_type=ack.content_type)


async def subscription(request: web.Request) -> web.Response:
    """A provider's check that the URL is ours (Meta: `hub.verify_token`, echo `hub.challenge`)."""
    channel = channel_for(request)
    if channel is None:
        return json_error(404, f"the channel for {request.path} is not configured")
    challenge = channel.subscription(dict(request.query))
    if challenge is None:
        return web.Response(status=403, text="verify token mismatch")
    return web.Response(text=challenge)


async def apply_statuses(db: Database, updates: list[StatusUpdate]) -> None:
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


async def turn_then_send(app: web.Application, received) -> None:
    try:
        await app[ENGINE].run_turn(received, slots=app[TURN_SLOTS])
    except Exception:  # the message stays stored: a provider retry or the next start runs it again
        log.exception("turn failed", extra={"record_id": received.message_id})
        await app[ENGINE].record_failure(received)
        return
    app[OUTBOX].notify()


def in_background(app: web.Application, coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)
