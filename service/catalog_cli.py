"""`python app.py catalog import FILE.csv [--replace]`: load a shop's catalog from Shopify's
product CSV export. The whole file is checked first (`integrations/catalog_import.py`), then
written in one transaction: products matched by handle and variants by SKU are updated, new ones
added. A variant going from 0 to some stock tells its waitlist, as `PUT /api/inventory/{sku}`
does (the notices are queued in the store; a running server's outbox sends them)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, delete, select

from bot.config import Settings
from bot.delivery.policy import Policy
from bot.marketing.reminders import notify_restocked
from bot.marketing.scheduler import reminder_settings
from bot.store.models import CartItem, Product, RelatedProduct, Variant, WaitlistEntry, utcnow
from integrations.catalog_import import CatalogImportError, ParsedCatalog, decode, parse_shopify_csv
from service.wiring import build


def add_parser(sub) -> None:
    cmd = sub.add_parser("catalog", help="the shop's catalog (import)")
    ops = cmd.add_subparsers(dest="catalog_command", required=True)
    imp = ops.add_parser("import", help="add or update products from a Shopify product CSV export")
    imp.add_argument("file", type=Path, help="the CSV file (Shopify: Products > Export)")
    imp.add_argument(
        "--replace",
        action="store_true",
        help="also remove the products not in the file (those in a cart or on a waitlist are kept, sold out)",
    )


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    skipped: int = 0
    variants_added: int = 0
    variants_updated: int = 0
    others: int = 0  # products in the store not in the file
    removed: int = 0
    sold_out: int = 0  # with --replace: kept because a cart or waitlist names them, stock set to 0
    restocked: int = 0
    notified: dict[str, int] = field(default_factory=dict)

    def lines(self, replace: bool) -> list[str]:
        out = [
            f"products: {self.added} added, {self.updated} updated, {self.skipped} skipped (draft or archived)",
            f"variants: {self.variants_added} added, {self.variants_updated} updated",
        ]
        if replace:
            out.append(
                f"products not in the file: {self.removed} removed, {self.sold_out} kept as sold out "
                "(in a cart or on a waitlist)"
            )
        elif self.others:
            out.append(f"products not in the file: {self.others} left as they were (--replace removes them)")
        if self.restocked:
            queued = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.notified.items())) or "none waiting"
            out.append(f"back in stock: {self.restocked} variants; waitlist notices: {queued}")
        out.append("restart the bot so it learns new product names")
        return out


def apply_import(
    session: Session, parsed: ParsedCatalog, replace: bool, policy: Policy | None, settings: Settings
) -> Summary:
    """Write the parsed catalog; raises CatalogImportError (before writing) if a variant SKU of the
    file belongs to another product in the store."""
    summary = Summary(skipped=len(parsed.skipped))
    skus = [v.sku for p in parsed.products for v in p.variants]
    existing = {v.sku: v for v in session.exec(select(Variant).where(col(Variant.sku).in_(skus))).all()} if skus else {}
    for product in parsed.products:
        for variant in product.variants:
            found = existing.get(variant.sku)
            if found is not None and found.product_sku != product.sku:
                raise CatalogImportError(
                    f"line {variant.line}: variant SKU {variant.sku!r} belongs to product "
                    f"{found.product_sku!r} in the store, not {product.sku!r}"
                )
    restocked = False
    for product in parsed.products:
        row = session.get(Product, product.sku)
        if row is None:
            summary.added += 1
            row = Product(sku=product.sku, name=product.name, category=product.category, price_cents=0)
        else:
            summary.updated += 1
        row.name = product.name
        row.category = product.category
        row.description = product.description
        row.price_cents = product.price_cents
        row.tags = ",".join(product.tags)
        session.add(row)
        session.flush()
        for variant in product.variants:
            current = existing.get(variant.sku)
            if current is None:
                summary.variants_added += 1
                session.add(
                    Variant(
                        **{k: getattr(variant, k) for k in ("sku", "size", "colour", "stock")}, product_sku=product.sku
                    )
                )
                continue
            summary.variants_updated += 1
            if current.stock == 0 and variant.stock > 0:
                summary.restocked += 1
                restocked = True
            current.size, current.colour, current.stock = variant.size, variant.colour, variant.stock
            session.add(current)
    session.flush()
    kept = {p.sku for p in parsed.products} | set(parsed.skipped)
    others = [p for p in session.exec(select(Product.sku)).all() if p not in kept]
    summary.others = len(others)
    if replace:
        _remove(session, others, summary)
    if restocked and policy is not None:
        summary.notified = notify_restocked(session, policy, reminder_settings(settings), utcnow())
    return summary


def _remove(session: Session, skus: list[str], summary: Summary) -> None:
    """Delete the products not in the file; one whose variant a cart or waitlist names cannot be
    deleted (their rows point at it), so it stays with no stock."""
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
            summary.sold_out += 1
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
        summary.removed += 1
    session.flush()


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        parsed = parse_shopify_csv(decode(data))
    except CatalogImportError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    services = build(settings)
    try:
        summary = services.db.transaction(
            lambda session: apply_import(session, parsed, args.replace, services.policy, settings)
        )
    except CatalogImportError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    finally:
        services.db.close()
    print("\n".join(summary.lines(args.replace)))
    return 0
