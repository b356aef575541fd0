"""`python app.py catalog sync`: copy the commerce platform's catalog into the store (see
`integrations/commerce/sync.py`). `python app.py catalog import FILE.csv [--replace]`: load a
shop's catalog from Shopify's product CSV export. The whole file is checked first (`integrations/catalog_import.py`), then
written in one transaction: products matched by handle and variants by SKU are updated, new ones
added. A variant going from 0 to some stock tells its waitlist, as `PUT /api/inventory/{sku}`
does (the notices are queued in the store; a running server's outbox sends them)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select
from tqdm import tqdm

from bot.config import Settings
from bot.delivery.policy import Policy
from bot.marketing.reminders import ReminderSettings, notify_restocked
from bot.marketing.scheduler import reminder_settings
from bot.store.models import Product, utcnow
from integrations.catalog_import import CatalogImportError, ParsedCatalog, decode, parse_shopify_csv
from integrations.catalog_upsert import existing_variants, remove_products, upsert_product
from integrations.commerce.mirror import SyncSummary
from integrations.magento.client import MagentoError
from integrations.shopify.client import ShopifyError
from integrations.woocommerce.client import WooCommerceError
from service.wiring import build


def add_parser(sub) -> None:
    cmd = sub.add_parser("catalog", help="the shop's catalog (import, sync)")
    ops = cmd.add_subparsers(dest="catalog_command", required=True)
    ops.add_parser(
        "sync",
        help="copy the commerce platform's catalog (COMMERCE_BACKEND=shopify, woocommerce or magento) into the store",
    )
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
    session: Session, parsed: ParsedCatalog, replace: bool, policy: Policy | None, reminders: ReminderSettings
) -> Summary:
    """Write the parsed catalog; raises CatalogImportError (before writing) if a variant SKU of the
    file belongs to another product in the store. Variants back in stock queue their waitlist's
    notices (with `reminders.links`, each carries its tracked link)."""
    summary = Summary(skipped=len(parsed.skipped))
    skus = [v.sku for p in parsed.products for v in p.variants]
    existing = existing_variants(session, skus)
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
        done = upsert_product(session, product, existing)
        summary.added += done.added
        summary.updated += not done.added
        summary.variants_added += done.variants_added
        summary.variants_updated += done.variants_updated
        summary.restocked += done.restocked
        restocked = restocked or done.restocked > 0
    session.flush()
    kept = {p.sku for p in parsed.products} | set(parsed.skipped)
    others = [p for p in session.exec(select(Product.sku)).all() if p not in kept]
    summary.others = len(others)
    if replace:
        _remove(session, others, summary)
    if restocked and policy is not None:
        summary.notified = notify_restocked(session, policy, reminders, utcnow())
    return summary


def _remove(session: Session, skus: list[str], summary: Summary) -> None:
    removed, sold_out = remove_products(session, skus)
    summary.removed += removed
    summary.sold_out += sold_out


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.catalog_command == "sync":
        return sync(settings)
    return import_file(settings, args)


def sync(settings: Settings) -> int:
    """The first full import of the platform's catalog (and any later full one), with a progress
    bar and a summary. Variants back in stock queue their waitlist's notices."""
    if settings.commerce_backend == "magento":
        return sync_magento(settings)
    if settings.commerce_backend == "store":
        print(
            "error: catalog sync needs COMMERCE_BACKEND=shopify, woocommerce or magento "
            "(the store's own catalog has nothing to sync)"
        )
        return 2
    services = build(settings)
    catalog = services.catalog_sync.catalog

    async def go() -> SyncSummary:
        try:
            total = await catalog.count()
            with tqdm(total=total, unit="product", desc=f"{catalog.label} products", file=sys.stderr) as bar:
                return await services.catalog_sync.run(full=True, progress=bar.update)
        finally:
            await services.close_commerce()

    try:
        summary = asyncio.run(go())
    except (ShopifyError, WooCommerceError) as exc:
        print(f"error: {catalog.label}: {exc}", file=sys.stderr)
        return 1
    finally:
        services.db.close()
    timing = f"{summary.read_seconds:.1f} s reading {catalog.label}, {summary.write_seconds:.1f} s writing the store"
    print("\n".join([*summary.lines(), timing, "restart the bot so it learns new product names"]))
    return 0


def sync_magento(settings: Settings) -> int:
    """`catalog sync` with COMMERCE_BACKEND=magento: every product, a progress bar, a summary;
    the poll's cursor starts where the sync ended."""
    services = build(settings)

    async def go() -> SyncSummary:
        try:
            total = await services.magento_sync.catalog.count()
            with tqdm(total=total, unit="product", desc="Magento products", file=sys.stderr) as bar:
                return await services.magento_sync.run(progress=bar.update)
        finally:
            await services.magento.close()

    try:
        summary = asyncio.run(go())
    except MagentoError as exc:
        print(f"error: Magento: {exc}", file=sys.stderr)
        return 1
    finally:
        services.db.close()
    print("\n".join([*summary.lines(), "restart the bot so it learns new product names"]))
    return 0


def import_file(settings: Settings, args: argparse.Namespace) -> int:
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
            lambda session: apply_import(
                session, parsed, args.replace, services.policy, reminder_settings(settings, services.links)
            )
        )
    except CatalogImportError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    finally:
        services.db.close()
    print("\n".join(summary.lines(args.replace)))
    return 0
