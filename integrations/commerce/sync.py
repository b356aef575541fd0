"""Keeping the store's catalog a copy of a commerce platform's (Shopify, WooCommerce): the full
sync (`python app.py catalog sync`), the scheduled reconcile of what changed since the last one,
the time of the last sync, and the restock waitlist told when a variant comes back. The platform
is given as a `PlatformCatalog`, which reads its products a page at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from bot.delivery.policy import Policy
from bot.marketing.reminders import ReminderSettings, notify_restocked
from bot.store.database import Database
from bot.store.models import StateRecord, utcnow
from integrations.commerce.freshness import mark_confirmed
from integrations.commerce.mirror import SyncSummary, apply_products, remove_unseen
from integrations.commerce.model import MappingError, ShopProduct, parse_time

log = logging.getLogger(__name__)
# A product updated while a sync read the pages may not be in them: the next reconcile starts
# this much before the sync did.
SYNC_OVERLAP = timedelta(minutes=2)
# Small pages (Shopify's paged query gives 4 products) are written together, up to this many
# products a transaction: each transaction costs a few reads and a commit, whatever its size.
WRITE_BATCH = 250


class PlatformCatalog(Protocol):
    """A platform's products, read through its API."""

    platform: str  # the mirror tables' key: "shopify", "woocommerce"
    label: str  # its name for people: "Shopify"

    async def count(self, since: datetime | None = None) -> int | None: ...

    def products(self, since: datetime | None = None) -> AsyncIterator[list[ShopProduct | MappingError]]: ...


def sync_key(platform: str) -> str:
    return f"commerce-sync/{platform}/products"


def last_sync(session: Session, platform: str) -> datetime | None:
    row = session.get(StateRecord, sync_key(platform))
    return parse_time(row.data) if row is not None else None


def _record_sync(session: Session, platform: str, started: datetime) -> None:
    key = sync_key(platform)
    row = session.get(StateRecord, key) or StateRecord(key=key, etag="sync", data="")
    row.data, row.updated_at = started.isoformat(), utcnow()
    session.add(row)


class CatalogSync:
    """Keeps the store's catalog a copy of the platform's; a 0 -> N change tells the restock waitlist."""

    def __init__(
        self,
        db: Database,
        catalog: PlatformCatalog,
        policy: Policy | None,
        reminders: ReminderSettings | None,
        on_queued: Callable[[], None] | None = None,
        on_new_products: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db, self.catalog, self.policy, self.reminders = db, catalog, policy, reminders
        self.on_queued = on_queued
        self.on_new_products = on_new_products  # products were added or renamed: names to learn

    @property
    def platform(self) -> str:
        return self.catalog.platform

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
        """A full sync (every product; those the platform no longer has are removed), or the
        products updated since `since`. Pages are written together up to `WRITE_BATCH` products,
        each batch one transaction."""
        started = utcnow()
        summary = SyncSummary()
        seen: set[str] = set()
        platform = self.platform
        pages = aiter(self.catalog.products(since if not full else None))
        batch: list[ShopProduct | MappingError] = []
        while True:
            clock = time.perf_counter()
            more = await anext(pages, None)
            summary.read_seconds += time.perf_counter() - clock
            if more is not None:
                batch.extend(more)
                if len(batch) < WRITE_BATCH:
                    continue
            if not batch:
                break
            page, batch = batch, []

            def write(session: Session, page: list[ShopProduct | MappingError] = page) -> None:
                before = summary.restocked
                shops = [item for item in page if not isinstance(item, MappingError)]
                summary.refused.extend(str(item) for item in page if isinstance(item, MappingError))
                seen.update(shop.external_id for shop in shops)
                apply_products(session, shops, summary, platform)
                self.notify(session, summary, summary.restocked - before)

            clock = time.perf_counter()
            await self.db.run(write)
            summary.write_seconds += time.perf_counter() - clock
            if progress is not None:
                progress(len(page))
            if more is None:
                break

        def finish(session: Session) -> None:
            if full:
                remove_unseen(session, seen, summary, platform)
            _record_sync(session, platform, started - SYNC_OVERLAP)
            mark_confirmed(session, platform, started)

        await self.db.run(finish)
        if summary.refused:
            log.warning("products not imported", extra={"platform": platform, "count": len(summary.refused)})
        if summary.notified and self.on_queued is not None:
            self.on_queued()
        if (summary.created or summary.renamed) and self.on_new_products is not None:
            await self.on_new_products()
        return summary

    async def reconcile(self) -> SyncSummary:
        """Re-read the products updated since the last sync, to catch what a missed webhook left
        out; a full sync if there was none."""
        since = await self.db.run(lambda s: last_sync(s, self.platform))
        summary = await self.run(full=since is None, since=since)
        log.info(
            "catalog reconcile",
            extra={
                "platform": self.platform,
                "since": since.isoformat() if since else None,
                "read": summary.products_seen,
                "updated": summary.updated + summary.created,
                "removed": summary.removed,
                "read_seconds": round(summary.read_seconds, 2),
                "write_seconds": round(summary.write_seconds, 2),
            },
        )
        return summary
