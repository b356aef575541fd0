"""The aiohttp application: its routes, middleware, start-up and shutdown. What it serves is
assembled by `service.wiring`; the handlers live in webhooks, webchat, pay, payment_webhooks,
paypal_webhooks, shipping_webhooks, shopify_webhooks, woocommerce_webhooks and the admin APIs."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.channel import ChannelAdapter
from bot.config import Settings
from bot.nlu import Recognizer
from bot.store.database import StoreUnavailable
from channels.registry import CHANNEL_CLASSES
from service import (
    agents_api,
    analytics_api,
    marketing_api,
    metrics,
    pay,
    payment_webhooks,
    paypal_webhooks,
    shipping_webhooks,
    shopify_webhooks,
    webchat,
    webhooks,
    woocommerce_webhooks,
)
from service.http import RETRY_AFTER_SECONDS, json_error, unavailable
from service.keys import (  # noqa: F401  (re-exported: tests and command lines read the app by them)
    ACCOUNTS,
    CATALOG,
    CHANNELS,
    DB,
    DEMO,
    ENGINE,
    LEARNING,
    METRICS,
    ORDERS,
    OUTBOX,
    PAYMENTS,
    SCHEDULER,
    SERVICES,
    SETTINGS,
    TASKS,
    TURN_SLOTS,
    WEB,
)
from service.security_headers import add_security_headers
from service.wiring import Services, build, build_recognizer, teach_shop  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)
BACKGROUND_TURNS = 3  # turns at once after webhook answers (see service/keys.py TURN_SLOTS)


def create_app(
    settings: Settings,
    recognizer: Recognizer | None = None,
    seed: bool = True,
    channels: dict[str, ChannelAdapter] | None = None,
    demo_history: bool = False,
) -> web.Application:
    """Build the whole service. Pass a `recognizer` to share one loaded model between apps."""
    # The process that runs the scheduler also starts the extra dispatchers of OUTBOX_WORKERS.
    services = build(
        settings,
        recognizer=recognizer,
        seed=seed,
        channels=channels,
        lead=settings.scheduler_in_process,
        demo_history=demo_history,
    )
    return app_for(services)


def app_for(services: Services) -> web.Application:
    """The web application serving these parts."""
    engine = services.engine  # made first: it loads the model and fits the recogniser
    learner = services.learner  # and the examples taught from the dashboard
    app = web.Application(client_max_size=webhooks.MAX_BODY_BYTES, middlewares=[error_middleware])
    app[SERVICES], app[SETTINGS], app[DB], app[ENGINE] = services, services.settings, services.db, engine
    app[WEB], app[ORDERS], app[PAYMENTS], app[CATALOG] = (
        services.web,
        services.orders,
        services.payments,
        services.catalog,
    )
    app[ACCOUNTS], app[CHANNELS], app[OUTBOX] = services.accounts, services.channels, services.outbox
    app[SCHEDULER], app[TASKS] = services.scheduler, set()
    app[METRICS] = services.metrics
    app[TURN_SLOTS] = asyncio.Semaphore(BACKGROUND_TURNS)
    add_security_headers(app, services.settings.base_url)
    app.router.add_get("/livez", livez)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    metrics.add_routes(app)
    webchat.add_routes(app)
    pay.add_routes(app)
    payment_webhooks.add_routes(app)
    shipping_webhooks.add_routes(app)
    shopify_webhooks.add_routes(app)
    woocommerce_webhooks.add_routes(app)
    paypal_webhooks.add_routes(app)
    webhooks.add_routes(app, CHANNEL_CLASSES)
    marketing_api.add_routes(app)
    analytics_api.add_routes(app)
    agents_api.add_routes(app, services.handoffs, services.settings)

    async def demo_then_schedule() -> None:
        try:
            await services.write_demo_history()
        except Exception:  # a demo without its history still serves
            log.exception("demo history failed")
        services.scheduler.start_leading()

    async def on_startup(app: web.Application) -> None:
        # A demo store seeded just now: the server answers and sends at once, and its history is
        # played in the background; the scheduler's jobs run once it is written, so they never
        # meet a simulated shopper half-way (service/demo_history.py).
        demo = services.demo_history_due
        await services.start_delivery(run_jobs=not demo)
        recovered = await engine.recover()
        if recovered:
            log.info("ran turns for stored messages left unprocessed", extra={"count": recovered})
            services.outbox.notify()
        if demo:  # after the recovery, which would otherwise take a simulated message for its own
            app[DEMO] = asyncio.create_task(demo_then_schedule())
        app[LEARNING] = asyncio.create_task(learner.watch(services.settings.nlu_sync_seconds))

    async def on_cleanup(app: web.Application) -> None:
        # The server has stopped listening (SIGTERM): finish the turns under way, then stop
        # delivery, which hands back what the outbox claimed and did not send.
        if app[TASKS]:
            log.info("finishing turns under way", extra={"count": len(app[TASKS])})
            await asyncio.gather(*app[TASKS], return_exceptions=True)
        if LEARNING in app:
            app[LEARNING].cancel()
        if DEMO in app and not app[DEMO].done():
            app[DEMO].cancel()
            await asyncio.gather(app[DEMO], return_exceptions=True)
        await services.close()

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


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers, and so does the store (a read, within its timeout)."""
    problem = await request.app[DB].check(write=False)
    if problem is not None:  # the store is down: say so, do not crash
        return web.json_response({"status": "unhealthy", "store": "unreachable", "reason": problem}, status=503)
    return web.json_response({"status": "ok", "store": "ok"})


async def livez(_request: web.Request) -> web.Response:
    """Liveness for an orchestrator: the process answers. Nothing else is asked, so a store that
    is down makes no one restart a process that would be fine once it is back."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store would take a write within its timeout, so a webhook would be stored;
    the model is loaded; and the store's schema is the newest revision, the one this version
    reads and writes. Each part is named in the answer; 503 with the reasons when one is not."""
    problem = await request.app[DB].check(write=True)
    parts = {"store": problem or "ok"}
    parts["model"] = "loaded" if request.app[SERVICES].model_loaded else "not loaded"
    if problem is None:
        parts["schema"] = await request.app[DB].schema_problem() or "ok"
    else:
        parts["schema"] = "unknown: the store did not answer"
    if any(value not in ("ok", "loaded") for value in parts.values()):
        return web.json_response(
            {"status": "unavailable", **parts}, status=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    return web.json_response({"status": "ready", **parts})
