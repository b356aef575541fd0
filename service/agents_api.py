"""The agent console: the JSON API under /api/handoffs, the page at /admin/agents, and the
background check that re-queues tickets whose agent went silent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.handoff.service import Actor, HandoffError, Handoffs, agent_problem
from service.auth import is_admin
from service.http import bearer, http_error, read_object

log = logging.getLogger(__name__)

HANDOFFS = web.AppKey("handoffs", Handoffs)
HANDOFF_SETTINGS = web.AppKey("handoff_settings", Settings)
PAGE = Path(__file__).resolve().parent.parent / "channels" / "web_static" / "agents.html"
ACTIONS = {"claim": set(), "reply": {"text"}, "note": {"text"}, "transfer": {"agent_id", "topic"}, "resolve": set()}
STATUSES = {"open", "queued", "assigned", "resolved", "mine"}


def add_routes(app: web.Application, handoffs: Handoffs, settings: Settings) -> None:
    app[HANDOFFS], app[HANDOFF_SETTINGS] = handoffs, settings
    app.router.add_get("/admin/agents", page)
    app.router.add_get("/api/handoffs", list_tickets)
    app.router.add_get("/api/handoffs/me", whoami)
    app.router.add_post("/api/handoffs/me", update_me)
    app.router.add_get("/api/handoffs/agents", list_agents)
    app.router.add_post("/api/handoffs/agents", create_agent)
    app.router.add_get(r"/api/handoffs/{ticket:\d+}", get_ticket)
    app.router.add_post(r"/api/handoffs/{ticket:\d+}/{action:claim|reply|note|transfer|resolve}", act)
    app.cleanup_ctx.append(_sweeper)


async def actor(request: web.Request, admin_only: bool = False) -> Actor:
    """Who is calling: the admin (`ADMIN_TOKEN`) or an agent (their own token).

    Raises: 401 without a valid token; 403 for an agent on an admin-only call, or when there is
    no admin token and the caller is no agent.
    """
    settings, handoffs = request.app[HANDOFF_SETTINGS], request.app[HANDOFFS]
    token = bearer(request)
    if token and is_admin(settings, token):
        return Actor("admin")
    found = await handoffs.db.run(lambda s: handoffs.authenticate(s, token)) if token else None
    if found is not None:
        if admin_only:
            raise http_error(403, "this needs the admin token")
        return found
    if not settings.admin_token:
        raise http_error(403, "the agent console is off: ADMIN_TOKEN is not set and the token is no agent's")
    raise http_error(401, "missing or invalid bearer token", **{"WWW-Authenticate": "Bearer"})


async def _run(request: web.Request, fn: Callable[[Any], Any]) -> Any:
    """Run a handoff operation in one transaction; its refusals become 4xx answers."""
    try:
        return await request.app[HANDOFFS].db.run(fn)
    except HandoffError as exc:
        raise http_error(exc.status, exc.message)


async def page(request: web.Request) -> web.FileResponse:
    # The page itself holds no data; it asks for a token and calls the API with it.
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-store"})


async def whoami(request: web.Request) -> web.Response:
    who = await actor(request)
    handoffs = request.app[HANDOFFS]
    agent = None
    if not who.is_admin:
        agent = next((a for a in await handoffs.db.run(handoffs.agents) if a["id"] == who.agent_id), None)
    return web.json_response({"name": who.name, "admin": who.is_admin, "agent": agent})


async def update_me(request: web.Request) -> web.Response:
    """An agent says whether they take new tickets: `{"available": true}`."""
    who = await actor(request)
    body = await read_object(request, empty_ok=True, allowed={"available"})
    if who.is_admin:
        raise http_error(400, "the admin is not an agent and is never routed tickets")
    if not isinstance(body.get("available"), bool):
        raise http_error(400, "available must be true or false")
    handoffs = request.app[HANDOFFS]

    def run(session):
        handoffs.set_available(session, who, body["available"])
        session.flush()
        return handoffs.route(session)

    await _run(request, run)
    return web.json_response({"available": body["available"]})


async def list_agents(request: web.Request) -> web.Response:
    await actor(request)
    handoffs = request.app[HANDOFFS]
    return web.json_response({"agents": await handoffs.db.run(handoffs.agents)})


async def create_agent(request: web.Request) -> web.Response:
    """`{"name", "languages"?, "topics"?, "capacity"?}` -> the agent and their token (shown once)."""
    await actor(request, admin_only=True)
    body = await read_object(request, empty_ok=True, allowed={"name", "languages", "topics", "capacity"})
    name, capacity = body.get("name"), body.get("capacity", 3)
    languages, topics = body.get("languages", []), body.get("topics", [])
    problem = agent_problem(name, languages, topics, capacity)
    if problem:
        raise http_error(400, problem)
    handoffs = request.app[HANDOFFS]
    agent, token = await handoffs.db.run(lambda s: handoffs.create_agent(s, name.strip(), languages, topics, capacity))
    log.info("agent created", extra={"agent_id": agent.id})
    return web.json_response({"id": agent.id, "name": agent.name, "token": token}, status=201)


async def list_tickets(request: web.Request) -> web.Response:
    who = await actor(request)
    status = request.query.get("status", "open")
    if status not in STATUSES:
        raise http_error(400, f"status must be one of: {', '.join(sorted(STATUSES))}")
    handoffs = request.app[HANDOFFS]
    tickets = await handoffs.db.run(lambda s: handoffs.listing(s, status, who))
    return web.json_response({"tickets": tickets})


async def get_ticket(request: web.Request) -> web.Response:
    await actor(request)
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise http_error(400, "after must be a message id")
    ticket_id = int(request.match_info["ticket"])
    handoffs = request.app[HANDOFFS]
    return web.json_response(await _run(request, lambda s: handoffs.detail(s, ticket_id, after)))


async def act(request: web.Request) -> web.Response:
    """claim, reply `{"text"}`, note `{"text"}`, transfer `{"agent_id"?: int|null, "topic"?}`, resolve."""
    who = await actor(request)
    action, ticket_id = request.match_info["action"], int(request.match_info["ticket"])
    body = await read_object(request, empty_ok=True, allowed=ACTIONS[action])
    handoffs = request.app[HANDOFFS]
    operations: dict[str, Callable[[Any], Any]] = {
        "claim": lambda s: handoffs.claim(s, ticket_id, who),
        "reply": lambda s: handoffs.reply(s, ticket_id, who, body.get("text")),
        "note": lambda s: handoffs.note(s, ticket_id, who, body.get("text")),
        "transfer": lambda s: handoffs.transfer(s, ticket_id, who, _agent_id(body), _topic(body)),
        "resolve": lambda s: handoffs.resolve(s, ticket_id, who),
    }
    await _run(request, operations[action])
    if action in ("reply", "resolve"):
        handoffs.notify()
    detail = await _run(request, lambda s: handoffs.detail(s, ticket_id))
    return web.json_response(detail, status=201 if action in ("reply", "note") else 200)


def _agent_id(body: dict[str, Any]) -> int | None:
    value = body.get("agent_id")
    if value is not None and type(value) is not int:
        raise http_error(400, "agent_id must be an agent's id, or null for the queue")
    return value


def _topic(body: dict[str, Any]) -> str | None:
    value = body.get("topic")
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 40):
        raise http_error(400, "topic must be a short string")
    return value


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Every HANDOFF_CHECK_SECONDS: re-queue tickets of silent agents (telling the shopper) and
    route queued tickets to agents who became free."""
    handoffs, interval = app[HANDOFFS], max(0.05, app[HANDOFF_SETTINGS].handoff_check_seconds)

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await handoffs.db.run(handoffs.sweep):
                    handoffs.notify()
            except Exception:  # keep checking; the next round tries again
                log.exception("handoff check failed")

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
