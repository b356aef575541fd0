"""Magento's products onto ours: a configurable product and its simple children become one
product and its variants (the children's `size` and `color` attributes, option ids read as
their labels, become our size and colour), a simple product sold on its own one product with
one variant; stock is the sum of its sources' quantities (MSI source items, status 1 only).
Pure: no store, no network."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from integrations.catalog_import import NO_COLOUR, NO_SIZE, ImportedVariant, size_and_colour
from integrations.commerce.model import Level, MappingError, ShopProduct, ShopVariant, price_cents, product_of

log = logging.getLogger(__name__)
ENABLED = 1  # status: 1 enabled, 2 disabled
NOT_VISIBLE_INDIVIDUALLY = 1  # visibility: a configurable's child, sold only through it
IN_STOCK = 1  # a source item's status: 1 in stock, 0 out of stock

__all__ = ["Level", "MappingError", "ShopProduct", "ShopVariant", "from_rest", "parse_time", "option_codes"]


def parse_time(value: Any, what: str = "updated_at") -> datetime:
    """Magento's `2026-12-01 09:00:00` (UTC, as the REST API gives it) in UTC."""
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def magento_time(moment: datetime) -> str:
    """The form Magento compares `updated_at` with: `2026-12-01 09:00:00`, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def attributes(item: dict[str, Any]) -> dict[str, Any]:
    """A product's `custom_attributes` as code -> value."""
    return {
        str(a.get("attribute_code")): a.get("value")
        for a in item.get("custom_attributes") or []
        if isinstance(a, dict) and a.get("attribute_code")
    }


def _kind(code: str) -> str | None:
    size, colour = size_and_colour([(code.replace("_", " "), "x")])
    return "size" if size else "colour" if colour else None


def option_codes(items: list[dict[str, Any]]) -> set[str]:
    """The attribute codes among these products' that are a size or a colour (size, color,
    shoe_size ...): their option ids need their labels."""
    return {code for item in items for code in attributes(item) if _kind(code)}


def _options(item: dict[str, Any], labels: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    out = []
    for code, value in attributes(item).items():
        kind = _kind(code)
        if kind is None or value in (None, ""):
            continue
        out.append((kind, labels.get(code, {}).get(str(value), str(value))))
    return out


def image_url(item: dict[str, Any], media_base: str) -> str | None:
    """The first enabled image of `media_gallery_entries`, under `{MAGENTO_URL}/media/catalog/product`."""
    entries = sorted(
        (e for e in item.get("media_gallery_entries") or [] if isinstance(e, dict)),
        key=lambda e: ("image" not in (e.get("types") or []), e.get("position") or 0),
    )
    for entry in entries:
        file = entry.get("file")
        if entry.get("media_type", "image") == "image" and not entry.get("disabled") and isinstance(file, str):
            return f"{media_base.rstrip('/')}/media/catalog/product/{file.lstrip('/')}"
    return None


def _handle(item: dict[str, Any]) -> str:
    key = attributes(item).get("url_key")
    text = key if isinstance(key, str) and key.strip() else str(item.get("sku") or "")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _variant(child: dict[str, Any], labels: dict[str, dict[str, str]], levels: dict[str, list[Level]]) -> ShopVariant:
    sku = child.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise MappingError(f"product {child.get('id')} has no sku")
    size, colour = size_and_colour(_options(child, labels))
    variant = ImportedVariant(
        sku=sku.strip(),
        size=size or NO_SIZE,
        colour=colour or NO_COLOUR,
        stock=0,
        price_cents=price_cents(child.get("price", 0)),
        line=0,
    )
    return ShopVariant(sku.strip(), sku.strip(), levels.get(sku.strip(), []), 0, variant)


def from_rest(
    item: dict[str, Any],
    children: list[dict[str, Any]],
    labels: dict[str, dict[str, str]],
    levels: dict[str, list[Level]],
    media_base: str,
) -> ShopProduct:
    """A product of `GET products` (a configurable with its `children`, or a simple one), with
    the option labels by attribute code and the stock per source of each SKU.

    Raises:
        MappingError: a field we need is missing or wrong.
    """
    sku = item.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise MappingError(f"product {item.get('id')} has no sku")
    enabled_children = [c for c in children if c.get("status", ENABLED) == ENABLED]
    if item.get("type_id") == "configurable":
        variants = [_variant(c, labels, levels) for c in enabled_children]
    else:
        variants = [_variant(item, labels, levels)]
    updated = max(parse_time(p.get("updated_at")) for p in [item, *children])
    custom = attributes(item)
    name = str(item.get("name") or sku).strip()
    return product_of(
        sku.strip(),
        _handle(item),
        name,
        custom.get("description") or custom.get("short_description") or "",
        name,  # Magento's categories are ids; the name's words say what it is (Rain Jacket -> jackets)
        [],
        "active" if item.get("status", ENABLED) == ENABLED else "disabled",
        updated,
        variants,
        image_url(item, media_base)
        or next((image_url(c, media_base) for c in children if image_url(c, media_base)), None),
    )


def source_levels(items: list[dict[str, Any]], seen_at: datetime) -> dict[str, list[Level]]:
    """MSI source items (`sku`, `source_code`, `quantity`, `status`) as each SKU's stock per
    source, as seen at `seen_at` (source items carry no time of their own). A source whose
    status is out of stock counts 0; one whose quantity is not a number is skipped."""
    out: dict[str, list[Level]] = {}
    for s in items:
        sku, source = s.get("sku"), s.get("source_code")
        if not isinstance(sku, str) or not isinstance(source, str):
            continue
        try:
            quantity = int(float(s.get("quantity") or 0))
        except (TypeError, ValueError):
            log.warning("magento source item skipped: quantity is not a number", extra={"sku": sku, "source": source})
            continue  # the copy keeps what it had rather than guess
        available = max(0, quantity) if s.get("status") == IN_STOCK else 0
        out.setdefault(sku, []).append(Level(source, available, seen_at))
    return out
