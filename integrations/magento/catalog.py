"""Reading Magento's catalog through its REST API: products a searchCriteria page at a time,
each configurable's children (`configurable-products/{sku}/children`), the labels of their size
and colour options (`products/attributes/{code}/options`) and the stock of every SKU per source
(`inventory/source-items`). With a zh-TW store view set (MAGENTO_ZH_STORE_CODE), the same
products are read through it (`/rest/{zh store code}/V1/products`) for their names and
descriptions there. A product without a value of its own in that store view is given with the
default one: a value equal to the default store view's is no translation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bot.store.models import utcnow
from integrations.commerce.model import Translation, translation_of
from integrations.magento.client import PAGE_SIZE, Filter, MagentoClient, MagentoError, MagentoUnavailable, path_part
from integrations.magento.mapping import (
    NOT_VISIBLE_INDIVIDUALLY,
    Level,
    MappingError,
    ShopProduct,
    attributes,
    from_rest,
    magento_time,
    option_codes,
    source_levels,
)

TYPES = "simple,configurable"  # bundles, grouped and virtual products are not offered in chat
SOURCE_ITEMS_PAGE = 500

log = logging.getLogger(__name__)


class MagentoCatalog:
    """The store view's products, read from the REST API."""

    def __init__(
        self, client: MagentoClient, media_base: str, page_size: int = PAGE_SIZE, zh: MagentoClient | None = None
    ) -> None:
        self.client, self.media_base, self.page_size = client, media_base, page_size
        self.zh = zh  # the zh-TW store view's API, or None
        self.labels: dict[str, dict[str, str]] = {}  # attribute code -> option id -> label

    async def count(self) -> int:
        async for _, total in self.client.search("products", [Filter("type_id", TYPES, "in")], page_size=1):
            return total
        return 0

    async def _labels(self, items: list[dict[str, Any]]) -> None:
        for code in sorted(option_codes(items) - set(self.labels)):
            options = await self.client.get(f"products/attributes/{path_part(code)}/options")
            self.labels[code] = {
                str(o.get("value")): str(o.get("label")).strip()
                for o in options or []
                if isinstance(o, dict) and str(o.get("value", "")).strip()
            }

    async def levels(self, skus: list[str]) -> dict[str, list[Level]]:
        """Each SKU's stock per source (MSI source items), as seen now."""
        if not skus:
            return {}
        seen_at = utcnow()
        found: list[dict[str, Any]] = []
        for start in range(0, len(skus), SOURCE_ITEMS_PAGE):
            chunk = ",".join(skus[start : start + SOURCE_ITEMS_PAGE])
            async for items, _ in self.client.search(
                "inventory/source-items", [Filter("sku", chunk, "in")], page_size=SOURCE_ITEMS_PAGE
            ):
                found.extend(items)
        return source_levels(found, seen_at)

    async def translations(self, items: list[dict[str, Any]]) -> dict[str, Translation] | None:
        """These products' names and descriptions in the zh-TW store view, by SKU (none without one);
        None when the store view could not be read (a wrong code, Magento down): the names the
        store has are kept and the rest of the sync goes on."""
        skus = [str(i.get("sku")) for i in items]
        if self.zh is None or not skus:
            return {}
        try:
            return await self._translations(items, skus)
        except (MagentoError, MagentoUnavailable) as exc:
            log.warning("magento zh store view not read", extra={"reason": str(exc)[:200]})
            return None

    async def _translations(self, items: list[dict[str, Any]], skus: list[str]) -> dict[str, Translation]:
        assert self.zh is not None
        default = {str(i.get("sku")): _texts(i) for i in items}
        out: dict[str, Translation] = {}
        async for found, _ in self.zh.search("products", [Filter("sku", ",".join(skus), "in")], len(skus)):
            for item in found:
                sku = str(item.get("sku"))
                if sku not in default:
                    continue
                name, description = (
                    None if value == default[sku][n] else value for n, value in enumerate(_texts(item))
                )
                out[sku] = translation_of(name, description)
        return out

    async def children(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("type_id") != "configurable":
            return []
        found = await self.client.get(f"configurable-products/{path_part(str(item['sku']))}/children")
        return [c for c in found or [] if isinstance(c, dict)]

    async def read(self, items: list[dict[str, Any]]) -> list[ShopProduct | MappingError]:
        """These products (configurables and simples sold on their own) as ours; one that cannot
        be read is given as its error, so the rest still sync."""
        wanted = [
            i for i in items if i.get("visibility") != NOT_VISIBLE_INDIVIDUALLY and i.get("type_id") in TYPES.split(",")
        ]
        kids = {str(i.get("sku")): await self.children(i) for i in wanted}
        await self._labels([*wanted, *(c for cs in kids.values() for c in cs)])
        skus = [str(c.get("sku")) for i in wanted for c in (kids[str(i.get("sku"))] or [i])]
        levels = await self.levels(skus)
        zh = await self.translations(wanted)
        out: list[ShopProduct | MappingError] = []
        for item in wanted:
            try:
                shop = from_rest(item, kids[str(item.get("sku"))], self.labels, levels, self.media_base)
                if self.zh is not None and zh is not None:
                    shop.zh = zh.get(str(item.get("sku")), Translation(None, None))
                out.append(shop)
            except (MappingError, KeyError, TypeError, ValueError) as exc:
                out.append(MappingError(f"{item.get('sku') or item.get('id')}: {exc}"))
        return out

    async def pages(self, since: datetime | None = None) -> AsyncIterator[tuple[list[dict[str, Any]], int]]:
        """The raw product pages (children too), all or those updated at or after `since`."""
        filters = [Filter("type_id", TYPES, "in")]
        if since is not None:
            # gteq, not gt: Magento keeps seconds, so a product changed in the same second as the
            # newest one seen is read again (and found unchanged) rather than missed.
            filters.append(Filter("updated_at", magento_time(since), "gteq"))
        async for items, total in self.client.search("products", filters, self.page_size, sort="updated_at"):
            yield items, total

    async def product(self, sku: str) -> dict[str, Any] | None:
        try:
            found = await self.client.get(f"products/{path_part(sku)}")
        except MagentoError as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None


def _texts(item: dict[str, Any]) -> tuple[Any, Any]:
    """A product's name and description (HTML) as a store view gives them."""
    custom = attributes(item)
    return item.get("name"), custom.get("description") or custom.get("short_description")
