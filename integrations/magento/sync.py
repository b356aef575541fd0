"""Keeping the store's catalog and orders a copy of Magento's. Magento's open-source edition
sends no signed webhooks, so a scheduled poll asks for what changed: products, orders and
shipments with `updated_at` at or after the newest one seen (a cursor kept in the store, so a
restart resumes), and every source item's quantity (source items carry no time). Older versions
change nothing; a variant back in stock tells its waitlist."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session, col, select

from bot.delivery.policy import Policy
from bot.marketing.reminders import ReminderSettings, notify_restocked
from bot.store.database import Database
from bot.store.models import CommerceStock, CommerceVariant, StateRecord, utcnow
from integrations.commerce.freshness import mark_confirmed
from integrations.commerce.mirror import SyncSummary, apply_level, apply_products, remove_unseen
from integrations.magento.catalog import MagentoCatalog
from integrations.magento.client import Filter
from integrations.magento.mapping import NOT_VISIBLE_INDIVIDUALLY, MappingError, ShopProduct, parse_time, source_levels
from integrations.magento.orders import MagentoOrderEvents

log = logging.getLogger(__name__)
PLATFORM = "magento"
CURSOR_KEY = "commerce-poll/magento"
STREAMS = ("products", "orders", "shipments")
ORDER_CURSOR_MARGIN = timedelta(hours=1)


def load_cursor(session: Session) -> dict[str, datetime]:
    """The newest `updated_at` seen of each stream (none: read from the start)."""
    row = session.get(StateRecord, CURSOR_KEY)
    data = json.loads(row.data) if row is not None and row.data else {}
    return {k: parse_time(v) for k, v in data.items() if k in STREAMS and v}


def save_cursor(session: Session, stream: str, moment: datetime) -> None:
    """Move a stream's cursor forward (never back)."""
    row = session.get(StateRecord, CURSOR_KEY) or StateRecord(key=CURSOR_KEY, etag="poll", data="{}")
    data = json.loads(row.data or "{}")
    old = data.get(stream)
    if old is None or parse_time(old) < moment:
        data[stream] = moment.isoformat()
    row.data, row.updated_at = json.dumps(data, sort_keys=True), utcnow()
    session.add(row)


class MagentoSync:
    """The full sync (`python app.py catalog sync`) and the scheduled poll."""

    def __init__(
        self,
        db: Database,
        catalog: MagentoCatalog,
        events: MagentoOrderEvents | None,
        policy: Policy | None,
        reminders: ReminderSettings | None,
        on_queued: Callable[[], None] | None = None,
        on_new_products: Callable[[], Awaitable[None]] | None = None,
        push_orders: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.db, self.catalog, self.events = db, catalog, events
        self.policy, self.reminders = policy, reminders
        self.on_queued, self.on_new_products, self.push_orders = on_queued, on_new_products, push_orders

    def notify(self, session: Session, summary: SyncSummary, restocked: int) -> None:
        if restocked and self.policy is not None and self.reminders is not None:
            for outcome, n in notify_restocked(session, self.policy, self.reminders, utcnow()).items():
                summary.notified[outcome] = summary.notified.get(outcome, 0) + n

    async def _write(self, products: list[ShopProduct | MappingError], summary: SyncSummary, seen: set[str]) -> None:
        def write(session: Session) -> None:
            before = summary.restocked
            shops = [item for item in products if not isinstance(item, MappingError)]
            summary.refused.extend(str(item) for item in products if isinstance(item, MappingError))
            seen.update(shop.external_id for shop in shops)
            apply_products(session, shops, summary, PLATFORM)
            self.notify(session, summary, summary.restocked - before)

        await self.db.run(write)

    async def _after(self, summary: SyncSummary) -> None:
        if summary.refused:
            log.warning("magento products not imported", extra={"count": len(summary.refused)})
        if summary.notified and self.on_queued is not None:
            self.on_queued()
        if (summary.created or summary.renamed) and self.on_new_products is not None:
            await self.on_new_products()

    async def run(self, progress: Callable[[int], None] | None = None) -> SyncSummary:
        """Every product (those Magento no longer has are removed); each page one transaction.
        The product cursor starts at the newest `updated_at` read."""
        started = utcnow()
        summary = SyncSummary()
        seen: set[str] = set()
        newest: datetime | None = None
        async for items, _ in self.catalog.pages():
            await self._write(await self.catalog.read(items), summary, seen)
            newest = max([t for t in (newest, *_times(items)) if t is not None], default=None)
            if progress is not None:
                progress(len(items))

        def finish(session: Session) -> None:
            remove_unseen(session, seen, summary, PLATFORM)
            mark_confirmed(session, PLATFORM, started)
            if newest is not None:
                save_cursor(session, "products", newest)
            # Chat orders reach Magento only once it is connected: its older orders and shipments
            # (a shop's whole history) are not read. An hour back allows for the two clocks.
            cursor = load_cursor(session)
            for stream in ("orders", "shipments"):
                if stream not in cursor:
                    save_cursor(session, stream, started - ORDER_CURSOR_MARGIN)

        await self.db.run(finish)
        await self._after(summary)
        return summary

    async def poll(self) -> SyncSummary:
        """One tick of the schedule: paid chat orders placed in Magento, then what changed there."""
        if self.push_orders is not None:
            await self.push_orders()
        cursor = await self.db.run(load_cursor)
        summary = SyncSummary()
        if "products" not in cursor:
            return await self.run()  # never synced: the first full sync
        await self._poll_products(cursor["products"], summary)
        await self._poll_stock(summary)
        if self.events is not None:
            await self._poll_orders(cursor, summary)
        await self._after(summary)
        log.info(
            "magento poll",
            extra={
                "read": summary.products_seen,
                "updated": summary.updated + summary.created,
                "restocked": summary.restocked,
            },
        )
        return summary

    async def _poll_products(self, since: datetime, summary: SyncSummary) -> None:
        seen: set[str] = set()
        async for items, _ in self.catalog.pages(since):
            # A child changed on its own (its price): its configurable is read again, whole.
            children = [str(i.get("sku")) for i in items if i.get("visibility") == NOT_VISIBLE_INDIVIDUALLY]
            parents = await self.db.run(partial(_parents_of, skus=children))
            listed = {str(i.get("sku")) for i in items}
            for sku in sorted(parents - listed):
                parent = await self.catalog.product(sku)
                if parent is not None:
                    items = [*items, parent]
            await self._write(await self.catalog.read(items), summary, seen)
            newest = max(_times(items), default=None)
            if newest is not None:
                await self.db.run(partial(save_cursor, stream="products", moment=newest))

    async def _poll_stock(self, summary: SyncSummary) -> None:
        """Every source item, compared with the store's copy: a quantity that differs is applied
        as of now (a sale in Magento changes no product's `updated_at`)."""
        async for items, _ in self.catalog.client.search("inventory/source-items", [], page_size=500):
            levels = source_levels(items, utcnow())

            def write(session: Session, levels=levels) -> None:
                mark_confirmed(session, PLATFORM)  # Magento's stock was read: the copy is current
                known = _known_levels(session, list(levels))
                restocked = 0
                for sku, found in levels.items():
                    if sku not in known["items"]:
                        continue  # not one of the variants offered in chat
                    for level in found:
                        if known["levels"].get((sku, level.location_id)) == level.available:
                            continue
                        outcome, came_back = apply_level(
                            session, sku, level.location_id, level.available, level.updated_at, PLATFORM
                        )
                        summary.variants_updated += outcome == "applied"
                        restocked += came_back
                summary.restocked += restocked
                self.notify(session, summary, restocked)

            await self.db.run(write)

    async def _poll_orders(self, cursor: dict[str, datetime], summary: SyncSummary) -> None:
        assert self.events is not None
        client = self.catalog.client
        for stream, path in (("shipments", "shipments"), ("orders", "orders")):
            filters = [Filter("updated_at", _magento(cursor.get(stream)), "gteq")] if stream in cursor else []
            async for items, _ in client.search(path, filters, sort="updated_at"):

                def write(session: Session, items=items, stream=stream) -> None:
                    queued = False
                    for item in items:
                        try:
                            if stream == "shipments":
                                queued = self.events.shipment(session, item) or queued  # type: ignore[union-attr]
                            else:
                                self.events.order(session, item)  # type: ignore[union-attr]
                        except MappingError as exc:
                            log.warning("magento %s not applied", stream, extra={"reason": str(exc)[:200]})
                    newest = max(_times(items), default=None)
                    if newest is not None:
                        save_cursor(session, stream, newest)
                    if queued:
                        summary.notified["shipped"] = summary.notified.get("shipped", 0) + 1

                await self.db.run(write)


def _magento(moment: datetime | None) -> str:
    from integrations.magento.mapping import magento_time

    return magento_time(moment or utcnow())


def _times(items: list[dict[str, Any]]) -> list[datetime]:
    out = []
    for item in items:
        try:
            out.append(parse_time(item.get("updated_at")))
        except MappingError:
            continue
    return out


def _parents_of(session: Session, skus: list[str]) -> set[str]:
    if not skus:
        return set()
    rows = session.exec(
        select(CommerceVariant.product_external_id).where(
            CommerceVariant.platform == PLATFORM, col(CommerceVariant.external_id).in_(skus)
        )
    ).all()
    return set(rows)


def _known_levels(session: Session, skus: list[str]) -> dict[str, Any]:
    items = set(
        session.exec(
            select(CommerceVariant.inventory_item_id).where(
                CommerceVariant.platform == PLATFORM, col(CommerceVariant.inventory_item_id).in_(skus)
            )
        ).all()
    )
    levels = {
        (row.inventory_item_id, row.location_id): row.available
        for row in session.exec(
            select(CommerceStock).where(
                CommerceStock.platform == PLATFORM, col(CommerceStock.inventory_item_id).in_(skus)
            )
        ).all()
    }
    return {"items": items, "levels": levels}
