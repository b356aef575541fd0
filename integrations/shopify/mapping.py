"""Shopify's products onto ours, from the Admin GraphQL API and from webhook (REST JSON) bodies
alike: options named Size and Colour/Color become our size and colour (as the CSV import reads
them), the lowest variant price is the product's, stock per location is kept with its time.
Pure: no store, no network."""

from __future__ import annotations

from typing import Any

from integrations.catalog_import import (
    NO_COLOUR,
    NO_SIZE,
    ImportedVariant,
    size_and_colour,
    variant_key,
)
from integrations.commerce.model import (
    Level,
    MappingError,
    ShopProduct,
    ShopVariant,
    Translation,
    parse_time,
    price_cents,
    product_of,
    translation_of,
)

__all__ = [
    "Level",
    "MappingError",
    "ShopProduct",
    "ShopVariant",
    "from_graphql",
    "from_webhook",
    "gid",
    "parse_time",
    "price_cents",
    "translation_from_graphql",
]

VISIBLE = "active"  # draft and archived products are not offered to shoppers


def gid(kind: str, value: Any) -> str:
    """Shopify's global id (`gid://shopify/Product/123`) of a REST id, or the id given as one."""
    text = str(value)
    if text.startswith("gid://"):
        return text
    if not text.isdigit():
        raise MappingError(f"{kind} id {value!r} is not a Shopify id")
    return f"gid://shopify/{kind}/{text}"


def _variant(handle: str, options: list[tuple[str, str]], sku: Any, price: Any) -> ImportedVariant:
    size, colour = size_and_colour(options)
    key = sku.strip() if isinstance(sku, str) and sku.strip() else variant_key(handle, [v for _, v in options])
    return ImportedVariant(
        sku=key, size=size or NO_SIZE, colour=colour or NO_COLOUR, stock=0, price_cents=price_cents(price), line=0
    )


def translation_from_graphql(node: dict[str, Any]) -> Translation | None:
    """A product's `translations(locale:)` (`title`, `body_html` among their keys) as its zh-TW
    name and description; None when the node was read without them."""
    if not isinstance(node.get("translations"), list):
        return None
    values = {
        t.get("key"): t.get("value")
        for t in node["translations"]
        if isinstance(t, dict) and isinstance(t.get("key"), str)
    }
    return translation_of(values.get("title"), values.get("body_html"))


def from_graphql(node: dict[str, Any], variant_nodes: list[dict[str, Any]]) -> ShopProduct:
    """A product of the Admin API (see `PRODUCT_FIELDS` in `integrations/shopify/catalog.py`),
    with all its variants' nodes, and its translations when they were asked for.

    Raises:
        MappingError: a field we need is missing or wrong.
    """
    external_id = gid("Product", node.get("id"))
    handle = node.get("handle")
    variants = []
    for v in variant_nodes:
        options = [(str(o.get("name", "")), str(o.get("value", ""))) for o in v.get("selectedOptions") or []]
        item = v.get("inventoryItem") or {}
        levels = []
        for level in ((item.get("inventoryLevels") or {}).get("nodes")) or []:
            available = next(
                (q.get("quantity") for q in level.get("quantities") or [] if q.get("name") == "available"), 0
            )
            levels.append(
                Level(
                    gid("Location", (level.get("location") or {}).get("id")),
                    int(available or 0),
                    parse_time(level.get("updatedAt"), "inventory level updatedAt"),
                )
            )
        variants.append(
            ShopVariant(
                gid("ProductVariant", v.get("id")),
                gid("InventoryItem", item["id"]) if item.get("id") else None,
                levels,
                0,
                _variant(str(handle or ""), options, v.get("sku"), v.get("price")),
            )
        )
    media = ((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {}
    shop = product_of(
        external_id,
        handle,
        node.get("title"),
        node.get("descriptionHtml"),
        node.get("productType"),
        [str(t) for t in node.get("tags") or []],
        node.get("status"),
        parse_time(node.get("updatedAt"), "updatedAt"),
        variants,
        media.get("url"),
    )
    shop.zh = translation_from_graphql(node)
    return shop


def from_webhook(body: dict[str, Any]) -> ShopProduct:
    """A product of a `products/update` (or `products/create`) webhook body (Shopify's REST JSON).

    Raises:
        MappingError: a field we need is missing or wrong.
    """
    external_id = gid("Product", body.get("admin_graphql_api_id") or body.get("id"))
    handle = body.get("handle")
    names = [str(o.get("name", "")) for o in sorted(body.get("options") or [], key=lambda o: o.get("position", 0))]
    variants = []
    for v in body.get("variants") or []:
        if not isinstance(v, dict):
            raise MappingError("a variant is not an object")
        values = [str(v.get(f"option{i}") or "") for i in (1, 2, 3)]
        options = list(zip(names, values))
        total = v.get("inventory_quantity", 0)
        if not isinstance(total, int):
            raise MappingError(f"variant {v.get('id')}: inventory_quantity {total!r} is not a whole number")
        variants.append(
            ShopVariant(
                gid("ProductVariant", v.get("admin_graphql_api_id") or v.get("id")),
                gid("InventoryItem", v["inventory_item_id"]) if v.get("inventory_item_id") else None,
                None,
                max(0, total),
                _variant(str(handle or ""), options, v.get("sku"), v.get("price")),
            )
        )
    tags = body.get("tags") or ""
    image = body.get("image") or {}
    return product_of(
        external_id,
        handle,
        body.get("title"),
        body.get("body_html"),
        body.get("product_type"),
        tags.split(",") if isinstance(tags, str) else [str(t) for t in tags],
        body.get("status"),
        parse_time(body.get("updated_at")),
        variants,
        image.get("src") if isinstance(image, dict) else None,
    )
