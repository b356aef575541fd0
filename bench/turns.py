"""Turn throughput and latency, measured side by side in one run.

Starts the bot (`python app.py`, on a fresh SQLite store) and a bare aiohttp echo server as
separate processes, drives each with 32 concurrent web-chat shoppers, and measures the model's
own encode rate in this process. Prints each figure and the ratios the targets are about.

    python bench/turns.py [--concurrency 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FREE_TEXTS = [
    "do you have the aero runner in size 10?",
    "show me black dresses",
    "where is my order?",
    "how long does shipping take",
    "is the linen sundress available in M",
    "what goes well with the trail blazer runner",
    "hi there",
    "can I return something",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_healthy(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "turns_per_s": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "turns": len(ordered),
    }


async def drive(url: str, bodies, headers_for, concurrency: int, seconds: float, session_count: int) -> dict:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = [await headers_for(session, i) for i in range(session_count)]
        stop = time.monotonic() + seconds

        async def shopper(n: int) -> None:
            i = 0
            while time.monotonic() < stop:
                body = bodies(n, i)
                started = time.perf_counter()
                async with session.post(url, json=body, headers=headers[n]) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{resp.status}: {await resp.text()}")
                latencies.append(time.perf_counter() - started)
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(shopper(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed)


def encode_rates(seconds: float) -> tuple[float, float]:
    from bot.nlu import load_model

    model = load_model()
    texts = (FREE_TEXTS * 8)[:64]
    model.encode(texts[:4])
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.encode([texts[n % len(texts)]], show_progress_bar=False)
        n += 1
    single = n / (time.perf_counter() - started)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.encode(texts, batch_size=64, show_progress_bar=False)
        n += len(texts)
    batched = n / (time.perf_counter() - started)
    return single, batched


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    bot_port, echo_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "PORT": str(bot_port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "SENDER_RATE_LIMIT": "0",
    }  # each simulated shopper sends far faster than a person
    procs = [
        subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), str(echo_port)], cwd=ROOT),
    ]
    try:
        bot = f"http://127.0.0.1:{bot_port}"
        await wait_healthy(f"{bot}/healthz")
        await wait_healthy(f"http://127.0.0.1:{echo_port}/healthz")

        async def no_headers(session, i):
            return {}

        async def web_session(session, i):
            async with session.post(f"{bot}/api/web/session", json={}) as resp:
                return {"Authorization": f"Bearer {(await resp.json())['token']}"}

        c, s = args.concurrency, args.seconds
        echo = await drive(f"http://127.0.0.1:{echo_port}/echo", lambda n, i: {"text": "hi"}, no_headers, c, s, c)
        button = await drive(
            f"{bot}/api/web/messages", lambda n, i: {"id": uuid4().hex, "text": "/view_cart"}, web_session, c, s, c
        )
        free = await drive(
            f"{bot}/api/web/messages",
            lambda n, i: {"id": uuid4().hex, "text": FREE_TEXTS[(n + i) % len(FREE_TEXTS)]},
            web_session,
            c,
            s,
            c,
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    single, batched = encode_rates(min(s, 5))

    def row(name: str, r: dict) -> str:
        return f"{name:28} {r['turns_per_s']:8.0f}/s   p50 {r['p50_ms']:7.1f} ms   p95 {r['p95_ms']:7.1f} ms"

    print(f"concurrency {c}, {s:.0f} s per run")
    print(row("bare aiohttp echo", echo))
    print(row("web turn, button (no NLU)", button))
    print(row("web turn, free text (NLU)", free))
    print(f"{'model encode, one sentence':28} {single:8.0f}/s")
    print(f"{'model encode, batch of 64':28} {batched:8.0f}/s")
    print(f"button turns / echo:               {button['turns_per_s'] / echo['turns_per_s']:.1%}  (target >= 25%)")
    print(f"free-text turns / single encode:   {free['turns_per_s'] / single:.1%}  (target >= 50%)")
    print(f"free-text turns / batched encode:  {free['turns_per_s'] / batched:.1%}")
    print(f"free-text p95:                     {free['p95_ms']:.1f} ms  (target < 100 ms)")


if __name__ == "__main__":
    asyncio.run(main())
