"""What the commerce platforms' webhooks share: the signature both Shopify and WooCommerce use,
what applying a delivery did, and applying it (recorded and acted on in one transaction; a
duplicate delivered at once is the other's; a body that cannot be applied is a 400)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from integrations.commerce.model import MappingError
from service.http import json_error
from service.keys import DB, OUTBOX, SERVICES

log = logging.getLogger(__name__)


def base64_hmac(secret: str, raw: bytes) -> str:
    """Base64 of the HMAC-SHA256 of the raw body (Shopify's and WooCommerce's signature)."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


@dataclass
class Handled:
    outcome: str
    queued: bool = False
    order: int | None = None
    catalog_changed: bool = False  # a product added or changed: the recogniser learns its name


async def apply_delivery(
    request: web.Request, platform: str, delivery: tuple[str, str], topic: str, handle: Callable[[Session], Handled]
) -> web.Response:
    """Run `handle` in one transaction and answer the platform; `delivery` is the name and value
    of the delivery's id for the log."""
    try:
        handled = await request.app[DB].run(handle)
    except IntegrityError:  # the same delivery twice at once: the other one has it
        handled = Handled("duplicate")
    except (MappingError, KeyError, TypeError, ValueError) as exc:
        log.warning(f"{platform} webhook not applied", extra={"topic": topic, "reason": str(exc)[:200]})
        return json_error(400, f"cannot apply {topic}: {str(exc)[:200]}")
    log.info(
        f"{platform} webhook",
        extra={delivery[0]: delivery[1], "topic": topic, "outcome": handled.outcome, "order": handled.order},
    )
    if handled.queued:
        request.app[OUTBOX].notify()
    if handled.catalog_changed:
        await request.app[SERVICES].relearn_catalog()
    return web.json_response({"received": True, "outcome": handled.outcome})
