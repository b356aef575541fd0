"""`GET /metrics`: the service's operations metrics in Prometheus' text format. Open by default;
with `METRICS_TOKEN` set, a scraper must send it as `Authorization: Bearer ...`."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.delivery.outbox import pending_by_channel
from bot.metrics import CONTENT_TYPE
from service.http import bearer
from service.keys import CHANNELS, DB, METRICS, SETTINGS

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)


def allowed(request: web.Request) -> bool:
    """No `METRICS_TOKEN`: anyone may scrape; else only with that bearer token."""
    secret = request.app[SETTINGS].metrics_token
    expected = secret.get_secret_value() if secret else ""
    if not expected:
        return True
    token = bearer(request) or ""
    return bool(token) and hmac.compare_digest(expected.encode(), token.encode())


async def metrics(request: web.Request) -> web.Response:
    if not allowed(request):
        return web.Response(
            status=401, text="missing or invalid bearer token\n", headers={"WWW-Authenticate": "Bearer"}
        )
    app_metrics, db = request.app[METRICS], request.app[DB]
    # The messages waiting per channel: one grouped count on the outbox's own index, at scrape time.
    try:
        pending = await db.run(pending_by_channel, deadline=db.timeout)
    except Exception as exc:  # the rest is still worth scraping; the gauge keeps its last values
        log.warning("outbox pending count failed", extra={"reason": str(exc)})
    else:
        channels: dict = request.app[CHANNELS]
        app_metrics.set_pending(list(channels), pending)
    return web.Response(body=app_metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
