"""The local copy of a commerce platform's catalog (Shopify, WooCommerce, Magento), keyed by platform:
products, variants and stock per location written into the store (through the same upsert as
the CSV import), each with the platform's time of change, so a delivery older than what the
store holds changes nothing. Runs in the caller's transaction;
returns how many variants came back in stock, for the restock waitlist."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.store.models import CommerceProduct, CommerceStock, CommerceVariant, Product, Variant, as_utc
from integrations.catalog_import import variant_key
from integrations.catalog_upsert import existing_variants, remove_products, upsert_product
from integrations.commerce.freshness import mark_confirmed
from integrations.commerce.model import ShopProduct

log = logging.getLogger(__name__)
PLATFORM = "shopify"  # the default platform of these functions


@dataclass
class SyncSummary:
    """What a sync, a reconcile or a webhook did to the local catalog."""

    products_seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # Shopify's version is not newer than the store's
    hidden: int = 0  # draft or archived (or without variants): not offered
    renamed: int = 0
    removed: int = 0
    sold_out: int = 0  # gone from Shopify, kept with no stock (a cart or waitlist names them)
    variants_created: int = 0
    variants_updated: int = 0
    restocked: int = 0
    refused: list[str] = field(default_factory=list)  # products that could not be read
    notified: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"products: {self.products_seen} read, {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed, {self.sold_out} kept sold out, "
            f"{self.hidden} not offered (draft or archived)",
            f"variants: {self.variants_created} created, {self.variants_updated} updated",
        ]
        if self.restocked:
            queued = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.notified.items())) or "none waiting"
            out.append(f"back in stock: {self.restocked} variants; waitlist notices: {queued}")
        if self.refused:
            out.append(f"not imported ({len(self.refused)}): " + "; ".join(self.refused[:5]))
        return out


def _stock_of(session: Session, item: str, platform: str = PLATFORM) -> int | None:
    """The sum over locations of an inventory item's stock (never below 0: Shopify lets a
    location oversell), or None when no location's level is known."""
    total, known = session.exec(
        select(func.sum(CommerceStock.available), func.count()).where(
            CommerceStock.platform == platform, CommerceStock.inventory_item_id == item
        )
    ).one()
    return None if not known else max(0, int(total or 0))


def put_level(
    session: Session, item: str, location: str, available: int, updated_at: datetime, platform: str = PLATFORM
) -> bool:
    """Keep a location's stock of an item unless the store has a newer one; True if it changed."""
    row = session.get(CommerceStock, (platform, item, location))
    if row is not None and as_utc(row.updated_at) >= updated_at:
        return False
    if row is None:
        row = CommerceStock(
            platform=platform, inventory_item_id=item, location_id=location, available=available, updated_at=updated_at
        )
    row.available, row.updated_at = available, updated_at
    session.add(row)
    session.flush()
    return True


def restock_item(session: Session, item: str, platform: str = PLATFORM) -> tuple[str | None, int]:
    """Set the stock of the variant kept on this inventory item to its sum over locations.
    Returns (its SKU or None if no variant of ours has it, 1 if it went from 0 to some)."""
    link = session.exec(
        select(CommerceVariant).where(CommerceVariant.platform == platform, CommerceVariant.inventory_item_id == item)
    ).first()
    stock = _stock_of(session, item, platform)
    variant = session.get(Variant, link.variant_sku) if link is not None else None
    if variant is None or stock is None:
        return None, 0
    came_back = int(variant.stock == 0 and stock > 0)
    variant.stock = stock
    session.add(variant)
    session.flush()
    return variant.sku, came_back


def apply_level(
    session: Session, item: str, location: str, available: int, updated_at: datetime, platform: str = PLATFORM
) -> tuple[str, int]:
    """An `inventory_levels/update` (or a Magento source item): returns ("stale" | "unknown" |
    "applied", restocked count). The platform told us its stock: it is confirmed now."""
    mark_confirmed(session, platform)
    if not put_level(session, item, location, available, updated_at, platform):
        return "stale", 0
    sku, came_back = restock_item(session, item, platform)
    return ("applied" if sku else "unknown"), came_back


def apply_product(session: Session, shop: ShopProduct, summary: SyncSummary, platform: str = PLATFORM) -> None:
    """Write one product of the platform into the store, unless the store's copy is as new."""
    summary.products_seen += 1
    link = session.get(CommerceProduct, (platform, shop.external_id))
    for v in shop.variants:  # each location's level has its own time
        if v.levels is not None and v.inventory_item_id:
            for level in v.levels:
                put_level(session, v.inventory_item_id, level.location_id, level.available, level.updated_at, platform)
    if link is not None and as_utc(link.updated_at) >= shop.updated_at:
        summary.unchanged += 1
        for v in shop.variants:  # the product is as it was, its stock may not be
            if v.inventory_item_id:
                summary.restocked += restock_item(session, v.inventory_item_id, platform)[1]
        return
    if link is None:
        link = CommerceProduct(
            platform=platform, external_id=shop.external_id, product_sku=shop.product.sku, updated_at=shop.updated_at
        )
    # Our key of a product stays what it was first, even if its handle changes in Shopify.
    shop.product.sku = link.product_sku
    link.updated_at = shop.updated_at
    session.add(link)  # kept for a removed product too: an older update must not bring it back
    old_links = session.exec(
        select(CommerceVariant).where(
            CommerceVariant.platform == platform, CommerceVariant.product_external_id == shop.external_id
        )
    ).all()
    if not shop.visible:
        summary.hidden += 1
        if session.get(Product, shop.product.sku) is not None:
            removed, sold_out = remove_products(session, [shop.product.sku])
            summary.removed += removed
            summary.sold_out += sold_out
        for old in old_links:
            session.delete(old)
        session.flush()
        return
    existing = existing_variants(session, [v.variant.sku for v in shop.variants])
    for v in shop.variants:
        found = existing.get(v.variant.sku)
        if found is not None and found.product_sku != shop.product.sku:
            # Shopify does not keep SKUs unique; ours are. This one gets a key of its own.
            v.variant.sku = variant_key(shop.product.sku, [v.variant.size, v.variant.colour])
        known = _stock_of(session, v.inventory_item_id, platform) if v.inventory_item_id else None
        v.variant.stock = known if known is not None else v.total
    existing = existing_variants(session, [v.variant.sku for v in shop.variants])
    done = upsert_product(session, shop.product, existing, shop.image_url)
    summary.created += done.added
    summary.updated += not done.added
    summary.variants_created += done.variants_added
    summary.variants_updated += done.variants_updated
    summary.restocked += done.restocked
    summary.renamed += done.renamed
    kept = {v.external_id for v in shop.variants}
    for old in old_links:
        if old.external_id not in kept:  # a variant deleted in Shopify: sold out here
            gone = session.get(Variant, old.variant_sku)
            if gone is not None:
                gone.stock = 0
                session.add(gone)
            session.delete(old)
    for v in shop.variants:
        row = session.get(CommerceVariant, (platform, v.external_id)) or CommerceVariant(
            platform=platform,
            external_id=v.external_id,
            variant_sku=v.variant.sku,
            product_external_id=shop.external_id,
        )
        row.variant_sku, row.product_external_id, row.inventory_item_id = (
            v.variant.sku,
            shop.external_id,
            v.inventory_item_id,
        )
        session.add(row)
    session.flush()


def delete_product(
    session: Session, external_id: str, deleted_at: datetime, summary: SyncSummary, platform: str = PLATFORM
) -> None:
    """A `products/delete`: the product leaves the catalog (or stays sold out if a cart or waitlist
    names it); its link is kept with the time of the deletion, so an older update is ignored."""
    link = session.get(CommerceProduct, (platform, external_id))
    if link is None:
        return
    if as_utc(link.updated_at) >= deleted_at:
        summary.unchanged += 1
        return
    link.updated_at = deleted_at
    session.add(link)
    if session.get(Product, link.product_sku) is not None:
        removed, sold_out = remove_products(session, [link.product_sku])
        summary.removed += removed
        summary.sold_out += sold_out
    for old in session.exec(
        select(CommerceVariant).where(
            CommerceVariant.platform == platform, CommerceVariant.product_external_id == external_id
        )
    ).all():
        session.delete(old)
    session.flush()


def remove_unseen(session: Session, seen: set[str], summary: SyncSummary, platform: str = PLATFORM) -> None:
    """After a full sync: the mirrored products the platform no longer has leave the catalog."""
    links = session.exec(select(CommerceProduct).where(CommerceProduct.platform == platform)).all()
    gone = [link for link in links if link.external_id not in seen]
    skus = [link.product_sku for link in gone if session.get(Product, link.product_sku) is not None]
    if skus:
        removed, sold_out = remove_products(session, skus)
        summary.removed += removed
        summary.sold_out += sold_out
    for link in gone:
        for old in session.exec(
            select(CommerceVariant).where(
                CommerceVariant.platform == platform, col(CommerceVariant.product_external_id) == link.external_id
            )
        ).all():
            session.delete(old)
    session.flush()
