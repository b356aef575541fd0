"""Reading Shopify's catalog through the Admin API and keeping the store's copy of it: the full
sync (`python app.py catalog sync`), the scheduled reconcile of what changed since the last one,
and the time of the last sync."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.delivery.policy import Policy
from bot.marketing.reminders import ReminderSettings, notify_restocked
from bot.store.database import Database
from bot.store.models import StateRecord, utcnow
from integrations.shopify.client import ShopifyClient
from integrations.shopify.mapping import MappingError, ShopProduct, from_graphql, parse_time
from integrations.shopify.mirror import SyncSummary, apply_product, remove_unseen

log = logging.getLogger(__name__)

# Page sizes keep a query's requested cost under Shopify's limit of 1,000 a query:
# 4 products x (20 variants x (3 locations + item) + media) is about 900.
PRODUCTS_PAGE = 4
VARIANTS_PAGE = 20
LEVELS_PAGE = 3
LAST_SYNC_KEY = "commerce-sync/shopify/products"
# A product updated while a sync read the pages may not be in them: the next reconcile starts
# this much before the sync did.
SYNC_OVERLAP = timedelta(minutes=2)

VARIANT_FIELDS = f"""
  id sku price
  selectedOptions {{ name value }}
  inventoryItem {{
    id
    inventoryLevels(first: {LEVELS_PAGE}) {{
      nodes {{ location {{ id }} quantities(names: ["available"]) {{ name quantity }} updatedAt }}
    }}
  }}
"""
PRODUCTS_QUERY = f"""
query CatalogProducts($first: Int!, $after: String, $query: String) {{
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id handle title descriptionHtml productType tags status updatedAt
      featuredMedia {{ preview {{ image {{ url }} }} }}
      variants(first: {VARIANTS_PAGE}) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ {VARIANT_FIELDS} }}
      }}
    }}
  }}
}}
"""
MORE_VARIANTS_QUERY = f"""
query ProductVariants($id: ID!, $first: Int!, $after: String) {{
  product(id: $id) {{
    variants(first: $first, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ {VARIANT_FIELDS} }}
    }}
  }}
}}
"""
COUNT_QUERY = """
query ProductsCount($query: String) {
  productsCount(query: $query, limit: null) { count }
}
"""


def updated_since(moment: datetime) -> str:
    """Shopify's search syntax for products changed after `moment`."""
    return f"updated_at:>'{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}'"


class ShopifyCatalog:
    """The shop's products, read from the Admin API."""

    def __init__(self, client: ShopifyClient) -> None:
        self.client = client

    async def count(self, query: str | None = None) -> int | None:
        data = await self.client.query("ProductsCount", COUNT_QUERY, {"query": query})
        count = (data.get("productsCount") or {}).get("count")
        return count if isinstance(count, int) else None

    async def _variants(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        connection = node.get("variants") or {}
        nodes = list(connection.get("nodes") or [])
        info = connection.get("pageInfo") or {}
        if info.get("hasNextPage") and info.get("endCursor"):
            # More variants than a page of products carries: the rest of this product's, page by page.
            first = {"id": node["id"], "first": VARIANTS_PAGE}
            pages = self.client.pages("ProductVariants", MORE_VARIANTS_QUERY, first, ("product", "variants"))
            skipped = False
            async for page in pages:
                if skipped:
                    nodes.extend(page)
                skipped = True  # the first page is the one the product came with
        return nodes

    async def products(self, query: str | None = None) -> AsyncIterator[list[ShopProduct | MappingError]]:
        """Every product (matching `query`, Shopify's search syntax), a page at a time; one that
        cannot be read is given as its error, so the rest still sync."""
        variables = {"first": PRODUCTS_PAGE, "query": query}
        async for page in self.client.pages("CatalogProducts", PRODUCTS_QUERY, variables, ("products",)):
            out: list[ShopProduct | MappingError] = []
            for node in page:
                try:
                    out.append(from_graphql(node, await self._variants(node)))
                except (MappingError, KeyError, TypeError, ValueError) as exc:
                    out.append(MappingError(f"{node.get('handle') or node.get('id')}: {exc}"))
            yield out


def last_sync(session: Session) -> datetime | None:
    row = session.get(StateRecord, LAST_SYNC_KEY)
    return parse_time(row.data) if row is not None else None


def _record_sync(session: Session, started: datetime) -> None:
    row = session.get(StateRecord, LAST_SYNC_KEY) or StateRecord(key=LAST_SYNC_KEY, etag="sync", data="")
    row.data, row.updated_at = started.isoformat(), utcnow()
    session.add(row)


class CatalogSync:
    """Keeps the store's catalog a copy of Shopify's; a 0 -> N change tells the restock waitlist."""

    def __init__(
        self,
        db: Database,
        catalog: ShopifyCatalog,
        policy: Policy | None,
        reminders: ReminderSettings | None,
        on_queued: Callable[[], None] | None = None,
        on_new_products: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db, self.catalog, self.policy, self.reminders = db, catalog, policy, reminders
        self.on_queued = on_queued
        self.on_new_products = on_new_products  # products were added or renamed: names to learn

    def notify(self, session: Session, summary: SyncSummary, restocked: int) -> None:
        """Queue the waitlist's notices in the caller's transaction, if a variant came back."""
        if restocked and self.policy is not None and self.reminders is not None:
            for outcome, n in notify_restocked(session, self.policy, self.reminders, utcnow()).items():
                summary.notified[outcome] = summary.notified.get(outcome, 0) + n

    async def run(
        self,
        full: bool = True,
        since: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> SyncSummary:
        """A full sync (every product; those Shopify no longer has are removed), or the products
        updated since `since`. Each page is one transaction."""
        started = utcnow()
        summary = SyncSummary()
        seen: set[str] = set()
        query = updated_since(since) if since is not None and not full else None
        async for page in self.catalog.products(query):

            def write(session: Session, page: list[ShopProduct | MappingError] = page) -> None:
                before = summary.restocked
                for item in page:
                    if isinstance(item, MappingError):
                        summary.refused.append(str(item))
                        continue
                    seen.add(item.external_id)
                    apply_product(session, item, summary)
                self.notify(session, summary, summary.restocked - before)

            await self.db.run(write)
            if progress is not None:
                progress(len(page))

        def finish(session: Session) -> None:
            if full:
                remove_unseen(session, seen, summary)
            _record_sync(session, started - SYNC_OVERLAP)

        await self.db.run(finish)
        if summary.refused:
            log.warning("shopify products not imported", extra={"count": len(summary.refused)})
        if summary.notified and self.on_queued is not None:
            self.on_queued()
        if (summary.created or summary.renamed) and self.on_new_products is not None:
            await self.on_new_products()
        return summary

    async def reconcile(self) -> SyncSummary:
        """Re-read the products updated since the last sync, to catch what a missed webhook left
        out; a full sync if there was none."""
        since = await self.db.run(last_sync)
        summary = await self.run(full=since is None, since=since)
        log.info(
            "shopify reconcile",
            extra={
                "since": since.isoformat() if since else None,
                "read": summary.products_seen,
                "updated": summary.updated + summary.created,
                "removed": summary.removed,
            },
        )
        return summary
