"""OUTBOX_WORKERS: the scheduler process starts extra outbox dispatcher processes on PostgreSQL;
together they send a campaign once to everyone, survive one of them being killed, and do not
outlive the scheduler. On SQLite the setting falls back to one dispatcher, with a warning."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.config import Settings
from bot.delivery.outbox import Outbox, queue_to_customer
from bot.marketing import campaigns
from bot.messages import OutboundMessage
from bot.store.database import Database
from bot.store.models import MessageRecord
from channels.registry import enabled
from tests.conftest import TEST_DATABASE_URL
from tests.fakes.providers import FakeTwilio
from tests.proactive.test_campaign_crash import add_sms_shoppers
from tests.proactive.test_campaigns import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
BODY = "Weekend sale: two for one."


class Scheduler:
    """`python app.py scheduler` in a child process, its log lines collected as they come."""

    def __init__(self, database_url: str, fake: FakeTwilio, **extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "MESSENGER_", "SEND_RATE"))}
        env.update(
            {
                "DATABASE_URL": database_url,
                "TWILIO_ACCOUNT_SID": fake.account_sid,
                "TWILIO_AUTH_TOKEN": fake.auth_token,
                "TWILIO_SMS_FROM": "+15550001111",
                "TWILIO_API_BASE": fake.url,
                "QUIET_HOURS": "",
                "LOG_LEVEL": "INFO",
                **extra,
            }
        )
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "scheduler"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"msg": line.rstrip()})

    def logged(self, msg: str) -> list[dict]:
        return [line for line in list(self.lines) if line.get("msg") == msg]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self._reader.join(timeout=10)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def make_campaign(database_url: str, recipients: int) -> tuple[int, list[str]]:
    db = Database(database_url)
    db.create_schema()
    numbers = add_sms_shoppers(db, recipients, "+1312")
    spec = campaigns.parse_spec({"name": "Weekend", "segment": {"channel": "sms"}, "messages": {"en": BODY}})
    campaign = db.transaction(lambda s: campaigns.create(s, spec))
    db.close()
    return campaign.id, numbers


def schedule(env: dict[str, str], campaign_id: int) -> None:
    subprocess.run(
        [sys.executable, "app.py", "campaign", "schedule", str(campaign_id)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def per_number(fake: FakeTwilio) -> Counter:
    return Counter(r["to"] for r in fake.delivered() if r["body"] == BODY)


async def started(scheduler: Scheduler) -> None:
    await wait_until(lambda: _true(scheduler.logged("scheduler running")), timeout=120)


async def _true(value) -> bool:
    return bool(value)


async def test_two_dispatchers_send_a_campaign_once_to_everyone(database_url, fake_twilio):
    fake_twilio.delay = 0.05  # sends take a while, so both dispatchers find work
    campaign_id, numbers = make_campaign(database_url, 3000)
    scheduler = Scheduler(database_url, fake_twilio, OUTBOX_WORKERS="2")
    try:
        await started(scheduler)
        schedule(scheduler.env, campaign_id)
        await wait_until(lambda: _true(len(per_number(fake_twilio)) == len(numbers)), timeout=120)
        extra = children(scheduler.proc.pid)
    finally:
        scheduler.stop()

    counts = per_number(fake_twilio)
    assert set(counts) == set(numbers) and max(counts.values()) == 1
    sent = [line["sent"] for line in scheduler.logged("outbox dispatcher stopped")]
    if TEST_DATABASE_URL:  # PostgreSQL: the scheduler and one more process shared the campaign
        assert len(extra) == 1
        assert len(sent) == 2 and sum(sent) == len(numbers) and min(sent) > 0, sent
        await wait_until(lambda: _true(not alive(extra[0])), timeout=10)  # stopped with the scheduler
    else:  # SQLite serves one process: one dispatcher sent it all, and the log says why
        assert extra == []
        assert sent == [len(numbers)]
        assert scheduler.logged(
            "OUTBOX_WORKERS above 1 needs PostgreSQL (SQLite serves one process); one dispatcher runs"
        )


@pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="several dispatcher processes need PostgreSQL (set TEST_DATABASE_URL)"
)
async def test_a_killed_dispatcher_is_replaced_and_none_outlives_the_scheduler(database_url, fake_twilio):
    fake_twilio.delay = 0.2
    campaign_id, numbers = make_campaign(database_url, 4000)
    scheduler = Scheduler(database_url, fake_twilio, OUTBOX_WORKERS="2", OUTBOX_LEASE_SECONDS="2")
    try:
        await started(scheduler)
        await wait_until(lambda: _true(children(scheduler.proc.pid)), timeout=60)
        first = children(scheduler.proc.pid)[0]
        schedule(scheduler.env, campaign_id)
        await wait_until(lambda: _true(len(fake_twilio.delivered()) >= 800), timeout=60)
        os.kill(first, signal.SIGKILL)  # mid-campaign, with sends in flight
        assert len(per_number(fake_twilio)) < len(numbers), "the campaign finished before the kill"
        await wait_until(lambda: _true([p for p in children(scheduler.proc.pid) if p != first]), timeout=30)
        await wait_until(lambda: _true(len(per_number(fake_twilio)) == len(numbers)), timeout=120)
        await asyncio.sleep(1)  # anything sent twice would arrive by now
        counts = per_number(fake_twilio)
        assert set(counts) == set(numbers) and max(counts.values()) == 1

        replacement = [p for p in children(scheduler.proc.pid) if p != first][0]
        scheduler.proc.send_signal(signal.SIGKILL)  # no chance to stop its dispatcher
        scheduler.proc.wait(timeout=10)
        await wait_until(lambda: _true(not alive(replacement)), timeout=15)
    finally:
        scheduler.stop()


async def test_a_shoppers_messages_keep_their_order_across_dispatchers(database_url, fake_twilio):
    """While one dispatcher sends a shopper's first message, another does not send their second."""
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_sms_from="+15550001111",
        twilio_api_base=fake_twilio.url,
    )
    db = Database(database_url)
    db.create_schema()
    alice, bob = add_sms_shoppers(db, 2, "+1646")
    for key, customer, text in (
        ("a1", "crash0000000", "first"),
        ("a2", "crash0000000", "second"),
        ("b1", "crash0000001", "other shopper"),
    ):
        db.transaction(
            lambda s, key=key, customer=customer, text=text: queue_to_customer(
                s, customer, key, OutboundMessage(text=text, kind="update"), channel="sms"
            )
        )
    for customer, number in (("crash0000000", alice), ("crash0000001", bob)):
        db.transaction(
            lambda s, customer=customer, number=number: s.execute(
                update(MessageRecord).where(MessageRecord.customer_id == customer).values(address=number)
            )
        )
    first, second = (Outbox(db, enabled(settings), batch=1) for _ in range(2))  # one message per claim
    fake_twilio.delay = 0.5
    try:
        sending = asyncio.create_task(first.dispatch_once())  # takes "first" and is busy with it
        await wait_until(lambda: _true(fake_twilio.requests), timeout=10)
        assert await second.dispatch_once() == 1
        assert {r["body"] for r in fake_twilio.requests} == {"first", "other shopper"}  # "second" waited
        assert await sending == 1
        assert await second.dispatch_once() == 1  # now "second" goes
    finally:
        for outbox in (first, second):
            for channel in outbox.channels.values():
                await channel.close()
        db.close()
    assert [r["body"] for r in fake_twilio.delivered() if r["to"] == alice] == ["first", "second"]


def test_an_extra_dispatcher_on_sqlite_is_refused_with_the_reason(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    done = subprocess.run(
        [sys.executable, "app.py", "outbox"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr
