"""Catalog and inventory: products, variants, stock, related items and the restock waitlist."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from rapidfuzz import fuzz
from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from bot.store.database import Database
from bot.store.models import Product, RelatedProduct, Variant, WaitlistEntry


@dataclass(frozen=True)
class VariantView:
    sku: str
    size: str
    colour: str
    stock: int


@dataclass(frozen=True)
class ProductView:
    sku: str
    name: str
    category: str
    description: str
    price_cents: int
    tags: tuple[str, ...]
    colour_hex: str
    variants: tuple[VariantView, ...]
    name_zh: str | None = None
    description_zh: str | None = None
    image_url: str | None = None

    @property
    def in_stock(self) -> bool:
        return any(v.stock > 0 for v in self.variants)

    def sizes(self, in_stock: bool = True, colour: str | None = None) -> list[str]:
        seen: list[str] = []
        for v in self.variants:
            if (not in_stock or v.stock > 0) and (colour is None or v.colour == colour) and v.size not in seen:
                seen.append(v.size)
        return seen

    def colours(self, size: str | None = None, in_stock: bool = True) -> list[str]:
        seen: list[str] = []
        for v in self.variants:
            if (not in_stock or v.stock > 0) and (size is None or v.size == size) and v.colour not in seen:
                seen.append(v.colour)
        return seen

    def variant(self, size: str | None, colour: str | None) -> VariantView | None:
        for v in self.variants:
            if (size is None or v.size == size) and (colour is None or v.colour == colour):
                return v
        return None

    def has_size(self, size: str) -> bool:
        return any(v.size == size for v in self.variants)


class Catalog(Protocol):
    """What dialogs may ask of the catalog."""

    async def product(self, sku: str) -> ProductView | None: ...
    async def search(
        self,
        query: str = "",
        category: str | None = None,
        colour: str | None = None,
        size: str | None = None,
        limit: int = 5,
    ) -> list[ProductView]: ...
    async def similar_in_stock(self, product: ProductView, size: str | None, limit: int = 3) -> list[ProductView]: ...
    async def related(self, sku: str, limit: int = 3) -> list[ProductView]: ...
    async def join_waitlist(self, customer_id: str, variant_skus: list[str]) -> int: ...
    async def categories(self) -> list[str]: ...


QUERY_FILLER = {
    "do",
    "you",
    "have",
    "the",
    "these",
    "those",
    "this",
    "that",
    "in",
    "size",
    "any",
    "some",
    "show",
    "me",
    "please",
    "are",
    "is",
    "there",
    "what",
    "which",
    "for",
    "with",
    "and",
    "a",
    "an",
    "of",
    "my",
}
CJK_TAG_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
SIZE_ORDER = {s: i for i, s in enumerate(["XXS", "XS", "S", "M", "L", "XL", "XXL", "OS"])}


def size_key(size: str) -> tuple[int, float, str]:
    """Sizes in the order a shopper reads them: 7 < 9 < 10, XS < S < M < L < XL."""
    try:
        return (0, float(size), size)
    except ValueError:
        return (1, SIZE_ORDER.get(size.upper(), 99), size)


_PRODUCT, _VARIANT = Product.__table__, Variant.__table__
# Prepared once: stock checks read a product afresh on every turn that asks about one.
_ALL_PRODUCTS = sa_select(_PRODUCT).order_by(_PRODUCT.c.sku)
_ALL_VARIANTS = sa_select(_VARIANT).order_by(_VARIANT.c.sku)
_PRODUCTS = _ALL_PRODUCTS.where(_PRODUCT.c.sku.in_(bindparam("skus", expanding=True)))
_VARIANTS = _ALL_VARIANTS.where(_VARIANT.c.product_sku.in_(bindparam("skus", expanding=True)))


def _view(product: Product, variants: list[Variant]) -> ProductView:
    """A product (a model or a row with the same columns) and its variants as dialogs see it."""
    variants = sorted(variants, key=lambda v: (size_key(v.size), v.colour))
    return ProductView(
        sku=product.sku,
        name=product.name,
        category=product.category,
        description=product.description,
        price_cents=product.price_cents,
        tags=tuple(t for t in product.tags.split(",") if t),
        colour_hex=product.colour_hex,
        variants=tuple(VariantView(v.sku, v.size, v.colour, v.stock) for v in variants),
        name_zh=product.name_zh,
        description_zh=product.description_zh,
        image_url=product.image_url,
    )


class StoreCatalog:
    """The catalog kept in our own store.

    Browsing reads the whole catalog, so it is cached for `cache_seconds`: a search may show
    stock a moment old, while adding to the cart and checking out always check stock afresh.
    """

    def __init__(self, db: Database, cache_seconds: float = 2.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, list[ProductView]] | None = None

    @staticmethod
    def _load(session: Session, skus: list[str] | None = None) -> list[ProductView]:
        connection = session.connection()
        if skus is None:
            products = connection.execute(_ALL_PRODUCTS).all()
            variants = connection.execute(_ALL_VARIANTS).all()
        else:
            products = connection.execute(_PRODUCTS, {"skus": skus}).all()
            variants = connection.execute(_VARIANTS, {"skus": skus}).all()
        by_product: dict[str, list] = {}
        for v in variants:
            by_product.setdefault(v.product_sku, []).append(v)
        return [_view(p, by_product.get(p.sku, [])) for p in products]

    async def all(self) -> list[ProductView]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self._cache_seconds:
            self._cached = (now, await self._db.run(self._load))
        return self._cached[1]

    async def categories(self) -> list[str]:
        """The shop's categories, those with the most products first: what the bot says the shop
        sells when it has not got what was asked for."""
        counts = Counter(p.category for p in await self.all() if p.category)
        return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    async def product(self, sku: str) -> ProductView | None:
        found = await self._db.run(lambda s: self._load(s, [sku]))
        return found[0] if found else None

    async def search(
        self,
        query: str = "",
        category: str | None = None,
        colour: str | None = None,
        size: str | None = None,
        limit: int = 5,
    ) -> list[ProductView]:
        products = await self.all()
        query = query.lower()
        asked = {w.rstrip("s") for w in re.findall(r"[a-z][a-z-]+", query) if w not in QUERY_FILLER}
        scored: list[tuple[float, ProductView]] = []
        for p in products:
            if category and p.category != category:
                continue
            if colour and colour not in p.colours(size):
                continue
            if size and size not in p.sizes(colour=colour):
                continue
            tags = " ".join(search_tags(p.tags))
            text = " ".join((p.name, p.category, tags, p.description)).lower()
            score = fuzz.token_set_ratio(query, text) if query else 50.0
            # A word the shopper used that names the product or one of its tags ("sneakers") counts
            # far more than fuzzy likeness of the whole sentence.
            own = {w.rstrip("s") for w in re.findall(r"[a-z][a-z-]+", " ".join((p.name, tags)).lower())}
            score += 30 * len(asked & own)
            score += 20 if p.in_stock else 0
            scored.append((score, p))
        scored.sort(key=lambda sp: (-sp[0], sp[1].name))
        return [p for _, p in scored[:limit]]

    async def similar_in_stock(self, product: ProductView, size: str | None, limit: int = 3) -> list[ProductView]:
        query = " ".join(search_tags(product.tags))
        peers = await self.search(query, category=product.category, size=size, limit=limit + 1)
        return [p for p in peers if p.sku != product.sku and p.in_stock][:limit]

    async def related(self, sku: str, limit: int = 3) -> list[ProductView]:
        def load(session: Session) -> list[ProductView]:
            skus = session.exec(select(RelatedProduct.related_sku).where(RelatedProduct.product_sku == sku)).all()
            return [p for p in self._load(session, list(skus)) if p.in_stock]

        return (await self._db.run(load))[:limit]

    async def join_waitlist(self, customer_id: str, variant_skus: list[str]) -> int:
        def join(session: Session) -> int:
            added = 0
            for sku in variant_skus:
                open_entry = session.exec(
                    select(WaitlistEntry).where(
                        WaitlistEntry.customer_id == customer_id,
                        WaitlistEntry.variant_sku == sku,
                        WaitlistEntry.notified_at.is_(None),
                    )
                ).first()
                if open_entry is None:
                    session.add(WaitlistEntry(customer_id=customer_id, variant_sku=sku))
                    added += 1
            return added

        return await self._db.run(join)


def search_tags(tags: tuple[str, ...]) -> list[str]:
    """The tags a search scores on: the Chinese ones ("斜背包") are names the recogniser matches a
    Chinese message against, not words of an English query."""
    return [t for t in tags if not CJK_TAG_RE.search(t)]
