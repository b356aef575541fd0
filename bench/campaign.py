"""A large campaign against the fake Twilio server, beside that server's own ceiling.

For each store (SQLite, and PostgreSQL when a URL is given): N opted-in SMS shoppers are written
to a fresh store; `python app.py scheduler` (scheduler + outbox, no web server) runs in a child
process; the campaign is created and scheduled with `python app.py campaign ...`; the bench times
from scheduling to the fake receiving the last message, and reads the child's peak RSS. Beside
it, a bare aiohttp client sends the same number of requests to the same fake (100 at a time):
the ceiling. With --rate R, a second, smaller campaign runs with SEND_RATE_LIMITS=sms=R and the
achieved rate is printed. With a PostgreSQL URL, the campaign runs once per --workers value
(OUTBOX_WORKERS: the scheduler process starts that many dispatchers, itself included; peak RSS is
that of the largest process), and the abandoned-cart scan is timed over --carts carts.

    python bench/campaign.py [--recipients 100000] [--pg postgresql://...] [--rate 200] [--carts 1000000]
                             [--skip-campaign] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import insert, text
from sqlmodel import SQLModel, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.marketing.reminders import due_carts  # noqa: E402
from bot.store.database import Database  # noqa: E402
from bot.store.models import Cart, CartItem, ChannelIdentity, Customer, Variant, utcnow  # noqa: E402
from bot.store.seed import seed_demo  # noqa: E402
from tests.fakes.providers import FakeTwilio  # noqa: E402

SENDER = "+15550001111"


class CountingTwilio(FakeTwilio):
    """The fake Twilio API, keeping a count and the recipients instead of whole requests."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.recipients: set[str] = set()
        self.first = self.last = 0.0

    async def create_message(self, request):
        form = await request.post()
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.count += 1
        self.recipients.add(form.get("To"))
        return aiohttp.web.json_response(
            {
                "sid": f"SM{self.count:032x}",
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "account_sid": self.account_sid,
            },
            status=201,
        )

    def reset(self) -> None:
        self.count, self.recipients, self.first, self.last = 0, set(), 0.0, 0.0


def fresh_store(url: str) -> Database:
    db = Database(url)
    if not db.is_sqlite:
        SQLModel.metadata.drop_all(db.engine)
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
    db.create_schema()
    return db


def add_shoppers(db: Database, count: int) -> None:
    now = utcnow()
    for start in range(0, count, 20_000):
        ids = range(start, min(count, start + 20_000))
        with db.engine.begin() as connection:
            connection.execute(
                insert(Customer.__table__),
                [
                    {
                        "id": f"b{i:08d}",
                        "language": "en",
                        "last_channel": "sms",
                        "marketing_consent": True,
                        "sms_opted_out": False,
                        "created_at": now,
                        "last_active_at": now,
                    }
                    for i in ids
                ],
            )
            connection.execute(
                insert(ChannelIdentity.__table__),
                [
                    {"channel": "phone", "address": f"+1999{i:07d}", "customer_id": f"b{i:08d}", "created_at": now}
                    for i in ids
                ],
            )


def env_for(url: str, fake: CountingTwilio, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "MESSENGER_", "SEND_RATE"))}
    env.update(
        {
            "DATABASE_URL": url,
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_SMS_FROM": SENDER,
            "TWILIO_API_BASE": fake.url,
            "QUIET_HOURS": "",
            "MARKETING_WEEKLY_CAP": "100",
            "LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


async def cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", "campaign", *args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode:
        raise SystemExit(f"app.py campaign {' '.join(args)} failed: {err.decode()}")
    return out.decode()


async def run_campaign(url: str, fake: CountingTwilio, recipients: int, **extra: str) -> dict[str, float]:
    """Messages/s from scheduling to the last delivery, and the scheduler process's peak RSS."""
    fake.reset()
    env = env_for(url, fake, **extra)
    spec = Path(tempfile.mkdtemp()) / "campaign.json"
    spec.write_text('{"name": "Bench", "segment": {"channel": "sms"}, "messages": {"en": "Bench sale: 10% off."}}')
    created = await cli(env, "create", str(spec))
    campaign_id = int(created.split('"id": ')[1].split(",")[0])
    child = subprocess.Popen([sys.executable, "app.py", "scheduler"], cwd=ROOT, env=env)
    try:
        await asyncio.sleep(3)  # started and leading
        started = time.perf_counter()
        await cli(env, "schedule", str(campaign_id))
        deadline = started + 3600
        while fake.count < recipients:
            if child.poll() is not None:
                raise SystemExit("the scheduler process died")
            if time.perf_counter() > deadline:
                raise SystemExit(f"only {fake.count} of {recipients} arrived")
            await asyncio.sleep(0.05)
        elapsed = fake.last - started
    finally:
        child.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(child.pid, 0)
    return {
        "rate": recipients / elapsed,
        "seconds": elapsed,
        "rss_mb": usage.ru_maxrss / 1024,
        "pace": (fake.count - 1) / (fake.last - fake.first) if fake.last > fake.first else 0.0,
        "unique": len(fake.recipients),
        "received": fake.count,
    }


async def ceiling(fake: CountingTwilio, requests: int, concurrency: int = 100) -> float:
    """Requests/s a bare aiohttp client gets from the fake, for the same requests."""
    fake.reset()
    url = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    auth = aiohttp.BasicAuth(fake.account_sid, fake.auth_token)
    counter = iter(range(requests))

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in counter:
            async with http.post(
                url,
                data={
                    "To": f"+1999{i:07d}",
                    "From": SENDER,
                    "Body": "Bench sale: 10% off.",
                    "StatusCallback": "http://127.0.0.1/webhooks/twilio/status",
                },
            ) as resp:
                await resp.read()

    started = time.perf_counter()
    async with aiohttp.ClientSession(auth=auth) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


def cart_scan(url: str, carts: int) -> tuple[float, float, int]:
    """Seconds for the two reminder scans over `carts` carts spread over 60 days."""
    db = fresh_store(url)
    seed_demo(db)
    with db.session() as session:
        sku = session.exec(select(Variant.sku).limit(1)).one()
    now = utcnow()
    with db.engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),
            [{"id": "cartowner", "language": "en", "created_at": now, "last_active_at": now, "sms_opted_out": False}],
        )
    step = timedelta(days=60) / carts
    for start in range(0, carts, 50_000):
        ids = range(start + 1, min(carts, start + 50_000) + 1)
        with db.engine.begin() as connection:
            connection.execute(
                insert(Cart.__table__),
                [
                    {
                        "id": i,
                        "customer_id": "cartowner",
                        "status": "open" if i % 3 else "checked_out",
                        "updated_at": now - step * i,
                        "discount_percent": 0,
                    }
                    for i in ids
                ],
            )
            connection.execute(
                insert(CartItem.__table__), [{"cart_id": i, "variant_sku": sku, "quantity": 1} for i in ids]
            )
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    timings = []
    found = 0
    for step_no, delay in ((1, timedelta(hours=1)), (2, timedelta(hours=24))):
        with db.session() as session:
            started = time.perf_counter()
            found += len(due_carts(session, step_no, delay, now))
            timings.append(time.perf_counter() - started)
    db.close()
    return timings[0], timings[1], found


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL"), help="a PostgreSQL URL (emptied!)")
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s for the rate-limited run")
    parser.add_argument("--carts", type=int, default=1_000_000)
    parser.add_argument("--skip-campaign", action="store_true", help="only the rate-limited run and the cart scan")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="OUTBOX_WORKERS values to run on PostgreSQL, comma-separated (SQLite always runs 1)",
    )
    args = parser.parse_args()
    fake = await CountingTwilio().start()
    workers = [int(n) for n in args.workers.split(",")]
    stores = [("SQLite", f"sqlite:///{tempfile.mkdtemp()}/bench.db", 1)]
    stores += [("PostgreSQL", args.pg, n) for n in workers] if args.pg else []
    print(f"campaign to {args.recipients:,} SMS recipients, fake Twilio on loopback, no rate limit")
    for name, url, dispatchers in [] if args.skip_campaign else stores:
        db = fresh_store(url)
        add_shoppers(db, args.recipients)
        db.close()
        result = await run_campaign(url, fake, args.recipients, OUTBOX_WORKERS=str(dispatchers))
        top = await ceiling(fake, args.recipients)
        label = f"{name} x{dispatchers}"
        print(
            f"  {label:13s} {result['rate']:8,.0f} msg/s ({result['seconds']:.1f} s), bare aiohttp client "
            f"{top:8,.0f} req/s -> {result['rate'] / top:5.1%} of the ceiling; peak RSS {result['rss_mb']:.0f} MB; "
            f"{result['unique']:,} distinct recipients of {result['received']:,} messages"
        )
    if args.rate:
        n = int(args.rate * 10)
        runs = [("SQLite", f"sqlite:///{tempfile.mkdtemp()}/rate.db", 1)]
        runs += [("PostgreSQL", args.pg, max(workers))] if args.pg else []
        for name, url, dispatchers in runs:
            db = fresh_store(url)
            add_shoppers(db, n)
            db.close()
            result = await run_campaign(
                url, fake, n, SEND_RATE_LIMITS=f"sms={args.rate:g}", OUTBOX_WORKERS=str(dispatchers)
            )
            print(
                f"rate limit sms={args.rate:g}/s over {n:,} messages, {name} x{dispatchers}: sent at "
                f"{result['pace']:.1f}/s from the first to the last ({result['pace'] / args.rate - 1:+.1%}); "
                f"{result['rate']:.1f}/s counting from the schedule command (scheduler pick-up and queueing "
                f"included)"
            )
    if args.pg and args.carts:
        first, second, found = cart_scan(args.pg, args.carts)
        print(
            f"abandoned-cart scan over {args.carts:,} carts (PostgreSQL): first-reminder query {first * 1000:.0f} ms, "
            f"second-reminder query {second * 1000:.0f} ms ({found} due, at most 1,000 per scan)"
        )
    await fake.close()


if __name__ == "__main__":
    asyncio.run(main())
