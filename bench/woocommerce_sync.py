"""`python app.py catalog sync` against the fake WooCommerce REST API: N variable products of V
variations each are served from this process (100 products a page, one variations request per
product); the sync runs as a child process
into a fresh SQLite store, and the bench prints its wall time, rows (products and variations) a
second, the requests it made, its peak RSS and the load average. The fake answers on loopback, so the time is our side's (and the fake's) work, not
WooCommerce's latency (a WordPress site typically answers a page of 100 products in
hundreds of milliseconds).

    python bench/woocommerce_sync.py [--products 10000] [--variants 5] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync_child import run_sync  # noqa: E402
from tests.fakes.woocommerce import KEY, SECRET, WEBHOOK_SECRET, FakeWooCommerce, variable  # noqa: E402

SIZES = ["XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL"]


async def main(products: int, variants: int, profile: str | None) -> None:
    fake = FakeWooCommerce()
    fake.products = [
        variable(
            n,
            f"bench-product-{n}",
            f"Bench Product {n}",
            "Shirt",
            [
                (f"B{n}-{SIZES[i % len(SIZES)]}-{i}", f"{SIZES[i % len(SIZES)]}{i // len(SIZES) or ''}", "blue", i)
                for i in range(variants)
            ],
            "30.00",
        )
        for n in range(1, products + 1)
    ]
    await fake.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            env = {
                "DATABASE_URL": f"sqlite:///{folder}/bench.db",
                "COMMERCE_BACKEND": "woocommerce",
                "WOOCOMMERCE_URL": fake.url,
                "WOOCOMMERCE_KEY": KEY,
                "WOOCOMMERCE_SECRET": SECRET,
                "WOOCOMMERCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
            run = await run_sync(env, profile)
    finally:
        await fake.close()
    print(run.output)
    print(run.report("woocommerce", products, variants, len(fake.requests)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--profile", help="write the sync's cProfile statistics to this file")
    args = parser.parse_args()
    asyncio.run(main(args.products, args.variants, args.profile))
