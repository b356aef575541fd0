"""Marketer and retailer APIs (bearer ADMIN_TOKEN): campaigns, inventory changes, shipments,
metrics; the click redirect of campaign links; the marketer page under /admin/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import func
from sqlmodel import Session, select

from bot.config import Settings
from bot.delivery import clicks
from bot.marketing import campaigns
from bot.marketing.campaigns import CampaignError
from bot.marketing.reminders import notify_restocked, recovery
from bot.marketing.scheduler import ShopScheduler, drop, hold
from bot.store.database import Database
from bot.store.models import Campaign, Dispatch, MessageRecord, Variant, WaitlistEntry, as_utc, utcnow
from integrations.orders import checkout_rules
from integrations.shipments import ShipmentError, ship_order
from service.auth import require_admin
from service.http import http_error, json_error, read_json
from service.keys import DB, SCHEDULER, SERVICES, SETTINGS

ADMIN_PAGE = Path(__file__).resolve().parent.parent / "channels" / "web_static" / "admin" / "index.html"
MAX_STOCK = 1_000_000
MAX_ORDER_NUMBER = 999_999_999


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/campaigns", list_campaigns)
    r.add_post("/api/campaigns", create_campaign)
    r.add_post("/api/campaigns/preview", preview_draft)
    r.add_get("/api/campaigns/{id}", get_campaign)
    r.add_get("/api/campaigns/{id}/preview", preview_campaign)
    r.add_post("/api/campaigns/{id}/schedule", schedule_campaign)
    r.add_post("/api/campaigns/{id}/pause", pause_campaign)
    r.add_post("/api/campaigns/{id}/resume", resume_campaign)
    r.add_post("/api/campaigns/{id}/cancel", cancel_campaign)
    r.add_put("/api/inventory/{sku}", set_stock)
    r.add_post("/api/orders/{number}/shipment", record_shipment)
    r.add_get("/api/metrics", metrics)
    r.add_get("/r/{key}/{signature}", click)
    r.add_get("/admin", lambda request: web.HTTPFound("/admin/"))
    r.add_get("/admin/", admin_page)


def _deps(request: web.Request) -> tuple[Settings, Database, ShopScheduler]:
    settings = request.app[SETTINGS]
    require_admin(settings, request)
    return settings, request.app[DB], request.app[SCHEDULER]


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise http_error(404, "no such campaign") from None


def _conversion_window(settings: Settings) -> timedelta:
    return timedelta(days=settings.conversion_window_days)


async def list_campaigns(request: web.Request) -> web.Response:
    settings, db, scheduler = _deps(request)

    def load(session: Session):
        rows = session.exec(select(Campaign).order_by(Campaign.id.desc()).limit(200)).all()
        return [
            {**campaigns.view(c), "stats": campaigns.stats(session, c.id, _conversion_window(settings))} for c in rows
        ]

    items = await db.run(load)
    for item in items:
        item["next_run_at"] = _iso(scheduler.next_run(item["id"]))
    return web.json_response({"campaigns": items})


async def create_campaign(request: web.Request) -> web.Response:
    _, db, _ = _deps(request)
    try:
        spec = campaigns.parse_spec(await read_json(request))
    except CampaignError as exc:
        return json_error(400, str(exc))
    campaign = await db.run(lambda s: campaigns.create(s, spec))
    return web.json_response(campaigns.view(campaign), status=201)


async def preview_draft(request: web.Request) -> web.Response:
    """Audience size and a rendered sample of a campaign not saved yet."""
    _, db, _ = _deps(request)
    try:
        spec = campaigns.parse_spec(await read_json(request))
    except CampaignError as exc:
        return json_error(400, str(exc))
    draft = Campaign(name=spec.name, segment=spec.segment, messages=spec.messages, templates=spec.templates)
    policy = request.app[SCHEDULER].p.policy
    return web.json_response(await db.run(lambda s: campaigns.preview(s, draft, policy, utcnow(), 3)))


async def get_campaign(request: web.Request) -> web.Response:
    settings, db, scheduler = _deps(request)
    campaign_id = _id(request)

    def load(session: Session):
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return None
        return {
            **campaigns.view(campaign),
            "stats": campaigns.stats(session, campaign_id, _conversion_window(settings)),
        }

    item = await db.run(load)
    if item is None:
        return json_error(404, "no such campaign")
    item["next_run_at"] = _iso(scheduler.next_run(campaign_id))
    return web.json_response(item)


async def preview_campaign(request: web.Request) -> web.Response:
    _, db, scheduler = _deps(request)
    policy = scheduler.p.policy
    campaign_id = _id(request)

    def load(session: Session):
        campaign = session.get(Campaign, campaign_id)
        return None if campaign is None else campaigns.preview(session, campaign, policy, utcnow(), 3)

    result = await db.run(load)
    return web.json_response(result) if result is not None else json_error(404, "no such campaign")


async def schedule_campaign(request: web.Request) -> web.Response:
    """Body (optional): {"send_at": ISO time} or {"cron": "0 10 * * MON"}; neither = now."""
    _, db, scheduler = _deps(request)
    campaign_id = _id(request)
    body = await read_json(request) if request.can_read_body else {}
    if not isinstance(body, dict) or set(body) - {"send_at", "cron"}:
        return json_error(400, "give send_at or cron, or nothing to send now")
    try:
        send_at, cron = campaigns.parse_when(body.get("send_at"), body.get("cron"))
    except CampaignError as exc:
        return json_error(400, str(exc))
    return await change(db, scheduler, campaign_id, "schedule", send_at, cron)


async def pause_campaign(request: web.Request) -> web.Response:
    _, db, scheduler = _deps(request)
    return await change(db, scheduler, _id(request), "pause")


async def resume_campaign(request: web.Request) -> web.Response:
    _, db, scheduler = _deps(request)
    return await change(db, scheduler, _id(request), "resume")


async def cancel_campaign(request: web.Request) -> web.Response:
    _, db, scheduler = _deps(request)
    return await change(db, scheduler, _id(request), "cancel")


async def change(
    db: Database, scheduler: ShopScheduler, campaign_id: int, action: str, send_at=None, cron=None
) -> web.Response:
    """Schedule, pause, resume or cancel; the one place these state changes happen (API and CLI)."""
    try:
        view = await apply_change(db, scheduler, campaign_id, action, send_at, cron)
    except LookupError:
        return json_error(404, "no such campaign")
    except CampaignError as exc:
        return json_error(409, str(exc))
    return web.json_response(view)


async def apply_change(
    db: Database, scheduler: ShopScheduler, campaign_id: int, action: str, send_at=None, cron=None
) -> dict[str, Any]:
    """Raises: LookupError (no such campaign), CampaignError (not allowed in its state)."""

    def update(session: Session) -> Campaign:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise LookupError(campaign_id)
        status = campaign.status
        if action == "schedule":
            if status not in ("draft", "scheduled", "paused"):
                raise CampaignError(f"a {status} campaign cannot be scheduled")
            if send_at is not None or cron is not None:
                campaign.send_at, campaign.cron = send_at, cron
            if send_at is None and cron is None and status == "draft" and not campaign.cron:
                campaign.send_at = campaign.send_at or utcnow()
            campaign.status = "running" if status == "paused" and campaign.cursor else "scheduled"
        elif action == "pause":
            if status not in ("scheduled", "running"):
                raise CampaignError(f"a {status} campaign cannot be paused")
            campaign.status = "paused"
            hold(session, campaign_id, True)
        elif action == "resume":
            if status != "paused":
                raise CampaignError(f"only a paused campaign can be resumed, this one is {status}")
            campaign.status = "running" if campaign.cursor else "scheduled"
            hold(session, campaign_id, False)
        elif action == "cancel":
            if status in ("done", "cancelled"):
                raise CampaignError(f"a {status} campaign cannot be cancelled")
            campaign.status = "cancelled"
            drop(session, campaign_id)
        campaign.updated_at = utcnow()
        return campaign

    campaign = await db.run(update)
    if campaign.status == "scheduled":
        scheduler.schedule(campaign)
    elif campaign.status == "running":  # resumed mid-run: carry on from its cursor
        scheduler.resume_now(campaign_id)
    elif campaign.status in ("paused", "cancelled"):
        scheduler.unschedule(campaign_id)
    scheduler.p.run_context.on_batch()
    return {**campaigns.view(campaign), "next_run_at": _iso(scheduler.next_run(campaign_id))}


async def set_stock(request: web.Request) -> web.Response:
    """{"stock": N}: the stock of one variant; going from 0 to more tells its waitlist."""
    settings, db, scheduler = _deps(request)
    sku = request.match_info["sku"]
    body = await read_json(request)
    stock = body.get("stock") if isinstance(body, dict) else None
    if type(stock) is not int or not 0 <= stock <= MAX_STOCK:
        return json_error(400, f"stock must be a whole number from 0 to {MAX_STOCK}")

    def update(session: Session):
        variant = session.get(Variant, sku, with_for_update=not db.is_sqlite)
        if variant is None:
            return None
        before, variant.stock = variant.stock, stock
        session.flush()
        notified = {}
        if before == 0 and stock > 0:
            notified = notify_restocked(session, scheduler.p.policy, scheduler.p.reminders, utcnow())
        return {"sku": sku, "stock": stock, "previous": before, "waitlist": notified}

    result = await db.run(update)
    if result is None:
        return json_error(404, "no such variant")
    scheduler.p.run_context.on_batch()
    return web.json_response(result)


async def record_shipment(request: web.Request) -> web.Response:
    """{"carrier", "tracking_number"}: a paid order has shipped; the shopper is told."""
    settings, db, scheduler = _deps(request)
    raw = request.match_info["number"].removeprefix("#")
    if not raw.isdecimal() or not 0 < int(raw) <= MAX_ORDER_NUMBER:
        return json_error(404, f"no order #{raw}")
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) != {"carrier", "tracking_number"}:
        return json_error(400, 'the body must be {"carrier": ..., "tracking_number": ...} and nothing else')
    try:
        result = await ship_order(
            db,
            scheduler.p.policy,
            checkout_rules(settings).estimate,
            int(raw),
            body["carrier"],
            body["tracking_number"],
            utcnow(),
            settings.whatsapp_shipping_template_sid,
            request.app[SERVICES].shipping,
        )
    except ShipmentError as exc:
        return json_error(exc.status, exc.message)
    scheduler.p.run_context.on_batch()  # wake the outbox
    return web.json_response(result)


async def metrics(request: web.Request) -> web.Response:
    _, db, _ = _deps(request)

    def load(session: Session):
        outbox = dict(
            session.exec(
                select(MessageRecord.status, func.count())
                .where(MessageRecord.direction == "out")
                .group_by(MessageRecord.status)
            ).all()
        )
        proactive = {
            f"{source}:{status}": n
            for source, status, n in session.exec(
                select(Dispatch.source, Dispatch.status, func.count()).group_by(Dispatch.source, Dispatch.status)
            ).all()
        }
        return {"carts": recovery(session), "outbox": outbox, "proactive": proactive}

    return web.json_response(await db.run(load))


async def click(request: web.Request) -> web.Response:
    """A tracked link (a campaign's or a reminder's): the first click is recorded, then it opens
    the shop. A link that is not ours (a wrong signature) is a 404 and records nothing."""
    key, signature = request.match_info["key"], request.match_info["signature"]
    if not request.app[SCHEDULER].p.run_context.links.valid(key, signature):
        raise web.HTTPNotFound()

    def record(session: Session) -> str:
        dispatch = clicks.record_click(session, key, utcnow())
        if dispatch is None:
            return "/"
        if dispatch.source == "restock":
            entry = session.get(WaitlistEntry, dispatch.source_id)
            variant = session.get(Variant, entry.variant_sku) if entry is not None else None
            return landing({"product": variant.product_sku} if variant is not None else None)
        campaign = session.get(Campaign, dispatch.source_id) if dispatch.source == "campaign" else None
        return landing(campaign.link if campaign is not None else None)

    raise web.HTTPFound(await request.app[DB].run(record))


def landing(link: dict[str, str] | None) -> str:
    """Where a campaign link opens: the product in the shop's chat, the marketer's page, or home."""
    if link and link.get("product"):
        return "/?" + urlencode({"product": link["product"]})
    if link and link.get("url"):
        return link["url"]
    return "/"


async def admin_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(ADMIN_PAGE)


def _iso(moment) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None
