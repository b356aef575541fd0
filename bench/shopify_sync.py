"""`python app.py catalog sync` against the fake Shopify Admin API: N products of V variants
each (one location per variant) are served from this process; the sync runs as a child process
into a fresh SQLite store, and the bench prints its wall time, rows (products and variants) a
second, the requests it made, its peak RSS and the load average. A shop of at least
`SHOPIFY_BULK_SYNC_FROM` products (1,000) is read through one bulk operation; `--compare` also
runs the paged read (`SHOPIFY_BULK_SYNC_FROM=0`) into another fresh store and prints the ratio.
The fake answers on loopback, so the time is our side's (and the fake's) work, not Shopify's
latency, throttling or the time its bulk operation takes.

    python bench/shopify_sync.py [--products 10000] [--variants 5] [--compare] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync_child import SyncRun, run_sync  # noqa: E402
from tests.fakes.shopify import TOKEN, WEBHOOK_SECRET, FakeShopify, product  # noqa: E402

SIZES = ["XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL"]


async def one(
    fake: FakeShopify, label: str, products: int, variants: int, bulk_from: str, profile: str | None
) -> SyncRun:
    fake.requests.clear()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            "DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "COMMERCE_BACKEND": "shopify",
            "SHOPIFY_SHOP_DOMAIN": "bench.myshopify.com",
            "SHOPIFY_ADMIN_TOKEN": TOKEN,
            "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SHOPIFY_API_BASE": fake.url,
            "SHOPIFY_BULK_SYNC_FROM": bulk_from,
        }
        run = await run_sync(env, profile)
    print(run.output)
    print(run.report(label, products, variants, len(fake.requests)), flush=True)
    return run


async def main(products: int, variants: int, compare: bool, profile: str | None) -> None:
    fake = FakeShopify()
    fake.bulk_polls = 0  # the fake's operation is done at once: its file is made while it is read
    fake.products = [
        product(
            n,
            f"bench-product-{n}",
            f"Bench Product {n}",
            "Shirt",
            [
                (f"B{n}-{SIZES[i % len(SIZES)]}-{i}", f"{SIZES[i % len(SIZES)]}{i // len(SIZES) or ''}", "blue", {1: i})
                for i in range(variants)
            ],
        )
        for n in range(1, products + 1)
    ]
    await fake.start()
    try:
        paged = await one(fake, "paged", products, variants, "0", None) if compare else None
        bulk = await one(fake, "bulk" if products >= 1000 else "default", products, variants, "1000", profile)
    finally:
        await fake.close()
    if paged is not None:
        print(
            f"paged / bulk: {paged.seconds / bulk.seconds:.2f}x the time, {paged.peak_mb / bulk.peak_mb:.2f}x the memory"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--compare", action="store_true", help="also run the paged read, and print the ratio")
    parser.add_argument("--profile", help="write the sync's cProfile statistics to this file")
    args = parser.parse_args()
    asyncio.run(main(args.products, args.variants, args.compare, args.profile))
