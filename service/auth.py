"""Who may use the marketer and agent APIs and pages: a bearer `ADMIN_TOKEN`."""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.config import Settings
from service.http import bearer, http_error


def is_admin(settings: Settings, token: str | None) -> bool:
    """True for the configured admin token; with no token configured, nobody is."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    return bool(expected and token) and hmac.compare_digest(expected.encode(), token.encode())


def require_admin(settings: Settings, request: web.Request) -> None:
    """Raises 401 (no or wrong token) or 403 (admin APIs are off: no `ADMIN_TOKEN` set)."""
    if not settings.admin_token:
        raise http_error(403, "admin APIs are off: ADMIN_TOKEN is not set")
    if not is_admin(settings, bearer(request)):
        raise http_error(401, "missing or invalid bearer token", **{"WWW-Authenticate": "Bearer"})
