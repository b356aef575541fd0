"""Reliability of campaigns: the server killed (SIGKILL) in the middle of a 10,000-recipient
campaign and started again sends every recipient exactly one message; a provider outage delays
messages and loses none."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
from sqlalchemy import insert
from sqlmodel import func, select

from bot.marketing import campaigns
from bot.store.database import Database
from bot.store.models import ChannelIdentity, Customer, MessageRecord, utcnow
from service.app import DB, create_app
from tests.fakes.providers import FakeTwilio
from tests.proactive.test_campaigns import AUTH, TOKEN, changed, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
RECIPIENTS = 10_000


def add_sms_shoppers(db: Database, count: int, prefix: str = "+1415") -> list[str]:
    """`count` SMS shoppers who opted in to marketing; returns their numbers."""
    numbers = [f"{prefix}{i:07d}" for i in range(count)]
    now = utcnow()
    customers = [
        {
            "id": f"crash{i:07d}",
            "language": "en",
            "last_channel": "sms",
            "marketing_consent": True,
            "sms_opted_out": False,
            "created_at": now,
            "last_active_at": now,
        }
        for i in range(count)
    ]
    identities = [
        {"channel": "phone", "address": n, "customer_id": f"crash{i:07d}", "created_at": now}
        for i, n in enumerate(numbers)
    ]
    with db.engine.begin() as connection:
        connection.execute(insert(Customer.__table__), customers)
        connection.execute(insert(ChannelIdentity.__table__), identities)
    return numbers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(database_url: str, fake: FakeTwilio, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "MESSENGER_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_SMS_FROM": "+15550001111",
            "TWILIO_API_BASE": fake.url,
            "ADMIN_TOKEN": TOKEN,
            "QUIET_HOURS": "",
            "OUTBOX_LEASE_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


async def wait_healthy(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the server did not come up"
            await asyncio.sleep(0.2)


async def test_killed_mid_campaign_every_recipient_gets_exactly_one(database_url, fake_twilio):
    fake_twilio.delay = 0.005  # requests are in flight when the process dies
    db = Database(database_url)
    db.create_schema()
    numbers = add_sms_shoppers(db, RECIPIENTS)
    spec = campaigns.parse_spec(
        {"name": "Big sale", "segment": {"channel": "sms"}, "messages": {"en": "Big sale today: 30% off everything."}}
    )
    campaign = db.transaction(lambda s: campaigns.create(s, spec))
    db.close()

    port = free_port()
    proc = start_server(database_url, fake_twilio, port)
    try:
        await wait_healthy(proc, port)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/api/campaigns/{campaign.id}/schedule", headers=AUTH) as resp:
                assert resp.status == 200, await resp.text()
        await wait_until(lambda: _received(fake_twilio, RECIPIENTS // 4), timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        received_at_kill = len(fake_twilio.delivered())
        assert received_at_kill < RECIPIENTS, "the campaign finished before the kill; nothing was tested"

        proc = start_server(database_url, fake_twilio, port)
        await wait_healthy(proc, port)
        await wait_until(lambda: _settled(database_url), timeout=240)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)

    per_number = Counter(r["to"] for r in fake_twilio.delivered() if r["body"].startswith("Big sale"))
    assert set(per_number) == set(numbers), f"missing: {len(set(numbers) - set(per_number))}"
    doubled = {n: c for n, c in per_number.items() if c > 1}
    assert not doubled, f"{len(doubled)} recipients got more than one"


async def _received(fake: FakeTwilio, count: int) -> bool:
    return len(fake.delivered()) >= count


async def _settled(database_url: str) -> bool:
    db = Database(database_url)
    try:
        waiting = db.transaction(
            lambda s: s.exec(
                select(func.count())
                .select_from(MessageRecord)
                .where(
                    MessageRecord.idempotency_key.like("campaign:%"), MessageRecord.status.in_(["pending", "sending"])
                )
            ).one()
        )
        queued = db.transaction(
            lambda s: s.exec(
                select(func.count()).select_from(MessageRecord).where(MessageRecord.idempotency_key.like("campaign:%"))
            ).one()
        )
    finally:
        db.close()
    return queued == RECIPIENTS and waiting == 0


async def test_a_provider_outage_delays_messages_and_loses_none(
    aiohttp_client, channel_settings, recognizer, fake_twilio
):
    settings = changed(
        channel_settings, admin_token=TOKEN, quiet_hours="", outbox_max_attempts=10, outbox_retry_base_seconds=0.1
    )
    client = await aiohttp_client(create_app(settings, recognizer))
    numbers = add_sms_shoppers(client.app[DB], 200, "+1628")
    fake_twilio.fail_for(3.0, status=503)  # the provider is down for a while
    spec = {"name": "Outage", "segment": {"channel": "sms"}, "messages": {"en": "During the outage"}}
    created = await (await client.post("/api/campaigns", json=spec, headers=AUTH)).json()
    started = time.monotonic()
    await client.post(f"/api/campaigns/{created['id']}/schedule", headers=AUTH)

    async def all_sent():
        resp = await client.get(f"/api/campaigns/{created['id']}", headers=AUTH)
        stats = (await resp.json())["stats"]
        return stats if stats["sent"] == len(numbers) and stats["waiting"] == 0 else None

    stats = await wait_until(all_sent, timeout=60)
    assert time.monotonic() - started >= 3.0  # delayed by the outage ...
    assert stats["failed"] == 0  # ... and nothing lost
    refused = [r for r in fake_twilio.requests if r["failed"]]
    assert refused, "the outage refused nothing; nothing was tested"
    per_number = Counter(r["to"] for r in fake_twilio.delivered() if r["body"] == "During the outage")
    assert set(per_number) == set(numbers) and max(per_number.values()) == 1
