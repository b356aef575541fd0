"""The WooCommerce REST API v3 (`{WOOCOMMERCE_URL}/wp-json/wc/v3/`) over aiohttp: the consumer key
and secret as HTTP Basic, a timeout, a 5xx, a 429 or no answer asked again a few times, and
lists read page by page (`per_page`, `page`, `X-WP-TotalPages`)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

PER_PAGE = 100  # the most WooCommerce gives in one page
UNAVAILABLE_RETRIES = 2
RETRY_BASE_SECONDS = 0.5


class WooCommerceError(Exception):
    """WooCommerce refused the request (an HTTP error, not JSON)."""


class WooCommerceUnavailable(WooCommerceError):
    """WooCommerce did not answer usably in time: asking again later is safe."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    total: int | None  # X-WP-Total
    total_pages: int | None  # X-WP-TotalPages


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


@dataclass
class WooCommerceClient:
    base: str  # WOOCOMMERCE_URL
    key: str
    secret: str
    timeout: float = 10.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings) -> WooCommerceClient:
        return cls(
            settings.woocommerce_url,
            settings.woocommerce_key.get_secret_value(),
            settings.woocommerce_secret.get_secret_value(),
            settings.woocommerce_timeout_seconds,
        )

    def url(self, path: str) -> str:
        return f"{self.base.rstrip('/')}/wp-json/wc/v3/{path.lstrip('/')}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), auth=aiohttp.BasicAuth(self.key, self.secret)
            )
        return self._session

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None) -> Answer:
        """One call; a GET is asked again after a 5xx, a 429 or no answer. A write is not (it may
        have been done): its caller looks before writing again (see
        `integrations/woocommerce/checkout.py`).

        Raises:
            WooCommerceUnavailable: no usable answer after the retries.
            WooCommerceError: a 4xx, or an answer that is not JSON.
        """
        what = f"{method} {path}"
        tries = 0
        while True:
            try:
                async with self._client().request(method, self.url(path), params=params, json=json) as resp:
                    status = resp.status
                    text = await resp.text() if status < 500 else ""
                    headers = resp.headers
            except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
                status, body, headers, reason = 0, None, None, type(exc).__name__
            else:
                reason = f"HTTP {status}"
                body = _json(text)
            if status == 0 or status >= 500 or status == 429:
                tries += 1
                if tries > UNAVAILABLE_RETRIES or method != "GET":
                    raise WooCommerceUnavailable(f"{what}: {reason}")
                log.warning("woocommerce unavailable; asking again", extra={"request": what, "reason": reason})
                await self.sleep(RETRY_BASE_SECONDS * 2 ** (tries - 1))
                continue
            if status in (401, 403):
                raise WooCommerceError(f"{what}: HTTP {status} (check WOOCOMMERCE_KEY, WOOCOMMERCE_SECRET, Read/Write)")
            if status >= 400:
                message = body.get("message") if isinstance(body, dict) else None
                raise WooCommerceError(f"{what}: HTTP {status} {str(message or '')[:200]}".rstrip())
            assert headers is not None
            if body is None:  # a page of the site (a plugin's, a firewall's), not the API's answer
                raise WooCommerceError(f"{what}: HTTP {status}, not JSON (is WOOCOMMERCE_URL the WordPress site?)")
            return Answer(status, body, _int(headers.get("X-WP-Total")), _int(headers.get("X-WP-TotalPages")))

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return (await self.request("GET", path, params)).body

    async def post(self, path: str, json: Any) -> Any:
        return (await self.request("POST", path, json=json)).body

    async def pages(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Every item of a list, a page of `PER_PAGE` at a time, until `X-WP-TotalPages`."""
        page = 1
        while True:
            answer = await self.request("GET", path, {**(params or {}), "per_page": PER_PAGE, "page": page})
            if not isinstance(answer.body, list):
                raise WooCommerceError(f"GET {path}: not a list")
            yield [item for item in answer.body if isinstance(item, dict)]
            last = (
                answer.total_pages
                if answer.total_pages is not None
                else (page if len(answer.body) < PER_PAGE else page + 1)
            )
            if page >= last or not answer.body:
                return
            page += 1

    async def total(self, path: str, params: dict[str, Any] | None = None) -> int | None:
        """How many items a list has (`X-WP-Total` of its first page of one)."""
        return (await self.request("GET", path, {**(params or {}), "per_page": 1, "page": 1})).total

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
