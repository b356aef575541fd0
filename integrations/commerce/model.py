"""A commerce platform's products as the catalog mirror takes them (`integrations/commerce/mirror.py`),
whichever platform they come from, and the readers of the values every platform sends. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from integrations.catalog_import import ImportedProduct, ImportedVariant, category_of, plain_text


class MappingError(ValueError):
    """A platform's resource we cannot read: the message says which field."""


def parse_time(value: Any, what: str = "updated_at") -> datetime:
    """An ISO 8601 time (`2026-12-03T10:00:00-05:00`, `...Z`), in UTC."""
    if not isinstance(value, str):
        raise MappingError(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def price_cents(value: Any) -> int:
    """`"19.99"` (a Money scalar or a REST price) -> 1999."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise MappingError(f"price {value!r} is not an amount")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Level:
    """Stock of an inventory item at one location, as of `updated_at`."""

    location_id: str
    available: int
    updated_at: datetime


@dataclass
class ShopVariant:
    external_id: str
    inventory_item_id: str | None
    levels: list[Level] | None  # per location (the API); None when not given (a webhook body)
    total: int  # the stock to keep when no location's level is known
    variant: ImportedVariant


@dataclass(frozen=True)
class Translation:
    """A product's name and description in the shop's Traditional Chinese (zh-TW) locale or
    store view, as plain text; None where the platform has none."""

    name: str | None
    description: str | None


def translation_of(title: Any, html: Any) -> Translation:
    """A platform's translated title and HTML description, blank ones as none."""
    name = title.strip() if isinstance(title, str) else ""
    text = plain_text(html) if isinstance(html, str) else ""
    return Translation(name or None, text or None)


@dataclass
class ShopProduct:
    external_id: str
    updated_at: datetime
    visible: bool
    product: ImportedProduct
    variants: list[ShopVariant]
    image_url: str | None
    # Its zh-TW name and description; None when they were not read (no locale set, or the
    # platform could not be asked): the store keeps what it has.
    zh: Translation | None = None


def product_of(
    external_id: str,
    handle: Any,
    title: Any,
    html: Any,
    product_type: Any,
    tags: list[str],
    status: Any,
    updated_at: datetime,
    variants: list[ShopVariant],
    image_url: Any,
) -> ShopProduct:
    """A platform's product with its variants as the mirror takes it; only an `active` one with
    variants is offered (a platform's draft, archived or disabled one is not).

    Raises:
        MappingError: no handle, or two variants of one size and colour.
    """
    if not isinstance(handle, str) or not handle.strip():
        raise MappingError(f"product {external_id} has no handle")
    product = ImportedProduct(
        sku=handle.strip(),
        name=str(title or handle).strip(),
        category=category_of(str(product_type or ""), ""),
        description=plain_text(str(html or "")),
        tags=[t.strip() for t in tags if t.strip()],
        line=0,
        variants=[v.variant for v in variants],
    )
    seen: set[tuple[str, str]] = set()
    for v in variants:  # options other than size and colour are not kept: the first such variant stands
        if (v.variant.size, v.variant.colour) in seen:
            raise MappingError(f"product {handle!r} has two variants of size {v.variant.size} in {v.variant.colour}")
        seen.add((v.variant.size, v.variant.colour))
    return ShopProduct(
        external_id,
        updated_at,
        str(status or "").lower() == "active" and bool(variants),
        product,
        variants,
        image_url if isinstance(image_url, str) and image_url else None,
    )
