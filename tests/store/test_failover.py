"""PostgreSQL drops every connection of the service (a restart or a failover): the next turns
succeed without a restart of the service, a turn cut off mid-transaction runs again, and the
scheduler takes its leadership back."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from bot.marketing.scheduler import LEADER_KEY
from service.marketing_api import SCHEDULER
from tests.conftest import TEST_DATABASE_URL
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="a database that drops its connections needs PostgreSQL (set TEST_DATABASE_URL)"
)

NUMBER = "+14155550182"


def side_connection(autocommit: bool = True) -> psycopg.Connection:
    """A connection of the test's own, outside the service."""
    return psycopg.connect(TEST_DATABASE_URL, autocommit=autocommit)


def drop_every_connection() -> int:
    """What a restart or failover does to the service: every other session of the database ends."""
    with side_connection() as conn:
        killed = conn.execute(
            # The app's own sessions (an autovacuum worker may be at work too: not ours to end).
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND usename = current_user"
        ).fetchone()[0]
        for _ in range(200):  # until they are gone
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()[0]
            if not left:
                break
            time.sleep(0.02)
    return killed


def leader_lock_is_free() -> bool:
    """Whether nobody holds the scheduler's leader lock (taken and let go at once if free)."""
    with side_connection() as conn:
        free = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (LEADER_KEY,)).fetchone()[0]
        if free:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (LEADER_KEY,))
    return free


async def wait_for(condition, timeout: float) -> bool:
    for _ in range(int(timeout / 0.1)):
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_turns_work_again_after_the_database_drops_every_connection(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    assert await web.say("hi") and await wa.say("hi")
    scheduler = channel_client.app[SCHEDULER]
    assert await wait_for(lambda: scheduler.leading, timeout=10)
    assert not leader_lock_is_free()

    assert await asyncio.to_thread(drop_every_connection) > 0

    assert "Hi" in "".join(m["text"] or "" for m in await web.say("hello"))  # no restart in between
    assert "Hi" in await wa.say("hello")
    assert "Hi" in "".join(m["text"] or "" for m in await web.say("hello again"))
    # The leader lock died with its connection; the scheduler notices and takes it again.
    assert await wait_for(lambda: not leader_lock_is_free(), timeout=15), "scheduler leadership was not re-taken"
    assert await wait_for(lambda: scheduler.leading, timeout=10)  # set just after the lock is taken


async def test_a_turn_cut_off_mid_transaction_runs_again(client):
    web = await WebShopper.start(client)
    locker = side_connection(autocommit=False)
    try:
        # The turn's final write (its dialog state) waits behind this lock, inside its transaction ...
        locker.execute("LOCK TABLE bot_state IN EXCLUSIVE MODE")
        turn = asyncio.create_task(web.say("hi"))

        def turn_is_waiting() -> bool:
            with side_connection() as conn:
                return (
                    conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> %s",
                        (locker.info.backend_pid,),
                    ).fetchone()[0]
                    > 0
                )

        assert await wait_for(turn_is_waiting, timeout=15)
        # ... when the database drops every connection, that one included.
        await asyncio.to_thread(drop_every_connection)
    finally:
        locker.close()
    replies = await asyncio.wait_for(turn, timeout=30)
    assert "Hi" in "".join(m["text"] or "" for m in replies)
    history = await web.history()
    assert [m["direction"] for m in history].count("in") == 1
    assert len([m for m in history if m["direction"] == "out"]) == len(replies)
