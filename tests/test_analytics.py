"""The dashboard's figures: events written by real turns of a web shopper, and every figure from a
known history inserted in the store, checked against numbers worked out here by hand; the API's
answers to bad periods and its CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlmodel import Session, col, select

from bot.analytics import group, mask
from bot.store.database import Database
from bot.store.models import (
    AnalyticsEvent,
    Cart,
    CsatAnswer,
    Customer,
    Dispatch,
    HandoffTicket,
    MessageRecord,
    Order,
    OrderItem,
    Variant,
    as_utc,
)
from service.app import create_app
from service.keys import DB
from tests.fakes.phone import TwilioShopper
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import AUTH, TOKEN, changed
from tests.test_nlu import ROOT, cli_env

DAY = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
async def admin_client(aiohttp_client, settings, recognizer):
    return await aiohttp_client(create_app(changed(settings, admin_token=TOKEN), recognizer))


async def events(client) -> list[AnalyticsEvent]:
    return await client.app[DB].run(
        lambda s: list(s.exec(select(AnalyticsEvent).order_by(col(AnalyticsEvent.id))).all())
    )


async def test_real_turns_record_events_and_the_figures_follow(admin_client):
    shopper = await WebShopper.start(admin_client)
    await shopper.say("what goes well with the trail blazer runner")
    shown = [card["title"] for m in shopper.last for card in m["cards"]]
    assert shown, "recommendations are shown as cards"
    await shopper.tap("Add to cart")  # the first recommended product
    while shopper.buttons() and "added" not in shopper.texts().lower():
        await shopper.tap(shopper.buttons()[0])  # its first size, then its first colour
    assert "added" in shopper.texts().lower()
    addons = [card["title"] for m in shopper.last for card in m["cards"]]  # "goes well with": recommended too

    recorded = await events(admin_client)
    turns = [e for e in recorded if e.kind == "turn"]
    assert turns[0].intent == "recommend" and turns[0].outcome == "understood"
    assert all(t.channel == "web" and t.replied_at is not None for t in turns)  # web replies go in the answer
    kinds = [e.kind for e in recorded]
    assert kinds.count("rec_shown") == len(shown) + len(addons)
    assert kinds.count("rec_clicked") == 1
    clicked = next(e.subject for e in recorded if e.kind == "rec_clicked")
    assert [e.subject for e in recorded if e.kind in ("cart_add", "rec_added")] == [clicked, clicked]
    # every turn's events are written with it: one turn row per inbound message
    assert len(turns) == len({t.message_id for t in turns})

    today = datetime.now(UTC).date().isoformat()
    resp = await admin_client.get(f"/api/analytics?from={today}&to={today}", headers=AUTH)
    assert resp.status == 200
    figures = await resp.json()
    assert figures["self_resolution"]["conversations"] == 1
    assert figures["self_resolution"]["resolved"] == 1
    assert figures["conversion"]["with_cart_add"] == 1
    assert figures["conversion"]["with_order"] == 0
    assert figures["ctr"]["recommendations"] == {
        "shown": len(shown) + len(addons),
        "clicked": 1,
        "rate": round(1 / (len(shown) + len(addons)), 4),
    }
    assert figures["response"]["replies"] == len(turns)
    assert figures["response"]["per_channel"]["web"]["p95_seconds"] >= figures["response"]["p50_seconds"] >= 0
    assert figures["per_channel"]["web"]["conversations"] == 1
    assert figures["daily"][-1]["conversations"] == 1


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


def turn(customer: str, channel: str, language: str, when: datetime, intent: str | None, outcome: str, **more):
    replied = more.pop("wait", None)
    return AnalyticsEvent(
        kind="turn",
        customer_id=customer,
        channel=channel,
        language=language,
        intent=intent,
        outcome=outcome,
        handoff=outcome == "handed_off",
        received_at=when,
        replied_at=when + timedelta(seconds=replied) if replied is not None else None,
        **more,
    )


def mark(kind: str, customer: str, when: datetime, sku: str) -> AnalyticsEvent:
    return AnalyticsEvent(kind=kind, customer_id=customer, channel="web", language="en", subject=sku, received_at=when)


def history(session: Session) -> None:
    """Four shoppers with conversations in the week from 2 November 2026, a fifth who only orders."""
    variant = session.exec(select(Variant).order_by(col(Variant.sku))).first()
    assert variant is not None
    sku, product = variant.sku, variant.product_sku
    for cid, channel, language in [
        ("c1", "web", "en"),
        ("c2", "whatsapp", "zh-TW"),
        ("c3", "whatsapp", "en"),
        ("c4", "messenger", "en"),
        ("c5", "web", "en"),
    ]:
        session.add(Customer(id=cid, last_channel=channel, language=language))
    session.flush()
    session.add_all(
        [
            # c1: a search, a recommended product added, then a second conversation 55 minutes on
            turn("c1", "web", "en", at(0, 10), "product_search", "understood", wait=1),
            turn("c1", "web", "en", at(0, 10, 5), "add_to_cart", "understood", wait=2),
            turn("c1", "web", "en", at(0, 11), "faq", "understood", wait=3),
            *[mark("rec_shown", "c1", at(0, 10), f"{product}-{n}") for n in range(3)],
            mark("rec_shown", "c1", at(0, 10), product),
            mark("rec_clicked", "c1", at(0, 10, 5), product),
            mark("cart_add", "c1", at(0, 10, 5), product),
            mark("rec_added", "c1", at(0, 10, 5), product),
            # c2: not understood twice in a row; comes back 17 days later
            turn("c2", "whatsapp", "zh-TW", at(1, 9), None, "fallback", wait=4),
            turn("c2", "whatsapp", "zh-TW", at(1, 9, 1), None, "fallback", wait=5),
            turn("c2", "whatsapp", "zh-TW", at(18, 9), "greet", "understood", wait=6),
            # c3: handed to a person
            turn("c3", "whatsapp", "en", at(1, 10), "human", "handed_off", wait=7),
            # c4: the same question twice, four hours apart
            turn("c4", "messenger", "en", at(2, 8), "order_status", "understood", wait=8),
            turn("c4", "messenger", "en", at(2, 12), "order_status", "understood", wait=9),
            turn("c4", "messenger", "en", at(2, 12, 1), "greet", "understood"),  # no reply accepted yet
        ]
    )
    order = Order(customer_id="c1", status="paid", total_cents=10_000, discount_code="COMEBACK10", created_at=at(0, 12))
    plain = Order(customer_id="c5", status="paid", total_cents=6_000, created_at=at(3, 12))
    gone = Order(customer_id="c5", status="cancelled", total_cents=99_000, created_at=at(3, 13))
    session.add_all([order, plain, gone])
    session.flush()
    session.add_all(
        [
            OrderItem(
                order_id=order.id, variant_sku=sku, name="x", size="M", colour="c", quantity=2, unit_price_cents=2_000
            ),
            OrderItem(
                order_id=plain.id, variant_sku=sku, name="x", size="M", colour="c", quantity=1, unit_price_cents=6_000
            ),
        ]
    )
    recovered = Cart(customer_id="c1", status="checked_out", checked_out_at=at(0, 12), discount_code="COMEBACK10")
    left = Cart(customer_id="c4", status="open")
    assert order.id is not None and plain.id is not None
    talked = HandoffTicket(customer_id="c3", status="resolved", assigned_at=at(1, 10), resolved_at=at(1, 10, 12))
    unassigned = HandoffTicket(customer_id="c2", status="resolved", resolved_at=at(1, 9, 30))
    session.add_all([recovered, left, talked, unassigned])
    session.flush()
    assert recovered.id is not None and left.id is not None and talked.id is not None and unassigned.id is not None
    session.add_all(
        [
            Dispatch(  # the second reminder: the one with the code
                key="r1", source="cart_reminder", source_id=recovered.id, step=2, customer_id="c1", created_at=at(0, 9)
            ),
            Dispatch(
                key="r2", source="cart_reminder", source_id=left.id, step=2, customer_id="c4", created_at=at(2, 9)
            ),
            Dispatch(
                key="k2", source="campaign", source_id=1, customer_id="c2", created_at=at(-1, 9), clicked_at=at(0, 9)
            ),
            Dispatch(key="k3", source="campaign", source_id=1, customer_id="c3", created_at=at(-1, 9)),
            Dispatch(key="k4", source="campaign", source_id=1, customer_id="c4", created_at=at(-1, 9)),
            # the tracked links' impressions (queued with the link) and first clicks
            *[mark("campaign_shown", c, at(-1, 9), k) for c, k in (("c2", "k2"), ("c3", "k3"), ("c4", "k4"))],
            mark("campaign_clicked", "c2", at(0, 9), "k2"),
            mark("offer_shown", "c1", at(0, 9), "r1"),
            mark("offer_shown", "c4", at(2, 9), "r2"),
            mark("offer_clicked", "c1", at(0, 9, 20), "r1"),
            mark("offer_shown", "c4", at(8, 9), "r3"),  # after the period
            CsatAnswer(ticket_id=talked.id, customer_id="c3", score=4, created_at=at(1, 10, 15)),
            CsatAnswer(ticket_id=unassigned.id, customer_id="c2", score=2, created_at=at(1, 9, 35)),
        ]
    )


def nearest_rank(values: list[float], share: float) -> float:
    return sorted(values)[math.ceil(len(values) * share) - 1]


async def test_every_figure_from_a_known_history(admin_client):
    await admin_client.app[DB].run(history)
    resp = await admin_client.get("/api/analytics?from=2026-11-01&to=2026-11-07", headers=AUTH)
    assert resp.status == 200
    f = await resp.json()

    # conversations: c1 twice (55 minutes apart), c2 once (the return is 17 days on), c3 once, c4 twice
    assert f["self_resolution"] == {
        "conversations": 6,
        "resolved": 3,  # c1's two and c4's second; not c2 (two fallbacks), c3 (a person), c4's first (asked again)
        "handed_off": 1,
        "two_fallbacks": 1,
        "asked_again": 1,
        "rate": 0.5,
    }
    # c1's first conversation added to the cart; its order at 12:00 follows both of c1's conversations
    assert f["conversion"] == {
        "conversations": 6,
        "with_cart_add": 1,
        "with_order": 2,
        "cart_rate": round(1 / 6, 4),
        "order_rate": round(2 / 6, 4),
    }
    assert f["cart_recovery"] == {"reminded": 2, "recovered": 1, "rate": 0.5}
    # c1's order holds the recommended product (2 x 20.00); c5's does not; the cancelled one is left out
    assert f["aov"] == {
        "orders": 2,
        "with_recommended": 1,
        "aov_with_cents": 10_000,
        "aov_without_cents": 6_000,
        "uplift": round(10_000 / 6_000 - 1, 4),
        "recommended_revenue_cents": 4_000,
    }
    assert f["csat"] == {"answers": 2, "average": 3.0, "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0}}
    waits = [1, 2, 3, 4, 5, 7, 8, 9]  # c2's return (18 days on) is outside the week; c4's last is unanswered
    assert f["response"]["replies"] == len(waits)
    assert f["response"]["p50_seconds"] == nearest_rank(waits, 0.5) == 4
    assert f["response"]["p95_seconds"] == nearest_rank(waits, 0.95) == 9
    assert f["response"]["per_channel"]["whatsapp"] == {"replies": 3, "p50_seconds": 5, "p95_seconds": 7}
    # c1 and c4 come back the same day, c2 after 17 days, c3 never
    assert f["retention"] == {
        "shoppers": 4,
        "back_within_7_days": 2,
        "rate_7": 0.5,
        "back_within_30_days": 3,
        "rate_30": 0.75,
    }
    assert f["ctr"]["campaign_links"] == {"sent": 3, "clicked": 1, "rate": round(1 / 3, 4)}  # sent 1 November
    assert f["ctr"]["recommendations"] == {"shown": 4, "clicked": 1, "rate": 0.25}
    # two reminders sent with their link, one opened; one carried a code, used
    assert f["ctr"]["offers"] == {
        "sent": 2,
        "clicked": 1,
        "rate": 0.5,
        "discounts_sent": 1,  # the other reminded cart had no code
        "used": 1,
        "use_rate": 1.0,
    }
    assert f["efficiency"] == {
        "without_agent": 5,
        "share_without_agent": round(5 / 6, 4),
        "agent_hours_saved": round(5 * 6.0 / 60, 2),  # AGENT_MINUTES_PER_CONVERSATION defaults to 6
        "handoffs_resolved": 1,  # the unassigned ticket had no agent time
        "agent_minutes_per_handoff": 12.0,
    }
    assert f["per_channel"]["whatsapp"] == {
        "conversations": 2,
        "self_resolution": 0.0,
        "cart_rate": 0.0,
        "order_rate": 0.0,
    }
    assert f["per_language"]["zh-TW"]["conversations"] == 1
    assert [d["conversations"] for d in f["daily"]] == [0, 2, 2, 2, 0, 0, 0]
    assert [d["csat_average"] for d in f["daily"]][:3] == [None, None, 3.0]

    # one channel, one language
    resp = await admin_client.get("/api/analytics?from=2026-11-01&to=2026-11-07&channel=whatsapp", headers=AUTH)
    only = await resp.json()
    assert only["self_resolution"]["conversations"] == 2 and only["self_resolution"]["resolved"] == 0
    assert only["response"]["replies"] == 3
    assert only["csat"]["answers"] == 2  # both answering shoppers last wrote on WhatsApp
    resp = await admin_client.get("/api/analytics?from=2026-11-01&to=2026-11-07&language=en", headers=AUTH)
    english = await resp.json()
    assert english["self_resolution"]["conversations"] == 5
    assert english["aov"]["orders"] == 2

    # the week before has nothing
    resp = await admin_client.get("/api/analytics?from=2026-10-25&to=2026-10-31", headers=AUTH)
    empty = await resp.json()
    assert empty["self_resolution"]["rate"] is None and empty["aov"]["orders"] == 0

    # each table as CSV
    resp = await admin_client.get("/api/analytics?from=2026-11-01&to=2026-11-07&format=csv&table=daily", headers=AUTH)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0][:2] == ["date", "conversations"] and len(rows) == 8
    assert rows[3][:3] == ["2026-11-03", "2", "0"]
    resp = await admin_client.get(
        "/api/analytics?from=2026-11-01&to=2026-11-07&format=csv&table=channels", headers=AUTH
    )
    channels = {row[0]: row for row in csv.reader(io.StringIO(await resp.text()))}
    assert set(channels) == {"channel", "web", "whatsapp", "messenger"}


@pytest.mark.parametrize(
    "query, message",
    [
        ("from=2026-13-01", "`from` must be a date"),
        ("to=yesterday", "`to` must be a date"),
        ("from=2026-11-07&to=2026-11-01", "`to` is before `from`"),
        ("from=2020-01-01&to=2026-11-01", "at most 366 days"),
        ("channel=<script>", "`channel` must be"),
        ("format=xml", "`format` is json or csv"),
        ("format=csv&table=secrets", "`table` is one of"),
    ],
)
async def test_bad_periods_are_clear_400s(admin_client, query, message):
    resp = await admin_client.get(f"/api/analytics?{query}", headers=AUTH)
    assert resp.status == 400
    assert message in (await resp.json())["error"]


async def test_the_figures_need_the_admin_token(admin_client, client):
    assert (await admin_client.get("/api/analytics")).status == 401
    assert (await admin_client.get("/api/analytics", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await admin_client.get("/api/analytics/dashboard")).status == 401
    assert (await client.get("/api/analytics", headers=AUTH)).status == 403  # no ADMIN_TOKEN: off


async def test_a_whatsapp_turn_is_answered_when_twilio_takes_its_reply(channel_client, fake_twilio):
    shopper = TwilioShopper(channel_client, fake_twilio, "whatsapp", "+14155550123")
    await shopper.say("do you have black dresses?")
    assert shopper.mine(), "Twilio got the reply"
    for _ in range(100):  # the outbox records the send just after the provider answers
        turns = [e for e in await events(channel_client) if e.kind == "turn"]
        if turns and turns[0].replied_at is not None:
            break
        await asyncio.sleep(0.05)
    assert len(turns) == 1 and turns[0].channel == "whatsapp" and turns[0].intent == "product_search"
    replied, received = turns[0].replied_at, turns[0].received_at
    assert replied is not None and as_utc(replied) >= as_utc(received)


async def test_what_was_not_understood_is_grouped_and_masked(admin_client, settings, tmp_path):
    shopper = await WebShopper.start(admin_client)
    for said in ["Blorp zingle wobbat", "blorp  ZINGLE wobbat", "qwpx vvrt my email is ann@example.com"]:
        await shopper.say(said)
        await shopper.say("hi")  # an understood message between: no two fallbacks in a row, no handoff
    recorded = [e for e in await events(admin_client) if e.kind == "turn"]
    assert [e.outcome for e in recorded].count("fallback") == 3

    resp = await admin_client.get("/api/analytics", headers=AUTH)
    groups = (await resp.json())["not_understood"]
    assert groups[0]["example"].lower().split() == ["blorp", "zingle", "wobbat"]  # case and spaces aside
    assert groups[0]["count"] == 2
    assert groups[0]["fallbacks"] == 2 and groups[0]["handoffs"] == 0
    said = [t for g in groups for t in g["texts"]]
    assert "qwpx vvrt my email is [email]" in said
    assert not any("ann@example.com" in t for t in said)
    resp = await admin_client.get("/api/analytics?format=csv&table=not_understood", headers=AUTH)
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["count", "fallbacks", "handoffs", "example", "also_said"]
    assert rows[1][:3] == ["2", "2", "0"] and rows[1][3] == groups[0]["example"]


@pytest.mark.parametrize(
    "text, masked",
    [
        ("call me on +1 415 555 0100 please", "call me on [number] please"),
        ("order #1042 never came", "order [number] never came"),
        ("write to a.b+c@shop.example.org", "write to [email]"),
        ("size 9 in black", "size 9 in black"),
    ],
)
def test_masking(text, masked):
    assert mask(text) == masked


def test_messages_close_in_meaning_are_one_group():
    near = [1.0, 0.0]
    items = [("where is my parcel", "fallback"), ("where's my package", "handed_off"), ("hello", "fallback")]
    vectors = {"where is my parcel": near, "where's my package": [0.9, 0.436], "hello": [0.0, 1.0]}
    groups = group(items, {k: np.array(v) for k, v in vectors.items()})
    assert [(g["count"], g["fallbacks"], g["handoffs"]) for g in groups] == [(2, 1, 1), (1, 1, 0)]
    assert groups[0]["texts"] == ["where is my parcel", "where's my package"]


def test_nlu_review_on_the_command_line(tmp_path, recognizer, nlu_cache_dir):
    env = cli_env(tmp_path, nlu_cache_dir)
    db = Database(env["DATABASE_URL"])
    db.create_schema()
    now = datetime.now(UTC)

    def said(session: Session) -> None:
        session.add(Customer(id="r1"))
        session.flush()
        for n, (text, outcome) in enumerate(
            [("Blorp zingle", "fallback"), ("blorp ZINGLE", "fallback"), ("call +1 415 555 0100 now", "handed_off")]
        ):
            message = MessageRecord(customer_id="r1", channel="sms", direction="in", text=text, status="processed")
            session.add(message)
            session.flush()
            session.add(
                AnalyticsEvent(
                    kind="turn",
                    customer_id="r1",
                    channel="sms",
                    message_id=message.id,
                    outcome=outcome,
                    received_at=now - timedelta(minutes=n),
                )
            )

    db.transaction(said)
    db.close()
    run = [sys.executable, "app.py", "nlu", "review"]
    out = subprocess.run([*run, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    groups = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(g["count"], g["fallbacks"], g["handoffs"]) for g in groups] == [(2, 2, 0), (1, 0, 1)]
    assert groups[1]["example"] == "call [number] now"
    out = subprocess.run([*run, "--days", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "--days is 1 to 366" in out.stderr


async def test_the_rendered_dashboard_compares_with_the_period_before(admin_client):
    await admin_client.app[DB].run(history)
    # 3-4 November: c2, c3 and c4's two conversations, one resolved; 1-2 November: c1's two, both resolved
    resp = await admin_client.get("/api/analytics/dashboard?from=2026-11-03&to=2026-11-04", headers=AUTH)
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    tile = html[html.index('data-figure="self_resolution"') :]
    tile = tile[: tile.index("</article>")]
    assert '<p class="value">25.0%</p>' in tile
    assert '<p class="change">-75.0 pp vs previous period</p>' in tile
    assert html.count('class="tile"') == 9 and html.count("<svg") == 5  # four charts and the funnel


async def test_the_dashboards_amounts_carry_the_shops_currency(admin_client):
    from service.analytics_page import headlines

    await admin_client.app[DB].run(history)
    resp = await admin_client.get("/api/analytics?from=2026-11-01&to=2026-11-04", headers=AUTH)
    figures = await resp.json()
    figures["aov"].update(aov_with_cents=13404, aov_without_cents=10903, recommended_revenue_cents=250000)
    detail = headlines(figures, "USD")["aov"][3]
    assert detail == "AOV $134.04 with a recommended item, $109.03 without; $2,500.00 from recommendations"
    assert headlines(figures, "TWD")["aov"][3].startswith("AOV NT$134.04 ")
