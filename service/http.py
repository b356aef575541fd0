"""The HTTP helpers every handler uses: JSON errors, a provider webhook's refusal, reading a
bounded JSON body, bearer tokens."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from bot.channel import load_json
from integrations.webhook_auth import WebhookRefused

log = logging.getLogger(__name__)

BODY_BYTES = 64 * 1024  # an API or web chat body; webhooks have their own, larger bound
RETRY_AFTER_SECONDS = "5"

_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    503: web.HTTPServiceUnavailable,
}


def json_error(status: int, message: str, **headers: str) -> web.Response:
    """An error answer: `{"error": message}` with this status."""
    return web.json_response({"error": message}, status=status, headers=headers or None)


def http_error(status: int, message: str, **headers: str) -> web.HTTPException:
    """The same, as an exception to raise from deep in a handler."""
    return _ERRORS[status](
        text=json.dumps({"error": message}), content_type="application/json", headers=headers or None
    )


def refused(provider: str, exc: WebhookRefused) -> web.Response:
    """403 for a provider's webhook that did not prove it is the provider's; the log line is all
    that is left of it."""
    reason = f"{exc}: {exc.__cause__}" if exc.__cause__ is not None else str(exc)
    log.warning("webhook refused", extra={"provider": provider, "reason": reason[:200]})
    return json_error(403, f"{provider} webhook refused: {exc}")


def unavailable() -> web.Response:
    """503 with Retry-After: the store did not answer in time; the same request later will do."""
    return json_error(503, "the store is unavailable; try again shortly", **{"Retry-After": RETRY_AFTER_SECONDS})


async def read_body(request: web.Request, limit: int = BODY_BYTES) -> bytes:
    """The raw body, refused (413) past `limit` bytes, chunked bodies included."""
    if (request.content_length or 0) > limit:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length or 0)
    raw = bytearray()
    async for chunk in request.content.iter_any():  # a chunked body has no length to check first
        raw += chunk
        if len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(limit, len(raw))
    return bytes(raw)


async def read_json(request: web.Request, limit: int = BODY_BYTES) -> Any:
    """The body as JSON (any value), bounded in size and depth.

    Raises: 400 when it is not JSON, 413 when too large.
    """
    try:
        return load_json(await read_body(request, limit))
    except ValueError as exc:
        raise http_error(400, f"body must be JSON ({exc})" if "nested" in str(exc) else "body must be JSON")


async def read_object(
    request: web.Request, allowed: set[str] | None = None, empty_ok: bool = False, limit: int = BODY_BYTES
) -> dict[str, Any]:
    """The body as a JSON object, with only the `allowed` fields (when given).

    Raises: 400 for anything else, 413 when too large.
    """
    if empty_ok and not request.can_read_body:
        return {}
    raw = await read_body(request, limit)
    if empty_ok and not raw.strip():
        return {}
    try:
        body = load_json(raw)
    except ValueError as exc:
        raise http_error(400, f"body must be JSON ({exc})" if "nested" in str(exc) else "body must be JSON")
    if not isinstance(body, dict):
        raise http_error(400, "body must be a JSON object")
    if allowed is not None and (unknown := set(body) - allowed):
        raise http_error(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    return body


def bearer(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if any."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() or None if header.startswith("Bearer ") else None
