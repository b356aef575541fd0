"""WooCommerce's products onto ours: a simple product is one variant, a variable product's
variations (`attributes [{name, option}]`) are its variants, attributes named Size and
Colour/Color becoming our size and colour; `stock_quantity` is the stock when WooCommerce counts
it, else `stock_status` says in or out of stock; `date_modified_gmt` (the newest of the product's and its variations') is the time of the change.
Products that are not published (draft, pending, private) or cannot be bought in the shop
(grouped, external) are not offered. Pure: no store, no network."""

from __future__ import annotations

from typing import Any

from integrations.catalog_import import (
    NO_COLOUR,
    NO_SIZE,
    ImportedProduct,
    ImportedVariant,
    category_of,
    plain_text,
    size_and_colour,
    variant_key,
)
from integrations.commerce.model import MappingError, ShopProduct, ShopVariant, parse_time, price_cents

PLATFORM = "woocommerce"
VISIBLE = "publish"
SOLD_HERE = ("simple", "variable")
# A product whose stock WooCommerce does not count (`manage_stock` off) but says is in stock:
# the bot offers it as in stock with this many.
UNCOUNTED_STOCK = 100


def woo_id(value: Any, what: str = "id") -> str:
    """WooCommerce's numeric id, as text."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise MappingError(f"{what} {value!r} is not a WooCommerce id")
    return str(int(value))


def stock_of(item: dict[str, Any]) -> int:
    """The stock of a product or variation: `stock_quantity` when counted, else by `stock_status`."""
    status = item.get("stock_status")
    if status == "outofstock":
        return 0
    quantity = item.get("stock_quantity")
    if item.get("manage_stock") not in (False, None) and quantity is not None:
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise MappingError(f"stock_quantity {quantity!r} is not a whole number")
        return max(0, quantity)
    if isinstance(quantity, int) and not isinstance(quantity, bool):
        return max(0, quantity)
    return UNCOUNTED_STOCK if status in ("instock", "onbackorder") else 0


def _options(attributes: Any) -> list[tuple[str, str]]:
    out = []
    for a in attributes or []:
        if isinstance(a, dict) and isinstance(a.get("option"), str):
            out.append((str(a.get("name") or "").removeprefix("pa_"), a["option"]))
    return out


def _variant(slug: str, item: dict[str, Any], options: list[tuple[str, str]], product_id: str) -> ShopVariant:
    size, colour = size_and_colour(options)
    sku = item.get("sku")
    key = sku.strip() if isinstance(sku, str) and sku.strip() else variant_key(slug, [v for _, v in options])
    price = item.get("price")
    if price in (None, ""):
        price = item.get("regular_price")
    external = woo_id(item.get("id"))
    return ShopVariant(
        external,
        None,  # WooCommerce keeps one stock per product or variation, no locations
        None,
        stock_of(item),
        ImportedVariant(
            sku=key,
            size=size or NO_SIZE,
            colour=colour or NO_COLOUR,
            stock=0,
            price_cents=price_cents(price if price not in (None, "") else "0"),
            line=0,
        ),
    )


def from_rest(product: dict[str, Any], variations: list[dict[str, Any]] | None = None) -> ShopProduct:
    """A product of `GET products` (or a `product.*` webhook body), with the `GET
    products/{id}/variations` of a variable one.

    Raises:
        MappingError: a field we need is missing or wrong.
    """
    external_id = woo_id(product.get("id"), "product id")
    slug = product.get("slug")
    if not isinstance(slug, str) or not slug.strip():
        raise MappingError(f"product {external_id} has no slug")
    slug = slug.strip()
    kind = product.get("type") or "simple"
    if kind == "variable":
        variants = [
            _variant(slug, v, _options(v.get("attributes")), external_id)
            for v in variations or []
            if isinstance(v, dict) and v.get("status", "publish") == VISIBLE
        ]
    elif kind in SOLD_HERE:
        variants = [_variant(slug, product, [], external_id)]
    else:
        variants = []
    categories = [c.get("name", "") for c in product.get("categories") or [] if isinstance(c, dict)]
    tags = [str(t.get("name", "")) for t in product.get("tags") or [] if isinstance(t, dict)]
    seen: set[tuple[str, str]] = set()
    for v in variants:  # attributes other than size and colour are not kept: two the same cannot both be
        if (v.variant.size, v.variant.colour) in seen:
            raise MappingError(f"product {slug!r} has two variations of size {v.variant.size} in {v.variant.colour}")
        seen.add((v.variant.size, v.variant.colour))
    images = [i for i in product.get("images") or [] if isinstance(i, dict) and isinstance(i.get("src"), str)]
    imported = ImportedProduct(
        sku=slug,
        name=str(product.get("name") or slug).strip(),
        category=category_of(categories[0] if categories else "", ""),
        description=plain_text(str(product.get("description") or product.get("short_description") or "")),
        tags=[t.strip() for t in tags if t.strip()],
        line=0,
        variants=[v.variant for v in variants],
    )
    # A variation changes on its own (its stock, its price): the product's time is the newest of all.
    updated_at = max(
        [parse_time(product.get("date_modified_gmt"), "date_modified_gmt")]
        + [
            parse_time(v["date_modified_gmt"], "variation date_modified_gmt")
            for v in variations or []
            if isinstance(v, dict) and v.get("date_modified_gmt")
        ]
    )
    return ShopProduct(
        external_id,
        updated_at,
        product.get("status") == VISIBLE and kind in SOLD_HERE and bool(variants),
        imported,
        variants,
        images[0]["src"] if images else None,
    )
