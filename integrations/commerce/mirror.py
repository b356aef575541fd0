"""The local copy of a commerce platform's catalog (Shopify, WooCommerce, Magento), keyed by platform:
products, variants and stock per location written into the store (through the same upsert as
the CSV import), each with the platform's time of change, so a delivery older than what the
store holds changes nothing. Runs in the caller's transaction;
returns how many variants came back in stock, for the restock waitlist."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, delete, select, update

from bot.store.database import among, insert_many
from bot.store.models import CommerceProduct, CommerceStock, CommerceVariant, Product, Variant, as_utc
from integrations.catalog_import import variant_key
from integrations.catalog_upsert import remove_products
from integrations.commerce.freshness import mark_confirmed
from integrations.commerce.model import ShopProduct

log = logging.getLogger(__name__)
PLATFORM = "shopify"  # the default platform of these functions
# A new product's columns the platform does not give.
NEW_PRODUCT = {"colour_hex": Product.model_fields["colour_hex"].default}
# The product columns a platform's product sets, in the order `_PageWrite.products` holds them.
PRODUCT_COLUMNS = (
    "name",
    "category",
    "description",
    "price_cents",
    "tags",
    "image_url",
    "name_zh",
    "description_zh",
)
ProductRow = tuple[str, str, str, int, str, str | None, str | None, str | None]


@dataclass
class SyncSummary:
    """What a sync, a reconcile or a webhook did to the local catalog."""

    products_seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # Shopify's version is not newer than the store's
    hidden: int = 0  # draft or archived (or without variants): not offered
    renamed: int = 0  # an existing product's name (or zh-TW name) changed: the recogniser learns it
    removed: int = 0
    sold_out: int = 0  # gone from Shopify, kept with no stock (a cart or waitlist names them)
    variants_created: int = 0
    variants_updated: int = 0
    restocked: int = 0
    refused: list[str] = field(default_factory=list)  # products that could not be read
    notified: dict[str, int] = field(default_factory=dict)
    read_seconds: float = 0.0  # waiting for the platform's pages (and mapping them)
    write_seconds: float = 0.0  # writing them into the store

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
    """Write one product of the platform into the store (a webhook), unless the store's copy is as new."""
    apply_products(session, [shop], summary, platform)


def apply_products(session: Session, shops: list[ShopProduct], summary: SyncSummary, platform: str = PLATFORM) -> None:
    """Write a page of the platform's products into the store, each unless the store's copy is as
    new: the rows they touch are read in a few queries, the changes worked out here, and written
    with one statement per table and kind of change (see `_PageWrite`)."""
    if shops:
        _PageWrite(session, platform, shops).apply(summary)


def _table(model: Any) -> Table:
    return model.__table__


@dataclass
class _VariantRow:
    product_sku: str
    size: str
    colour: str
    stock: int


@dataclass
class _LinkRow:
    variant_sku: str
    product_external_id: str
    inventory_item_id: str | None


class _PageWrite:
    """One page of products applied as the row-by-row rules say (a level is kept unless the store's
    is newer; a product unless its link is as new; a variant SKU another product has gets a key of
    its own; a variant gone from the platform is sold out), on rows read up front and written at
    the end. Products are applied in order, on the rows as the ones before them left them."""

    def __init__(self, session: Session, platform: str, shops: list[ShopProduct]) -> None:
        self.session, self.platform, self.shops = session, platform, shops
        ids = list(dict.fromkeys(s.external_id for s in shops))
        items = list(dict.fromkeys(v.inventory_item_id for s in shops for v in s.variants if v.inventory_item_id))
        p = platform
        self.links: dict[str, tuple[str, datetime]] = {
            external_id: (sku, as_utc(at))
            for external_id, sku, at in self._rows(
                select(
                    CommerceProduct.external_id, col(CommerceProduct.product_sku), col(CommerceProduct.updated_at)
                ).where(CommerceProduct.platform == p, among(session, col(CommerceProduct.external_id), ids))
            )
        }
        self.stored_links = set(self.links)
        self.levels: dict[str, dict[str, tuple[int, datetime]]] = {}  # item -> location -> (available, time)
        for item, location, available, at in self._rows(
            select(
                col(CommerceStock.inventory_item_id),
                col(CommerceStock.location_id),
                col(CommerceStock.available),
                col(CommerceStock.updated_at),
            ).where(CommerceStock.platform == p, among(session, col(CommerceStock.inventory_item_id), items))
        ):
            self.levels.setdefault(item, {})[location] = (available, as_utc(at))
        self.stored_levels = {(item, location) for item, held in self.levels.items() for location in held}
        self.vlinks: dict[str, _LinkRow] = {}
        self.by_product: dict[str, set[str]] = {}  # product external id -> its variants' external ids
        self.by_item: dict[str, str] = {}  # inventory item -> the external id of a variant kept on it
        columns = (
            col(CommerceVariant.external_id),
            col(CommerceVariant.variant_sku),
            col(CommerceVariant.product_external_id),
            col(CommerceVariant.inventory_item_id),
        )
        variant_ids = list(dict.fromkeys(v.external_id for s in shops for v in s.variants))
        for where in (  # the page's products' variants, and whatever else is kept on their items or ids
            among(session, col(CommerceVariant.product_external_id), ids),
            among(session, col(CommerceVariant.inventory_item_id), items),
            among(session, col(CommerceVariant.external_id), variant_ids),
        ):
            for external_id, sku, product_id, item in self._rows(
                select(*columns).where(CommerceVariant.platform == p, where)
            ):
                self._set_vlink(external_id, _LinkRow(sku, product_id, item))
        self.variants: dict[str, _VariantRow | None] = {}
        self._load_variants(
            [v.variant.sku for s in shops for v in s.variants] + [link.variant_sku for link in self.vlinks.values()]
        )
        self.products: dict[str, ProductRow | None] = {}
        self._load_products([sku for sku, _ in self.links.values()] + [s.product.sku for s in shops])
        # What is written at the end, by key.
        self.level_changes: dict[tuple[str, str], tuple[int, datetime]] = {}
        self.link_changes: dict[str, tuple[str, datetime]] = {}
        self.product_changes: dict[str, dict] = {}
        self.variant_changes: set[str] = set()
        self.new_products: set[str] = set()
        self.new_variants: set[str] = set()
        self.vlink_changes: set[str] = set()
        self.vlink_deletes: set[str] = set()
        self.new_vlinks: set[str] = set()
        self.hidden: list[str] = []  # product SKUs to take out of the catalog

    def _rows(self, statement) -> list:
        return list(self.session.exec(statement).all())

    def _load_variants(self, skus: list[str]) -> None:
        """Read the variants of these SKUs not held yet (a SKU given a key of its own, say)."""
        if all(sku in self.variants for sku in skus):
            return
        missing = [sku for sku in dict.fromkeys(skus) if sku not in self.variants]
        for sku in missing:
            self.variants[sku] = None
        for sku, product_sku, size, colour, stock in self._rows(
            sa_select(
                col(Variant.sku), col(Variant.product_sku), col(Variant.size), col(Variant.colour), col(Variant.stock)
            ).where(among(self.session, col(Variant.sku), missing))
        ):
            self.variants[sku] = _VariantRow(product_sku, size, colour, stock)

    def _load_products(self, skus: list[str]) -> None:
        if all(sku in self.products for sku in skus):
            return
        missing = [sku for sku in dict.fromkeys(skus) if sku not in self.products]
        for sku in missing:
            self.products[sku] = None
        for row in self._rows(
            sa_select(
                col(Product.sku),
                col(Product.name),
                col(Product.category),
                col(Product.description),
                col(Product.price_cents),
                col(Product.tags),
                col(Product.image_url),
                col(Product.name_zh),
                col(Product.description_zh),
            ).where(among(self.session, col(Product.sku), missing))
        ):
            self.products[row[0]] = tuple(row[1:])  # type: ignore[assignment]

    # --- the rules, on the rows held here ------------------------------------------------------

    def _stock_of(self, item: str) -> int | None:
        """The sum over locations (never below 0), or None when no location's level is known."""
        known = self.levels.get(item)
        return max(0, sum(available for available, _ in known.values())) if known else None

    def _put_level(self, item: str, location: str, available: int, updated_at: datetime) -> None:
        held = self.levels.setdefault(item, {})
        if location in held and held[location][1] >= updated_at:
            return
        held[location] = self.level_changes[(item, location)] = (available, updated_at)

    def _set_vlink(self, external_id: str, row: _LinkRow) -> None:
        old = self.vlinks.get(external_id)
        if old is not None:
            self.by_product.get(old.product_external_id, set()).discard(external_id)
        self.vlinks[external_id] = row
        self.by_product.setdefault(row.product_external_id, set()).add(external_id)
        if row.inventory_item_id:
            self.by_item.setdefault(row.inventory_item_id, external_id)

    def _set_stock(self, sku: str, stock: int) -> None:
        row = self.variants[sku]
        assert row is not None
        if row.stock != stock:
            row.stock = stock
            self.variant_changes.add(sku)

    def _restock_item(self, item: str) -> int:
        kept_on = self.by_item.get(item)
        link = self.vlinks.get(kept_on) if kept_on is not None else None
        stock = self._stock_of(item)
        if link is None or stock is None:
            return 0
        self._load_variants([link.variant_sku])
        row = self.variants[link.variant_sku]
        if row is None:
            return 0
        came_back = int(row.stock == 0 and stock > 0)
        self._set_stock(link.variant_sku, stock)
        return came_back

    def apply(self, summary: SyncSummary) -> None:
        for shop in self.shops:
            self._apply(shop, summary)
        self._write()
        if self.hidden:
            removed, sold_out = remove_products(self.session, self.hidden)
            summary.removed += removed
            summary.sold_out += sold_out
        self.session.flush()

    def _apply(self, shop: ShopProduct, summary: SyncSummary) -> None:
        summary.products_seen += 1
        for v in shop.variants:  # each location's level has its own time
            if v.levels is not None and v.inventory_item_id:
                for level in v.levels:
                    self._put_level(v.inventory_item_id, level.location_id, level.available, level.updated_at)
        link = self.links.get(shop.external_id)
        if link is not None and link[1] >= shop.updated_at:
            summary.unchanged += 1
            # A translation's change does not change the product's time on the platform.
            self._translate(link[0], shop, summary)
            for v in shop.variants:  # the product is as it was, its stock may not be
                if v.inventory_item_id:
                    summary.restocked += self._restock_item(v.inventory_item_id)
            return
        # Our key of a product stays what it was first, even if its handle changes in the platform.
        sku = link[0] if link is not None else shop.product.sku
        shop.product.sku = sku
        self.links[shop.external_id] = self.link_changes[shop.external_id] = (sku, shop.updated_at)
        old_links = sorted(self.by_product.get(shop.external_id, ()))
        if not shop.visible:
            summary.hidden += 1
            self._load_products([sku])
            if self.products[sku] is not None or sku in self.new_products:
                self.hidden.append(sku)
            for old in old_links:
                self._drop_vlink(old)
            return
        self._load_variants([v.variant.sku for v in shop.variants])
        for v in shop.variants:
            found = self.variants.get(v.variant.sku)
            if found is not None and found.product_sku != sku:
                # The platform does not keep SKUs unique; ours are. This one gets a key of its own.
                v.variant.sku = variant_key(sku, [v.variant.size, v.variant.colour])
            known = self._stock_of(v.inventory_item_id) if v.inventory_item_id else None
            v.variant.stock = known if known is not None else v.total
        self._load_variants([v.variant.sku for v in shop.variants])
        self._upsert_product(shop, summary)
        kept = {v.external_id for v in shop.variants}
        for old in old_links:
            if old not in kept:  # a variant deleted on the platform: sold out here
                gone = self.vlinks[old].variant_sku
                self._load_variants([gone])
                if self.variants[gone] is not None:
                    self._set_stock(gone, 0)
                self._drop_vlink(old)
        for v in shop.variants:
            row = _LinkRow(v.variant.sku, shop.external_id, v.inventory_item_id)
            if v.external_id in self.vlink_deletes:
                self.vlink_deletes.discard(v.external_id)
                self.vlink_changes.add(v.external_id)
            elif v.external_id not in self.vlinks:
                self.new_vlinks.add(v.external_id)
            elif self.vlinks[v.external_id] != row:
                self.vlink_changes.add(v.external_id)
            self._set_vlink(v.external_id, row)

    def _drop_vlink(self, external_id: str) -> None:
        row = self.vlinks.pop(external_id)
        self.by_product.get(row.product_external_id, set()).discard(external_id)
        if row.inventory_item_id and self.by_item.get(row.inventory_item_id) == external_id:
            del self.by_item[row.inventory_item_id]
        if external_id in self.new_vlinks:
            self.new_vlinks.discard(external_id)
        else:
            self.vlink_changes.discard(external_id)
            self.vlink_deletes.add(external_id)

    def _put_product(self, sku: str, held: ProductRow | None, values: ProductRow) -> None:
        if held != values:
            self.products[sku] = values
            self.product_changes[sku] = dict(zip(PRODUCT_COLUMNS, values))

    def _translate(self, sku: str, shop: ShopProduct, summary: SyncSummary) -> None:
        """A product as new as the store's: only its zh-TW name and description, if read and changed."""
        if shop.zh is None or not shop.visible:
            return
        self._load_products([sku])
        held = self.products[sku]
        if held is None:
            return
        values = (*held[:6], shop.zh.name, shop.zh.description)
        summary.renamed += held[6] != shop.zh.name
        self._put_product(sku, held, values)

    def _upsert_product(self, shop: ShopProduct, summary: SyncSummary) -> None:
        """As `upsert_product` of the CSV import does it: the product's fields, its variants'
        size, colour and stock; a variant from 0 to some stock is restocked. Its zh-TW name and
        description are the platform's translation when it was read, else what the store has."""
        product = shop.product
        self._load_products([product.sku])
        held = self.products[product.sku]
        added = held is None
        image = shop.image_url if shop.image_url is not None else (held[5] if held is not None else None)
        if shop.zh is not None:
            zh = (shop.zh.name, shop.zh.description)
        else:
            zh = (held[6], held[7]) if held is not None else (None, None)
        values: ProductRow = (
            product.name,
            product.category,
            product.description,
            product.price_cents,
            ",".join(product.tags),
            image,
            *zh,
        )
        self._put_product(product.sku, held, values)
        if added:
            self.new_products.add(product.sku)
            summary.created += 1
        else:
            summary.updated += 1
            summary.renamed += held is not None and (held[0], held[6]) != (product.name, values[6])
        for variant in product.variants:
            current = self.variants.get(variant.sku)
            if current is None:
                summary.variants_created += 1
                self.variants[variant.sku] = _VariantRow(product.sku, variant.size, variant.colour, variant.stock)
                self.new_variants.add(variant.sku)
                continue
            summary.variants_updated += 1
            if current.stock == 0 and variant.stock > 0:
                summary.restocked += 1
            if (current.size, current.colour, current.stock) != (variant.size, variant.colour, variant.stock):
                current.size, current.colour, current.stock = variant.size, variant.colour, variant.stock
                self.variant_changes.add(variant.sku)

    # --- the writes ---------------------------------------------------------------------------

    def _write(self) -> None:
        session, p = self.session, self.platform
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for (item, location), (available, at) in self.level_changes.items():
            row = {
                "platform": p,
                "inventory_item_id": item,
                "location_id": location,
                "available": available,
                "updated_at": at,
            }
            (updates if (item, location) in self.stored_levels else inserts).append(row)
        insert_many(session, _table(CommerceStock), inserts)
        self._update(CommerceStock, updates)
        links = [
            {"platform": p, "external_id": e, "product_sku": sku, "updated_at": at}
            for e, (sku, at) in self.link_changes.items()
        ]
        insert_many(session, _table(CommerceProduct), [r for r in links if r["external_id"] not in self.stored_links])
        self._update(CommerceProduct, [r for r in links if r["external_id"] in self.stored_links])
        products = [{"sku": sku, **values} for sku, values in self.product_changes.items()]
        new = [{**NEW_PRODUCT, **r} for r in products if r["sku"] in self.new_products]  # every column: COPY
        insert_many(session, _table(Product), new)
        self._update(Product, [r for r in products if r["sku"] not in self.new_products])
        rows = []
        for sku in self.new_variants | self.variant_changes:
            v = self.variants[sku]
            assert v is not None
            rows.append(
                {"sku": sku, "product_sku": v.product_sku, "size": v.size, "colour": v.colour, "stock": v.stock}
            )
        insert_many(session, _table(Variant), [r for r in rows if r["sku"] in self.new_variants])
        self._update(Variant, [r for r in rows if r["sku"] not in self.new_variants])
        if self.vlink_deletes:
            session.exec(  # type: ignore[call-overload]
                delete(CommerceVariant).where(
                    col(CommerceVariant.platform) == p, among(session, CommerceVariant.external_id, self.vlink_deletes)
                )
            )
        vlinks = []
        for e in self.new_vlinks | self.vlink_changes:
            link = self.vlinks[e]
            vlinks.append(
                {
                    "platform": p,
                    "external_id": e,
                    "variant_sku": link.variant_sku,
                    "product_external_id": link.product_external_id,
                    "inventory_item_id": link.inventory_item_id,
                }
            )
        insert_many(session, _table(CommerceVariant), [r for r in vlinks if r["external_id"] in self.new_vlinks])
        self._update(CommerceVariant, [r for r in vlinks if r["external_id"] not in self.new_vlinks])

    def _update(self, model: Any, rows: list[dict[str, Any]]) -> None:
        """An UPDATE by primary key of each row (one executemany per set of columns)."""
        if rows:
            self.session.exec(update(model), params=rows)  # type: ignore[call-overload]


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
    links = session.exec(
        select(CommerceProduct.external_id, col(CommerceProduct.product_sku)).where(
            CommerceProduct.platform == platform
        )
    ).all()
    gone = [(external_id, sku) for external_id, sku in links if external_id not in seen]
    if not gone:
        return
    skus = [sku for sku in dict.fromkeys(sku for _, sku in gone)]
    present = set(session.exec(select(Product.sku).where(among(session, col(Product.sku), skus))).all())
    if present:
        removed, sold_out = remove_products(session, [sku for sku in skus if sku in present])
        summary.removed += removed
        summary.sold_out += sold_out
    session.exec(  # type: ignore[call-overload]
        delete(CommerceVariant).where(
            col(CommerceVariant.platform) == platform,
            among(session, col(CommerceVariant.product_external_id), [external_id for external_id, _ in gone]),
        )
    )
    session.flush()
