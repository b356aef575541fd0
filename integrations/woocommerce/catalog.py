"""Reading WooCommerce's catalog through the REST API for the catalog sync
(`integrations/commerce/sync.py`): `GET products` a hundred at a time, and each variable
product's `GET products/{id}/variations`, `VARIATION_READS` of them at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from integrations.commerce.model import MappingError, ShopProduct
from integrations.woocommerce.client import WooCommerceClient
from integrations.woocommerce.mapping import PLATFORM, from_rest, woo_id

VARIATION_READS = 4  # a page's variations requests in flight at once


def _since(moment: datetime | None) -> dict[str, Any]:
    """`modified_after` (in GMT) of the products changed after `moment`."""
    if moment is None:
        return {}
    return {"modified_after": moment.strftime("%Y-%m-%dT%H:%M:%S"), "dates_are_gmt": "true"}


class WooCommerceCatalog:
    """The shop's products, read from the REST API."""

    platform = PLATFORM
    label = "WooCommerce"

    def __init__(self, client: WooCommerceClient) -> None:
        self.client = client

    async def count(self, since: datetime | None = None) -> int | None:
        return await self.client.total("products", _since(since))

    async def variations(self, product_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for page in self.client.pages(f"products/{product_id}/variations"):
            out.extend(page)
        return out

    async def read(self, product: dict[str, Any]) -> ShopProduct:
        """One product of a list or a webhook, with its variations if it has them.

        Raises:
            MappingError: it cannot be read.
        """
        variations = None
        if product.get("type") == "variable":
            variations = await self.variations(woo_id(product.get("id"), "product id"))
        return from_rest(product, variations)

    async def product(self, product_id: str) -> ShopProduct:
        """A product as WooCommerce has it now (`GET products/{id}`)."""
        body = await self.client.get(f"products/{product_id}")
        if not isinstance(body, dict):
            raise MappingError(f"product {product_id} is not an object")
        return await self.read(body)

    async def products(self, since: datetime | None = None) -> AsyncIterator[list[ShopProduct | MappingError]]:
        """Every product (changed since `since`, if given), a page at a time; one that cannot be
        read is given as its error, so the rest still sync."""
        gate = asyncio.Semaphore(VARIATION_READS)

        async def one(item: dict[str, Any]) -> ShopProduct | MappingError:
            async with gate:
                try:
                    return await self.read(item)
                except (MappingError, KeyError, TypeError, ValueError) as exc:
                    return MappingError(f"{item.get('slug') or item.get('id')}: {exc}")

        async for page in self.client.pages("products", _since(since)):
            yield list(await asyncio.gather(*(one(item) for item in page)))
