"""Writing products and their variants into the store's catalog, and taking them out: the CSV
import's writes, and the rules the commerce mirror (`integrations/commerce/mirror.py`) applies to
a page of a platform's products in bulk; both take products out through `remove_products`.
Runs in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, delete, select

from bot.store.models import CartItem, Product, RelatedProduct, Variant, WaitlistEntry
from integrations.catalog_import import ImportedProduct


@dataclass
class Upserted:
    """What writing one product did."""

    added: bool
    variants_added: int
    variants_updated: int
    restocked: int  # variants that went from 0 to some stock
    renamed: bool = False  # an existing product's name changed


def upsert_product(
    session: Session, product: ImportedProduct, existing: dict[str, Variant], image_url: str | None = None
) -> Upserted:
    """Add or update a product (matched by `sku`) and its variants (matched by SKU; `existing`
    holds the store's rows of those SKUs, read once by the caller for a whole batch). Variants of
    the product that are not in `product` are left as they are."""
    row = session.get(Product, product.sku)
    added = row is None
    if row is None:
        row = Product(sku=product.sku, name=product.name, category=product.category, price_cents=0)
    renamed = not added and row.name != product.name
    row.name = product.name
    row.category = product.category
    row.description = product.description
    row.price_cents = product.price_cents
    row.tags = ",".join(product.tags)
    if image_url is not None:
        row.image_url = image_url
    session.add(row)
    session.flush()
    result = Upserted(added, 0, 0, 0, renamed)
    for variant in product.variants:
        current = existing.get(variant.sku)
        if current is None:
            result.variants_added += 1
            session.add(
                Variant(**{k: getattr(variant, k) for k in ("sku", "size", "colour", "stock")}, product_sku=product.sku)
            )
            continue
        result.variants_updated += 1
        if current.stock == 0 and variant.stock > 0:
            result.restocked += 1
        current.size, current.colour, current.stock = variant.size, variant.colour, variant.stock
        session.add(current)
    session.flush()
    return result


def existing_variants(session: Session, skus: list[str]) -> dict[str, Variant]:
    """The store's variants with these SKUs, by SKU."""
    if not skus:
        return {}
    return {v.sku: v for v in session.exec(select(Variant).where(col(Variant.sku).in_(skus))).all()}


def remove_products(session: Session, skus: list[str]) -> tuple[int, int]:
    """Delete these products; one whose variant a cart or waitlist names cannot be deleted
    (their rows point at it), so it stays with no stock. Returns (removed, kept sold out)."""
    removed = sold_out = 0
    for sku in skus:
        variants = session.exec(select(Variant).where(Variant.product_sku == sku)).all()
        names = [v.sku for v in variants]
        in_use = bool(names) and (
            session.exec(select(CartItem.id).where(col(CartItem.variant_sku).in_(names)).limit(1)).first() is not None
            or session.exec(select(WaitlistEntry.id).where(col(WaitlistEntry.variant_sku).in_(names)).limit(1)).first()
            is not None
        )
        if in_use:
            for variant in variants:
                variant.stock = 0
                session.add(variant)
            sold_out += 1
            continue
        session.exec(  # type: ignore[call-overload]
            delete(RelatedProduct).where(
                (col(RelatedProduct.product_sku) == sku) | (col(RelatedProduct.related_sku) == sku)
            )
        )
        for variant in variants:
            session.delete(variant)
        session.flush()
        product = session.get(Product, sku)
        if product is not None:
            session.delete(product)
            removed += 1
    session.flush()
    return removed, sold_out
