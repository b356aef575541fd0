"""`python app.py catalog sync` against the fake WooCommerce REST API: N variable products of V
variations each are served from this process (100 products a page, one variations request per
product); the sync runs as a child process
into a fresh SQLite store, and the bench prints its wall time, the requests it made and its peak
RSS. The fake answers on loopback, so the time is our side's (and the fake's) work, not
WooCommerce's latency (a WordPress site typically answers a page of 100 products in
hundreds of milliseconds).

    python bench/woocommerce_sync.py [--products 10000] [--variants 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.woocommerce import KEY, SECRET, WEBHOOK_SECRET, FakeWooCommerce, variable  # noqa: E402

SIZES = ["XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL"]


async def main(products: int, variants: int, profile: str | None, extra_env: dict[str, str]) -> float:
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
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "COMMERCE_BACKEND": "woocommerce",
            "WOOCOMMERCE_URL": fake.url,
            "WOOCOMMERCE_KEY": KEY,
            "WOOCOMMERCE_SECRET": SECRET,
            "WOOCOMMERCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        env.update(extra_env)
        started = time.perf_counter()
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            *(["-m", "cProfile", "-o", profile] if profile else []),
            "app.py",
            "catalog",
            "sync",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await child.communicate()
        seconds = time.perf_counter() - started
    await fake.close()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    rows = products + products * variants
    print(out.decode().strip())
    print(
        f"{products} products, {products * variants} variants: {seconds:.1f} s, {rows / seconds:.0f} rows/s, "
        f"{len(fake.requests)} requests, child peak RSS {peak_mb:.0f} MB (exit {child.returncode}), "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    return seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--profile", help="write the sync's cProfile statistics to this file")
    args = parser.parse_args()
    asyncio.run(main(args.products, args.variants, args.profile, {}))
