"""The Shopify Admin GraphQL API over aiohttp: one POST per query with the app's access token,
a timeout, the cost-based throttle respected, connections read page by page, and bulk operations
(a query Shopify runs on its side, whose result is one JSONL file read line by line)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

THROTTLE_RETRIES = 6  # a THROTTLED query is asked again after waiting; past this it fails
UNAVAILABLE_RETRIES = 2  # a 5xx, a 429 or no answer at all
RETRY_BASE_SECONDS = 0.5
BULK_POLL_SECONDS = 2.0  # how often a running bulk operation's status is asked
BULK_DONE = "COMPLETED"
BULK_RUNNING = ("CREATED", "RUNNING")

BULK_RUN = """
mutation BulkRunQuery($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""
BULK_STATUS = """
query BulkOperationStatus($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount rootObjectCount url partialDataUrl }
  }
}
"""


class ShopifyError(Exception):
    """Shopify refused the query (GraphQL errors, an HTTP error, user errors of a mutation)."""


class ShopifyUnavailable(ShopifyError):
    """Shopify did not answer usably in time, or kept throttling: asking again later is safe."""


@dataclass(frozen=True)
class Cost:
    """A query's cost and the bucket it drew from (`extensions.cost`)."""

    requested: float
    actual: float | None
    maximum: float
    available: float
    restore_rate: float

    @classmethod
    def of(cls, body: dict[str, Any]) -> Cost | None:
        cost = (body.get("extensions") or {}).get("cost")
        if not isinstance(cost, dict):
            return None
        status = cost.get("throttleStatus") or {}
        try:
            return cls(
                float(cost.get("requestedQueryCost") or 0),
                None if cost.get("actualQueryCost") is None else float(cost["actualQueryCost"]),
                float(status.get("maximumAvailable") or 0),
                float(status.get("currentlyAvailable") or 0),
                float(status.get("restoreRate") or 0),
            )
        except (TypeError, ValueError):
            return None

    def wait_seconds(self) -> float:
        """How long until the bucket holds what this query asks: (needed - available) / restoreRate."""
        if self.restore_rate <= 0:
            return 1.0
        return max(0.0, (self.requested - self.available) / self.restore_rate)


def _is_mutation(document: str) -> bool:
    return document.lstrip().startswith("mutation")


def _throttled(errors: Any) -> bool:
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
    )


@dataclass
class ShopifyClient:
    """One shop's Admin GraphQL endpoint, `{base}/admin/api/{version}/graphql.json`.

    `waits` records every throttle back-off (seconds), for the logs and the tests.
    """

    base: str
    version: str
    token: str
    timeout: float = 10.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    waits: list[float] = field(default_factory=list)
    last_cost: Cost | None = None
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings) -> ShopifyClient:
        return cls(
            settings.shopify_base,
            settings.shopify_api_version,
            settings.shopify_admin_token.get_secret_value(),
            settings.shopify_timeout_seconds,
        )

    @property
    def url(self) -> str:
        return f"{self.base.rstrip('/')}/admin/api/{self.version}/graphql.json"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def query(self, operation: str, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of one query or mutation (named `operation` in `document`). A query is
        asked again after a 5xx, a 429 or no answer; a mutation only after a 429 or THROTTLED,
        which Shopify did not run.

        Raises:
            ShopifyUnavailable: no usable answer in time, or still throttled after the retries.
            ShopifyError: Shopify refused it.
        """
        payload = {"query": document, "variables": variables or {}, "operationName": operation}
        headers = {"X-Shopify-Access-Token": self.token, "Content-Type": "application/json"}
        throttled = unavailable = 0
        while True:
            try:
                async with self._client().post(self.url, json=payload, headers=headers) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    body = await resp.json(content_type=None) if status < 500 else None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                status, body, retry_after = 0, None, None
                reason = type(exc).__name__
            else:
                reason = f"HTTP {status}"
            if status == 0 or status >= 500 or status == 429:
                unavailable += 1
                # A mutation without an answer may have been done (a 429 was not): its caller
                # looks before writing again (integrations/shopify/checkout.py).
                if unavailable > UNAVAILABLE_RETRIES or (status != 429 and _is_mutation(document)):
                    raise ShopifyUnavailable(f"{operation}: {reason}")
                wait = _seconds(retry_after) or RETRY_BASE_SECONDS * 2 ** (unavailable - 1)
                log.warning("shopify unavailable; asking again", extra={"operation": operation, "reason": reason})
                await self.sleep(wait)
                continue
            if status in (401, 403):
                raise ShopifyError(f"{operation}: HTTP {status} (check SHOPIFY_ADMIN_TOKEN and the app's scopes)")
            if not isinstance(body, dict):
                raise ShopifyError(f"{operation}: HTTP {status}, not a GraphQL answer")
            self.last_cost = Cost.of(body)
            errors = body.get("errors")
            if _throttled(errors):
                throttled += 1
                if throttled > THROTTLE_RETRIES:
                    raise ShopifyUnavailable(f"{operation}: still throttled after {THROTTLE_RETRIES} waits")
                wait = self.last_cost.wait_seconds() if self.last_cost else 1.0
                self.waits.append(wait)
                log.info("shopify throttled; waiting", extra={"operation": operation, "seconds": round(wait, 2)})
                await self.sleep(wait)
                continue
            if errors:
                messages = "; ".join(str(e.get("message", e))[:200] for e in errors if isinstance(e, dict))
                raise ShopifyError(f"{operation}: {messages or errors}")
            if status >= 400 or not isinstance(body.get("data"), dict):
                raise ShopifyError(f"{operation}: HTTP {status} without data")
            return body["data"]

    async def pages(
        self, operation: str, document: str, variables: dict[str, Any], path: tuple[str, ...]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The nodes of the connection at `path` in the answer, a page at a time, following
        `pageInfo.endCursor` through `$after` while `hasNextPage`."""
        after: str | None = None
        while True:
            data = await self.query(operation, document, {**variables, "after": after})
            connection: Any = data
            for key in path:
                connection = (connection or {}).get(key)
            if not isinstance(connection, dict):
                return
            yield [n for n in connection.get("nodes") or [] if isinstance(n, dict)]
            info = connection.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                return

    async def bulk_query(
        self,
        document: str,
        timeout: float,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The objects of a bulk operation running `document`, one JSONL line each (a nested
        connection's objects after their parent's, with `__parentId`; grouped under it). The
        operation is started, its status asked every `BULK_POLL_SECONDS` (`progress` gets its
        root object count) until it is done, and its file read as a stream: memory holds a
        line at a time.

        Raises:
            ShopifyUnavailable: the operation is not done within `timeout` seconds, or its file
                could not be read.
            ShopifyError: Shopify refused the query or the operation failed.
        """
        data = await self.query("BulkRunQuery", BULK_RUN, {"query": document})
        run = data.get("bulkOperationRunQuery") or {}
        errors = [e for e in run.get("userErrors") or [] if isinstance(e, dict)]
        if errors:
            messages = "; ".join(f"{e.get('code') or ''} {e.get('message', '')}".strip() for e in errors)
            raise ShopifyError(f"bulk operation refused: {messages}")
        operation = run.get("bulkOperation") or {}
        if not operation.get("id"):
            raise ShopifyError("bulk operation refused: no operation id in the answer")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            node = (await self.query("BulkOperationStatus", BULK_STATUS, {"id": operation["id"]})).get("node") or {}
            status = node.get("status")
            if progress is not None and isinstance(node.get("rootObjectCount"), (int, str)):
                progress(int(node["rootObjectCount"]))
            if status == BULK_DONE:
                break
            if status not in BULK_RUNNING:
                code = node.get("errorCode") or "no error code"
                raise ShopifyError(f"bulk operation {operation['id']} ended {status} ({code})")
            if asyncio.get_running_loop().time() >= deadline:
                raise ShopifyUnavailable(f"bulk operation {operation['id']} still {status} after {timeout:.0f} s")
            await self.sleep(BULK_POLL_SECONDS)
        if not node.get("url"):  # nothing matched the query: Shopify writes no file
            return
        async for line in self._jsonl(node["url"]):
            yield line

    async def _jsonl(self, url: str) -> AsyncIterator[dict[str, Any]]:
        """The objects of a bulk operation's JSONL file. The URL is signed: our token is not sent
        with it (it is another host's, a storage bucket's)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
                if resp.status != 200:
                    raise ShopifyUnavailable(f"bulk operation file: HTTP {resp.status}")
                rest = b""
                async for chunk in resp.content.iter_chunked(1 << 16):
                    lines = (rest + chunk).split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if line.strip():
                            yield _object(line)
                if rest.strip():
                    yield _object(rest)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ShopifyUnavailable(f"bulk operation file: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _seconds(value: str | None) -> float | None:
    try:
        return min(float(value), 60.0) if value else None
    except ValueError:
        return None


def _object(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise ShopifyError("bulk operation file: a line is not JSON") from None
    if not isinstance(value, dict):
        raise ShopifyError("bulk operation file: a line is not an object")
    return value
