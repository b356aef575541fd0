"""A shop under load: a realistic mix of shoppers on every channel, with one and two web workers,
beside the bare aiohttp echo, measured side by side in one run.

Each of N shoppers talks on one channel (web chat, WhatsApp through Twilio, Messenger; a third
each) and, turn after turn, picks: 60% a free-text question (the recogniser runs), 30% a button
(a command payload: no model), 10% a checkout journey as a new shopper (a product, its colour,
checkout, the address, no receipt, confirm: six turns). WhatsApp and Messenger messages are signed webhooks; their replies go
through the outbox to fake Twilio and Graph servers run in this process. A turn's latency is from
sending the message to its first reply reaching the provider (for the web chat, the reply is the
HTTP answer). After a reply, a shopper waits until its replies stop coming (20 ms quiet) before the
next message, so one turn's late replies are not taken for the next one's.

Per leg it prints turns/s, p50/p95/p99, errors (an answer other than 200, or no reply within 10 s; a shopper carries on as a new one
after one, since a person may have their conversation now)
and the memory of every server process from /proc/PID/smaps_rollup (RSS, and how much of it is
private to the process or shared with the others).

    python bench/load.py [--shoppers 20] [--seconds 20] [--database-url postgresql://...]

Without `--database-url` the bot runs on a fresh SQLite store, and the two-worker leg is skipped
(SQLite serves one process). With it, every table in that database is DROPPED first, and both
legs run on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from uuid import uuid4

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.channels import Arrivals, CountingGraph, CountingTwilio  # noqa: E402
from bench.turns import FREE_TEXTS, drive, free_port, wait_healthy  # noqa: E402
from tests.fakes.providers import FakeGraph, FakeTwilio, encode_form, messenger_body, twilio_form  # noqa: E402

BUTTONS = [
    "/view_cart",
    "/faq",
    '/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}',
]
# A new shopper's checkout: the product, its colour, checkout, the address, no receipt, confirm.
CHECKOUT = ["add the linen sundress size S", "beige", "checkout", "221 Baker Street, London NW1 6XE", "skip", "yes"]
CHANNELS = ("web", "whatsapp", "messenger")
REPLY_TIMEOUT = 10.0
QUIET = 0.02  # a shopper's replies have stopped once none came for this long


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction) - 1))] if ordered else float("nan")


def memory(pid: int) -> dict[str, int]:
    """A process's memory in kB from /proc/PID/smaps_rollup: RSS, PSS, private and shared."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return {
        "rss_kb": fields.get("Rss", 0),
        "pss_kb": fields.get("Pss", 0),
        "private_kb": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        "shared_kb": fields.get("Shared_Clean", 0) + fields.get("Shared_Dirty", 0),
    }


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def reset_database(url: str) -> None:
    """Every table of the bot (and the scheduler's job table) dropped: each leg starts empty."""
    from sqlalchemy import text
    from sqlmodel import SQLModel

    import bot.store.models  # noqa: F401  (the tables)
    from bot.store.database import Database

    db = Database(url)
    SQLModel.metadata.drop_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.close()


def stock_up(url: str) -> None:
    """Plenty of every variant: the checkouts of a run would otherwise sell the demo stock out."""
    from sqlalchemy import update

    from bot.store.database import Database
    from bot.store.models import Variant

    db = Database(url)
    with db.engine.begin() as connection:
        connection.execute(update(Variant).values(stock=1_000_000))
    db.close()


class Leg:
    """One run of the bot (`python app.py` with WEB_WORKERS) under the shoppers."""

    def __init__(self, name: str, database_url: str, workers: int, twilio, graph, cache_dir: Path, log: Path) -> None:
        self.name, self.workers = name, workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "WEB_WORKERS": str(workers),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "PUBLIC_BASE_URL": self.base,
            "NLU_CACHE_DIR": str(cache_dir),
            "TWILIO_ACCOUNT_SID": FakeTwilio.account_sid,
            "TWILIO_AUTH_TOKEN": FakeTwilio.auth_token,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+15550001111",
            "TWILIO_SMS_FROM": "+15550001111",
            "TWILIO_API_BASE": twilio.url,
            "GRAPH_API_BASE": graph.url,
            "MESSENGER_PAGE_ACCESS_TOKEN": FakeGraph.page_token,
            "MESSENGER_APP_SECRET": FakeGraph.app_secret,
            "MESSENGER_VERIFY_TOKEN": FakeGraph.verify_token,
            "SENDER_RATE_LIMIT": "0",  # each simulated shopper writes far faster than a person
            "QUIET_HOURS": "",
            "BOT_DISCLOSURE": "off",
        }
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    async def ready(self) -> float:
        started = time.monotonic()
        await wait_healthy(f"{self.base}/readyz", timeout=300)
        return time.monotonic() - started

    def processes(self) -> dict[str, dict[str, int]]:
        pids = {"main": self.proc.pid}
        if self.workers > 1:
            for index, pid in enumerate(sorted(children(self.proc.pid))):
                pids[f"worker {index}"] = pid
        return {name: memory(pid) for name, pid in pids.items()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def shop(base: str, twilio, graph, arrivals: Arrivals, shoppers: int, seconds: float, seed: int) -> dict:
    """N shoppers for `seconds`; latencies per kind of turn, and errors."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    rng = random.Random(seed)
    run = uuid4().hex[:6]  # new shoppers every leg
    connector = aiohttp.TCPConnector(limit=shoppers * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def web_token() -> str:
            async with http.post(f"{base}/api/web/session", json={}) as resp:
                return (await resp.json())["token"]

        async def quiet(recipient: str) -> None:
            while True:
                arrivals.events[recipient].clear()
                try:
                    await asyncio.wait_for(arrivals.events[recipient].wait(), QUIET)
                except TimeoutError:
                    return

        async def turn(channel: str, who: str, token: str | None, text: str, button: bool) -> str | None:
            """One message and its first reply; what went wrong, or None."""
            if channel == "web":
                started = time.perf_counter()
                async with http.post(
                    f"{base}/api/web/messages",
                    json={"id": uuid4().hex, "text": text},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    if resp.status != 200:
                        return f"HTTP {resp.status}"
                    if not (await resp.json())["messages"]:
                        return "no reply"
                latencies[channel].append(time.perf_counter() - started)
                return None
            if channel == "whatsapp":
                extra = {"ButtonPayload": text, "ButtonText": "button"} if button else {}
                form = twilio_form("whatsapp", who, "button" if button else text, **extra)
                path, body = "/webhooks/twilio/whatsapp", encode_form(form)
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio.sign(base + path, form),
                }
                recipient = "whatsapp:" + who
            else:
                message: dict = {"mid": "m_" + uuid4().hex, "text": "button" if button else text}
                if button:
                    message["quick_reply"] = {"payload": text}
                path = "/webhooks/messenger"
                body = messenger_body(
                    {"sender": {"id": who}, "recipient": {"id": "PAGE"}, "timestamp": 1, "message": message}
                )
                headers = {"Content-Type": "application/json", "X-Hub-Signature-256": graph.sign(body)}
                recipient = who
            before = arrivals.counts[recipient]
            arrivals.events[recipient].clear()
            started = time.perf_counter()
            async with http.post(base + path, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    return f"HTTP {resp.status}"
            deadline = started + REPLY_TIMEOUT
            while arrivals.counts[recipient] == before:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return "no reply"
                try:
                    await asyncio.wait_for(arrivals.events[recipient].wait(), left)
                except TimeoutError:
                    return "no reply"
                arrivals.events[recipient].clear()
            latencies[channel].append(time.perf_counter() - started)
            await quiet(recipient)  # the turn's further replies, before the next message
            return None

        stop = time.monotonic() + seconds

        identities = iter(range(10**7))

        async def identity(channel: str) -> tuple[str, str | None]:
            n = next(identities)
            who = f"+1666{seed:02d}{n:05d}" if channel == "whatsapp" else f"8{run}{n:09d}"
            return who, await web_token() if channel == "web" else None

        async def shopper(n: int) -> None:
            channel = CHANNELS[n % len(CHANNELS)]
            who, token = await identity(channel)
            while time.monotonic() < stop:
                roll = rng.random()
                if roll < 0.6:
                    steps = [("free text", FREE_TEXTS[rng.randrange(len(FREE_TEXTS))], False)]
                elif roll < 0.9:
                    steps = [("button", BUTTONS[rng.randrange(len(BUTTONS))], True)]
                else:
                    steps = [("checkout", text, False) for text in CHECKOUT]
                # A checkout is a new shopper's (one whose questions this run's other turns did not
                # leave open), so that each step gets the answer it expects.
                as_who, as_token = await identity(channel) if steps[0][0] == "checkout" else (who, token)
                for kind, text, button in steps:
                    began = time.perf_counter()
                    try:
                        error = await turn(channel, as_who, as_token, text, button)
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        error = type(exc).__name__
                    if error is None:
                        done.append(time.monotonic())
                        latencies[kind].append(time.perf_counter() - began)
                    else:
                        errors[f"{channel} {kind}: {error}"] += 1
                        if kind != "checkout":  # (a person may have the conversation now): carry on as another
                            who, token = await identity(channel)
                        break

        done: list[float] = []
        began_at, cpu_at = time.monotonic(), time.process_time()
        await asyncio.gather(*(shopper(n) for n in range(shoppers)))
        cpu = time.process_time() - cpu_at
    every = sorted(v for kind in ("free text", "button", "checkout") for v in latencies[kind])
    # Turns/s over the measured window: a turn still waiting for its reply at the end is not counted.
    in_window = sum(1 for t in done if t <= stop)
    return {
        "elapsed": stop - began_at,
        "generator_cpu": cpu / (time.monotonic() - began_at),  # this process: shoppers and fakes
        "turns": len(every),
        "turns_per_s": in_window / (stop - began_at),
        "all": every,
        "by_kind": {k: sorted(v) for k, v in latencies.items()},
        "errors": dict(errors),
    }


def line(name: str, ordered: list[float], elapsed: float) -> str:
    return (
        f"  {name:22} {len(ordered) / elapsed:7.1f}/s   p50 {percentile(ordered, 0.5) * 1000:7.1f} ms   "
        f"p95 {percentile(ordered, 0.95) * 1000:7.1f} ms   p99 {percentile(ordered, 0.99) * 1000:7.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url", help="PostgreSQL (its tables are dropped): runs the two-worker leg too")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    arrivals = Arrivals()
    twilio, graph = await CountingTwilio(arrivals).start(), await CountingGraph(arrivals).start()
    legs: list[tuple[str, str, int]] = []
    if args.database_url:
        legs = [("1 web worker", args.database_url, 1), ("2 web workers", args.database_url, 2)]
    else:
        legs = [("1 web worker", f"sqlite:///{tmp / 'shop.db'}", 1)]
        print("two web workers need PostgreSQL: give --database-url to run that leg; skipped")
    echo_port = free_port()
    echo_proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), str(echo_port)], cwd=ROOT)
    results: dict[str, dict] = {}
    try:
        await wait_healthy(f"http://127.0.0.1:{echo_port}/healthz")

        async def no_headers(session, i):
            return {}

        echo = await drive(
            f"http://127.0.0.1:{echo_port}/echo",
            lambda n, i: {"text": "hi"},
            no_headers,
            args.shoppers,
            args.seconds,
            args.shoppers,
        )
        echo_mem = memory(echo_proc.pid)
        for index, (name, url, workers) in enumerate(legs):
            if url.startswith("postgresql"):
                reset_database(url)
            leg = Leg(name, url, workers, twilio, graph, tmp / "nlu-cache", tmp / f"leg{index}.log")
            try:
                start_s = await leg.ready()
                stock_up(url)
                # A few turns first: the first of each kind pays one-off costs (caches, JIT paths).
                await shop(leg.base, twilio, graph, arrivals, min(args.shoppers, 6), 2, seed=90 + index)
                result = await shop(leg.base, twilio, graph, arrivals, args.shoppers, args.seconds, seed=index)
                result["start_s"] = start_s
                result["memory"] = leg.processes()
                results[name] = result
            finally:
                leg.stop()
    finally:
        echo_proc.terminate()
        echo_proc.wait(timeout=30)
        await twilio.close()
        await graph.close()

    print(f"{args.shoppers} shoppers, {args.seconds:.0f} s per leg (60% free text, 30% buttons, 10% checkout)")
    print(
        f"bare aiohttp echo          {echo['turns_per_s']:7.0f}/s   p50 {echo['p50_ms']:7.1f} ms   "
        f"p95 {echo['p95_ms']:7.1f} ms   RSS {echo_mem['rss_kb'] / 1024:.0f} MB"
    )
    for name, r in results.items():
        print(f"{name}: ready in {r['start_s']:.1f} s, errors {sum(r['errors'].values())} {r['errors'] or ''}")
        print(line("all turns", r["all"], r["elapsed"]))
        for kind, values in r["by_kind"].items():
            print(line(kind, values, r["elapsed"]))
        for process, m in r["memory"].items():
            print(
                f"  memory {process:9} RSS {m['rss_kb'] / 1024:6.0f} MB   private {m['private_kb'] / 1024:6.0f} MB   "
                f"shared {m['shared_kb'] / 1024:6.0f} MB   PSS {m['pss_kb'] / 1024:6.0f} MB"
            )
        print(f"  turns / echo: {r['turns_per_s'] / echo['turns_per_s']:.1%}")
        print(f"  the load generator (shoppers and fake providers) used {r['generator_cpu']:.0%} of a core")
    if "2 web workers" in results:
        one, two = results["1 web worker"], results["2 web workers"]
        print(f"2 workers / 1 worker turns/s: {two['turns_per_s'] / one['turns_per_s']:.2f}x  (target >= 1.5x)")
    if args.json:
        summary = {
            "echo": echo,
            "legs": {name: {k: v for k, v in r.items() if k not in ("all", "by_kind")} for name, r in results.items()},
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
