"""The retailer's dashboard over HTTP (bearer ADMIN_TOKEN, as the marketer API): the figures as
JSON (`GET /api/analytics`), each table as CSV, the rendered dashboard for the page, and the page
itself (`GET /admin/analytics`, which signs in as the marketer page does)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import analytics, learning
from bot.store.models import utcnow
from service.analytics_page import render, tables
from service.auth import require_admin
from service.http import http_error
from service.keys import DB, ENGINE, SERVICES, SETTINGS

PAGE = Path(__file__).resolve().parent.parent / "channels" / "web_static" / "admin" / "analytics.html"
DEFAULT_DAYS = 30
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
REVIEW_TEXTS = 200  # distinct not-understood messages put through the model for grouping


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/analytics", report)
    app.router.add_get("/api/analytics/dashboard", dashboard)
    app.router.add_get("/admin/analytics", page)
    app.router.add_post("/api/analytics/review/{group}/teach", teach)


def period_from(query: Any) -> analytics.Period:
    """The period a request asks for: `from` and `to` (YYYY-MM-DD, both included; the last 30 days
    by default), `channel` and `language` (all when absent).

    Raises: 400 for a date that is not one, `to` before `from`, a period too long, a bad name.
    """
    today = utcnow().date()

    def day(name: str, default: date) -> date:
        raw = query.get(name)
        if raw in (None, ""):
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise http_error(400, f"`{name}` must be a date as YYYY-MM-DD, not {raw[:40]!r}") from None

    end = day("to", today)
    start = day("from", end - timedelta(days=DEFAULT_DAYS - 1))
    names = {}
    for name in ("channel", "language"):
        raw = query.get(name) or None
        if raw is not None and not _NAME.fullmatch(raw):
            raise http_error(400, f"`{name}` must be a channel or language name such as web or zh-TW")
        names[name] = raw
    try:
        return analytics.Period(start, end, names["channel"], names["language"])
    except analytics.PeriodError as exc:
        raise http_error(400, str(exc)) from None


async def _figures(request: web.Request, period: analytics.Period, review: bool = True) -> dict[str, Any]:
    minutes = request.app[SETTINGS].agent_minutes_per_conversation
    figures = await request.app[DB].run(lambda s: analytics.report(s, period, minutes))
    if review:
        figures["not_understood"] = analytics.shown(await not_understood(request, period))
    return figures


async def not_understood(request: web.Request, period: analytics.Period) -> list[dict[str, Any]]:
    """The period's fallback and handoff messages, masked, grouped by the sentence model (through
    the recogniser's batcher, which the turns share)."""
    items = await request.app[DB].run(lambda s: analytics.not_understood(s, period))
    distinct = list(dict.fromkeys(text for text, _ in items))[:REVIEW_TEXTS]
    batcher = request.app[ENGINE].recognizer.batcher
    analyses = await asyncio.gather(*(batcher.submit(text.lower()) for text in distinct))
    return analytics.group(items, {text: a.vector for text, a in zip(distinct, analyses, strict=True)})


async def teach(request: web.Request) -> web.Response:
    """`{"intent": NAME}` or `{"faq": KEY}` (optionally `"example"`: the group's first text as the
    page showed it, checked): the messages of group number `{group}` of the "not understood" list
    of the period in the query become examples of that intent or FAQ entry, in use here when this
    answers and in the other processes within NLU_SYNC_SECONDS. Texts with masked parts are left
    out. 400 for a bad body, 404 for no such group, 409 when the group is not the one shown or
    has nothing that may be taught."""
    require_admin(request.app[SETTINGS], request)
    period = period_from(request.query)
    raw = request.match_info["group"]
    if not raw.isdigit() or not 1 <= int(raw) <= analytics.REVIEW_LIMIT:
        raise http_error(400, "the group is its number in the list, from 1")
    try:
        body = await request.json()
    except ValueError:
        raise http_error(400, "the body must be JSON") from None
    if not isinstance(body, dict) or not all(isinstance(body.get(k, ""), str) for k in ("intent", "faq", "example")):
        raise http_error(400, 'the body is {"intent": NAME} or {"faq": KEY}')
    groups = await not_understood(request, period)
    number = int(raw)
    if number > len(groups):
        raise http_error(404, f"no group {number}: the list has {len(groups)}")
    found = groups[number - 1]
    if body.get("example") and body["example"] != found["example"]:
        raise http_error(409, "the list has changed since it was shown: reload it")
    services = request.app[SERVICES]
    faq_keys = list(services.faq.phrasings())
    try:
        added = await request.app[DB].run(
            lambda s: learning.teach(s, found["members"], body.get("intent"), body.get("faq"), faq_keys)
        )
    except learning.TeachError as exc:
        status = 409 if isinstance(exc, learning.NothingToTeach) else 400
        raise http_error(status, str(exc)) from None
    await services.learner.refresh()
    taught = learning.teachable(found["members"])
    return web.json_response(
        {"group": number, "added": added, "examples": taught, "left_out": len(found["members"]) - len(taught)}
    )


async def report(request: web.Request) -> web.StreamResponse:
    """The figures as JSON; with `format=csv&table=NAME` one of the page's tables as CSV."""
    require_admin(request.app[SETTINGS], request)
    period = period_from(request.query)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise http_error(400, "`format` is json or csv")
    figures = await _figures(request, period)
    if fmt == "json":
        return web.json_response(figures)
    made = tables(figures)
    name = request.query.get("table", "daily")
    if name not in made:
        raise http_error(400, f"`table` is one of {', '.join(made)}")
    header, rows = made[name]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    filename = f"analytics-{name}-{period.start}-{period.end}.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def dashboard(request: web.Request) -> web.Response:
    """The dashboard as HTML for the page: tiles against the previous period, SVG charts, tables."""
    require_admin(request.app[SETTINGS], request)
    period = period_from(request.query)
    current = await _figures(request, period)
    previous = await _figures(request, period.previous(), review=False)
    faq_keys = request.app[SERVICES].faq.phrasings()
    choices = [f"intent:{i}" for i in learning.TEACHABLE_INTENTS] + [f"faq:{k}" for k in faq_keys]
    return web.Response(
        text=render(current, previous, choices, request.app[SETTINGS].currency), content_type="text/html"
    )


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE)
