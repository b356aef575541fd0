"""Reading Shopify's catalog through the Admin API, a page of products at a time, for the catalog
sync (`integrations/commerce/sync.py`): through paged queries, or for the full sync of a big shop
through one bulk operation, whose JSONL file is read as a stream and cut into pages. With a
zh-TW locale set (COMMERCE_ZH_LOCALE), each product's translations in it are read with it
(`translations(locale:)`, a list on the product, not a connection: a bulk query may select it)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from integrations.commerce.model import Translation
from integrations.shopify.client import ShopifyClient, ShopifyError
from integrations.shopify.mapping import MappingError, ShopProduct, from_graphql, gid, translation_from_graphql

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
TRANSLATION_FIELDS = "key value locale"
PRODUCT_FIELDS = """
  id handle title descriptionHtml productType tags status updatedAt
  featuredMedia { preview { image { url } } }
"""
PRODUCTS_QUERY = f"""
query CatalogProducts($first: Int!, $after: String, $query: String) {{
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      {PRODUCT_FIELDS}
      variants(first: {VARIANTS_PAGE}) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ {VARIANT_FIELDS} }}
      }}
    }}
  }}
}}
"""
# The same, with each product's translations in `$locale` (its title and body_html).
TRANSLATED_PRODUCTS_QUERY = PRODUCTS_QUERY.replace("$query: String)", "$query: String, $locale: String!)", 1).replace(
    PRODUCT_FIELDS, PRODUCT_FIELDS + f"  translations(locale: $locale) {{ {TRANSLATION_FIELDS} }}\n", 1
)
TRANSLATIONS_QUERY = f"""
query ProductTranslations($id: ID!, $locale: String!) {{
  product(id: $id) {{ id translations(locale: $locale) {{ {TRANSLATION_FIELDS} }} }}
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
# The bulk operation's query: no page sizes (Shopify reads every object), at most two levels of
# nested connections (variants, then each inventory item's levels).
BULK_PRODUCTS_QUERY = """
{
  products {
    edges {
      node {
        id handle title descriptionHtml productType tags status updatedAt
        featuredMedia { preview { image { url } } }
        TRANSLATIONS
        variants {
          edges {
            node {
              id sku price
              selectedOptions { name value }
              inventoryItem {
                id
                inventoryLevels {
                  edges { node { location { id } quantities(names: ["available"]) { name quantity } updatedAt } }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""
BULK_TRANSLATIONS = "translations(locale: {locale}) {{ " + TRANSLATION_FIELDS + " }}"
BULK_PAGE = 1000  # products written in one transaction when read from a bulk operation's file
BULK_TIMEOUT_SECONDS = 3600.0  # a bulk operation still running after this is given up

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

    def __init__(self, client: ShopifyClient, bulk_from: int | None = None, locale: str | None = None) -> None:
        self.client = client
        self.bulk_from = bulk_from  # a full sync of at least this many products reads a bulk operation
        self.locale = locale or None  # the zh-TW locale whose translations are read; None: none are

    @property
    def bulk_query(self) -> str:
        """The bulk operation's query (it takes no variables: the locale is written into it)."""
        fields = BULK_TRANSLATIONS.format(locale=json.dumps(self.locale)) if self.locale else ""
        return BULK_PRODUCTS_QUERY.replace("TRANSLATIONS", fields, 1)

    async def translation(self, product_id: str) -> Translation | None:
        """One product's translation in the locale (for a webhook, whose body has none); None
        when no locale is set or the product is not found.

        Raises:
            ShopifyError: Shopify refused or did not answer.
        """
        if self.locale is None:
            return None
        variables = {"id": gid("Product", product_id), "locale": self.locale}
        node = (await self.client.query("ProductTranslations", TRANSLATIONS_QUERY, variables)).get("product")
        return translation_from_graphql(node) if isinstance(node, dict) else None

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
        if since is None and self.bulk_from is not None:
            total = await self.count()
            if total is not None and total >= self.bulk_from:
                async for bulk_page in self.bulk_products():
                    yield bulk_page
                return
        query = updated_since(since) if since is not None else None
        variables: dict[str, Any] = {"first": PRODUCTS_PAGE, "query": query}
        document = PRODUCTS_QUERY
        if self.locale is not None:
            variables["locale"], document = self.locale, TRANSLATED_PRODUCTS_QUERY
        async for page in self.client.pages("CatalogProducts", document, variables, ("products",)):
            out: list[ShopProduct | MappingError] = []
            for node in page:
                out.append(_product(node, await self._variants(node)))
            yield out

    async def bulk_products(self) -> AsyncIterator[list[ShopProduct | MappingError]]:
        """Every product, from one bulk operation's file, `BULK_PAGE` at a time. The file is
        grouped: a product's line, then its variants' (`__parentId` the product), each followed by
        its inventory levels' (`__parentId` the variant, or its inventory item); a product is
        complete when the next one starts, so memory holds one product and one page.

        Raises:
            ShopifyError: the operation failed, or a line's parent is not the product being read.
        """
        page: list[ShopProduct | MappingError] = []
        node: dict[str, Any] | None = None
        variants: list[dict[str, Any]] = []
        owners: dict[str, dict[str, Any]] = {}  # variant and inventory item ids -> the variant's inventory item
        async for line in self.client.bulk_query(self.bulk_query, BULK_TIMEOUT_SECONDS):
            parent = line.pop("__parentId", None)
            if parent is None:  # a product: the one before it is whole
                if node is not None:
                    page.append(_product(node, variants))
                    if len(page) >= BULK_PAGE:
                        yield page
                        page = []
                node, variants, owners = line, [], {}
            elif node is not None and parent == node.get("id"):  # a variant
                item = line.get("inventoryItem") or {}
                item["inventoryLevels"] = {"nodes": []}
                line["inventoryItem"] = item
                variants.append(line)
                for key in (line.get("id"), item.get("id")):
                    if key:
                        owners[key] = item
            elif parent in owners:  # an inventory level
                owners[parent]["inventoryLevels"]["nodes"].append(line)
            else:
                raise ShopifyError(f"bulk operation file: {line.get('id') or 'a line'} comes after another parent's")
        if node is not None:
            page.append(_product(node, variants))
        if page:
            yield page


def _product(node: dict[str, Any], variants: list[dict[str, Any]]) -> ShopProduct | MappingError:
    try:
        return from_graphql(node, variants)
    except (MappingError, KeyError, TypeError, ValueError) as exc:
        return MappingError(f"{node.get('handle') or node.get('id')}: {exc}")
