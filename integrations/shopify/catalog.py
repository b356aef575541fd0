"""Reading Shopify's catalog through the Admin API, a page of products at a time, for the catalog
sync (`integrations/commerce/sync.py`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from integrations.shopify.client import ShopifyClient
from integrations.shopify.mapping import MappingError, ShopProduct, from_graphql

log = logging.getLogger(__name__)

# Page sizes keep a query's requested cost under Shopify's limit of 1,000 a query:
# 4 products x (20 variants x (3 locations + item) + media) is about 900.
PRODUCTS_PAGE = 4
VARIANTS_PAGE = 20
LEVELS_PAGE = 3

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

    platform = "shopify"
    label = "Shopify"

    def __init__(self, client: ShopifyClient) -> None:
        self.client = client

    async def count(self, since: datetime | None = None) -> int | None:
        query = updated_since(since) if since is not None else None
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

    async def products(self, since: datetime | None = None) -> AsyncIterator[list[ShopProduct | MappingError]]:
        """Every product (updated since `since`, if given), a page at a time; one that cannot be
        read is given as its error, so the rest still sync."""
        query = updated_since(since) if since is not None else None
        variables = {"first": PRODUCTS_PAGE, "query": query}
        async for page in self.client.pages("CatalogProducts", PRODUCTS_QUERY, variables, ("products",)):
            out: list[ShopProduct | MappingError] = []
            for node in page:
                try:
                    out.append(from_graphql(node, await self._variants(node)))
                except (MappingError, KeyError, TypeError, ValueError) as exc:
                    out.append(MappingError(f"{node.get('handle') or node.get('id')}: {exc}"))
            yield out
