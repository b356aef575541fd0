"""Learning from conversations: a message the bot did not understand, taught from the dashboard as
an intent, is understood on the next turn by the same running app (the real model, refitted in
the background) and by a second app on the same store, which picks the taught examples up on its
own; masked texts never become examples."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from bot.nlu import Recognizer
from bot.store.database import Database
from bot.store.models import AnalyticsEvent, Customer, MessageRecord, TaughtExample
from service.app import build_recognizer, create_app
from service.keys import DB, SERVICES
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import AUTH, TOKEN, changed
from tests.test_nlu import ROOT, cli_env

NONSENSE = "Blorp zingle wobbat"


async def last_turn(client) -> AnalyticsEvent:
    return await client.app[DB].run(
        lambda s: s.exec(
            select(AnalyticsEvent).where(AnalyticsEvent.kind == "turn").order_by(col(AnalyticsEvent.id).desc())
        ).first()
    )


def own_recognizer(settings, shared: Recognizer, nlu_cache_dir) -> Recognizer:
    """A recogniser of its own (the session's one is shared by every test), on the loaded model."""
    own = build_recognizer(changed(settings, nlu_cache_dir=str(nlu_cache_dir)), shared.model, shared.zh_encoder)
    return own


async def test_a_taught_group_is_understood_at_once_here_and_soon_in_another_app(
    aiohttp_client, settings, recognizer, nlu_cache_dir
):
    settings = changed(settings, admin_token=TOKEN, nlu_sync_seconds=0.5)
    first = await aiohttp_client(create_app(settings, own_recognizer(settings, recognizer, nlu_cache_dir)))
    second_recognizer = own_recognizer(settings, recognizer, nlu_cache_dir)
    second = await aiohttp_client(create_app(settings, second_recognizer))  # the same store

    shopper = await WebShopper.start(first)
    for said in [NONSENSE, "hi", "blorp ZINGLE wobbat", "hi", "qwpx vvrt my email is ann@example.com", "hi"]:
        await shopper.say(said)
    other = await WebShopper.start(second)
    await other.say(NONSENSE)
    assert (await last_turn(second)).outcome == "fallback"

    groups = (await (await first.get("/api/analytics", headers=AUTH)).json())["not_understood"]
    number = next((g["group"] for g in groups if g["example"].lower() == NONSENSE.lower()), None)
    masked = next((g["group"] for g in groups if "[email]" in g["example"]), None)
    assert number and masked, groups
    url = f"/api/analytics/review/{number}/teach"

    # Bad requests are clear, and nothing is stored by them.
    assert (await first.post(url, json={"intent": "order_status"})).status == 401
    bad = await first.post(url, json={"intent": "no_such_intent"}, headers=AUTH)
    assert bad.status == 400 and "unknown intent" in (await bad.json())["error"]
    assert (await first.post(url, json={"intent": "greet", "faq": "shipping"}, headers=AUTH)).status == 400
    assert (await first.post("/api/analytics/review/99/teach", json={"intent": "greet"}, headers=AUTH)).status == 404
    changed_list = await first.post(url, json={"intent": "greet", "example": "something else"}, headers=AUTH)
    assert changed_list.status == 409
    refused = await first.post(f"/api/analytics/review/{masked}/teach", json={"intent": "greet"}, headers=AUTH)
    assert refused.status == 409 and "masked" in (await refused.json())["error"]
    assert await first.app[DB].run(lambda s: s.exec(select(TaughtExample)).all()) == []

    started = time.monotonic()
    resp = await first.post(url, json={"intent": "order_status"}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    print(f"teach answered in {time.monotonic() - started:.1f} s")
    assert body["added"] == 1 and [t.lower() for t in body["examples"]] == [NONSENSE.lower()]
    stored = await first.app[DB].run(lambda s: [(e.text, e.intent) for e in s.exec(select(TaughtExample)).all()])
    assert [(t.lower(), i) for t, i in stored] == [(NONSENSE.lower(), "order_status")]
    again = await first.post(url, json={"intent": "order_status"}, headers=AUTH)
    assert (await again.json())["added"] == 0  # taught once

    # The same running app: the next turn.
    await shopper.say(NONSENSE)
    turn = await last_turn(first)
    assert (turn.intent, turn.outcome) == ("order_status", "understood")

    # The second app, never told: it looks at the store every NLU_SYNC_SECONDS.
    learner = second.app[SERVICES].learner
    deadline = time.monotonic() + 300
    while learner.version[0] == 0:
        assert time.monotonic() < deadline, "the second app never picked the taught example up"
        await asyncio.sleep(0.2)
    await other.say(NONSENSE)
    turn = await last_turn(second)
    assert (turn.intent, turn.outcome) == ("order_status", "understood")
    # What was understood before still is.
    await other.say("do you have black dresses?")
    assert (await last_turn(second)).intent == "product_search"


def test_teaching_on_the_command_line(tmp_path, nlu_cache_dir):
    env = cli_env(tmp_path, nlu_cache_dir)
    db = Database(env["DATABASE_URL"])
    db.create_schema()
    now = datetime.now(UTC)

    def said(session: Session) -> None:
        session.add(Customer(id="r1"))
        session.flush()
        for n, text in enumerate([NONSENSE, NONSENSE.upper(), "qwpx vvrt my email is ann@example.com"]):
            message = MessageRecord(customer_id="r1", channel="sms", direction="in", text=text, status="processed")
            session.add(message)
            session.flush()
            session.add(
                AnalyticsEvent(
                    kind="turn",
                    customer_id="r1",
                    channel="sms",
                    message_id=message.id,
                    outcome="fallback",
                    received_at=now - timedelta(minutes=n),
                )
            )

    db.transaction(said)
    run = [sys.executable, "app.py", "nlu", "review", "--teach"]
    out = subprocess.run(
        [*run, "1", "faq:no_such_entry"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 2 and "unknown FAQ entry" in out.stderr
    out = subprocess.run([*run, "2", "greet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "masked" in out.stderr, out.stderr[-2000:]
    out = subprocess.run([*run, "1", "order_status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 new examples of order_status" in out.stdout
    stored = db.transaction(lambda s: [(e.text, e.intent, e.faq_key) for e in s.exec(select(TaughtExample)).all()])
    assert stored == [(NONSENSE, "order_status", None)]
    db.close()
