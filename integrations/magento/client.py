"""Magento 2's REST API over aiohttp: the integration's access token as a bearer token, a
timeout, a few retries when the shop is unavailable, and searchCriteria lists read page by page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

UNAVAILABLE_RETRIES = 2  # a 5xx, a 429 or no answer at all
RETRY_BASE_SECONDS = 0.5
PAGE_SIZE = 100


class MagentoError(Exception):
    """Magento refused the request (a 4xx, or an answer that is not JSON)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class MagentoUnavailable(MagentoError):
    """Magento did not answer usably in time: asking again later is safe."""


@dataclass(frozen=True)
class Filter:
    """One searchCriteria filter: `field` `condition_type` `value` (eq, gt, gteq, in ...)."""

    field: str
    value: str
    condition_type: str = "eq"


def search_params(filters: list[Filter], page_size: int, page: int, sort: str | None = None) -> dict[str, str]:
    """The query parameters of a searchCriteria: each filter in a group of its own (AND)."""
    params: dict[str, str] = {}
    for i, f in enumerate(filters):
        prefix = f"searchCriteria[filter_groups][{i}][filters][0]"
        params[f"{prefix}[field]"] = f.field
        params[f"{prefix}[value]"] = f.value
        params[f"{prefix}[condition_type]"] = f.condition_type
    if sort:
        params["searchCriteria[sortOrders][0][field]"] = sort
        params["searchCriteria[sortOrders][0][direction]"] = "ASC"
    params["searchCriteria[pageSize]"] = str(page_size)
    params["searchCriteria[currentPage]"] = str(page)
    return params


def path_part(value: str) -> str:
    """A SKU in a path: Magento SKUs may hold '/' and spaces."""
    return quote(value, safe="")


@dataclass
class MagentoClient:
    """One store view's REST API, `{MAGENTO_URL}/rest/{store_code}/V1/`."""

    base: str
    token: str
    timeout: float = 10.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings) -> MagentoClient:
        return cls(settings.magento_base, settings.magento_token.get_secret_value(), settings.magento_timeout_seconds)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def call(self, method: str, path: str, params: dict[str, str] | None = None, json: Any = None) -> Any:
        """The JSON answer of one request.

        Raises:
            MagentoUnavailable: no usable answer in time (after the retries).
            MagentoError: Magento refused it.
        """
        url = f"{self.base.rstrip('/')}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        unavailable = 0
        while True:
            try:
                async with self._client().request(method, url, params=params, json=json, headers=headers) as resp:
                    status = resp.status
                    body = await resp.json(content_type=None) if status < 500 else None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                status, body, reason = 0, None, type(exc).__name__
            else:
                reason = f"HTTP {status}"
            if status == 0 or status >= 500 or status == 429:
                unavailable += 1
                if unavailable > UNAVAILABLE_RETRIES:
                    raise MagentoUnavailable(f"{method} {path}: {reason}", status)
                log.warning("magento unavailable; asking again", extra={"path": path, "reason": reason})
                await self.sleep(RETRY_BASE_SECONDS * 2 ** (unavailable - 1))
                continue
            if status in (401, 403):
                raise MagentoError(
                    f"{method} {path}: HTTP {status} (check MAGENTO_TOKEN and the integration's resources)", status
                )
            if status >= 400:
                message = body.get("message") if isinstance(body, dict) else None
                raise MagentoError(f"{method} {path}: HTTP {status} {str(message or '')[:200]}".strip(), status)
            return body

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self.call("GET", path, params)

    async def search(
        self, path: str, filters: list[Filter], page_size: int = PAGE_SIZE, sort: str | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], int]]:
        """The items of a searchCriteria list, a page at a time, with `total_count`.
        Magento answers a page past the end with the last page again, so the count stops it."""
        page, seen = 1, 0
        while True:
            body = await self.get(path, search_params(filters, page_size, page, sort))
            if not isinstance(body, dict):
                raise MagentoError(f"GET {path}: not a search result")
            items = [i for i in body.get("items") or [] if isinstance(i, dict)]
            total = int(body.get("total_count") or 0)
            yield items, total
            seen += len(items)
            if not items or seen >= total:
                return
            page += 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
