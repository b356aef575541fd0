"""The dashboard's demo history is played by simulated shoppers through the real engine (the
recogniser, the dialogs, the store, the scheduled jobs) under a clock set in the past: its figures
follow from what the shoppers did, and nothing of it reaches a provider."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot import clock
from bot.analytics import Period, report
from bot.config import Settings
from bot.marketing.reminders import remind_carts
from bot.marketing.scheduler import reminder_settings
from bot.store.models import (
    AnalyticsEvent,
    ChannelIdentity,
    CsatAnswer,
    HandoffTicket,
    MessageRecord,
    Order,
    OrderItem,
    as_utc,
    utcnow,
)
from service import demo_history
from service.wiring import build
from tests.fakes.providers import FakeGraph, FakeTwilio

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def play(settings: Settings, recognizer, now: datetime | None = None, **options):
    """A fresh demo store with its history; returns the services (still open) and the summary."""

    async def run():
        services = build(settings, recognizer=recognizer, seed=True, demo_history=True)
        services.engine  # noqa: B018  (teaches the recogniser the catalog, as the server does)
        assert services.demo_history_due
        return services, await demo_history.write(services, now, **options)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def full(tmp_path_factory, demo_recognizer):
    """The history `python app.py` writes on first start, ending the day before the wall clock."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'shop.db'}"
    settings = Settings(_env_file=None, database_url=url, public_base_url="http://shop.test", bot_disclosure="off")
    services, summary = play(settings, demo_recognizer)
    today = utcnow().date()
    figures = services.db.transaction(lambda s: report(s, Period(today - timedelta(days=29), today), 6.0))
    yield services, summary, figures
    asyncio.run(services.close())


def test_a_fresh_demo_has_weeks_of_every_figure(full):
    services, summary, figures = full
    assert summary.conversations == demo_history.CONVERSATIONS
    print("demo history:", summary)  # the time it took is reported with -s
    assert figures["self_resolution"]["conversations"] >= 200
    assert 0.5 < figures["self_resolution"]["rate"] < 1
    assert figures["self_resolution"]["handed_off"] > 0
    assert figures["conversion"]["with_cart_add"] > 0 and figures["conversion"]["with_order"] > 0
    assert figures["aov"]["with_recommended"] > 0 and figures["aov"]["orders"] > figures["aov"]["with_recommended"]
    assert figures["csat"]["answers"] > 0
    assert 0 < figures["cart_recovery"]["recovered"] < figures["cart_recovery"]["reminded"]
    assert figures["ctr"]["recommendations"]["clicked"] > 0
    assert 0 < figures["ctr"]["offers"]["clicked"] < figures["ctr"]["offers"]["sent"]  # reminders' links opened
    assert figures["efficiency"]["handoffs_resolved"] > 0 and figures["efficiency"]["agent_minutes_per_handoff"] > 0
    assert figures["retention"]["back_within_30_days"] > 0
    assert set(figures["per_channel"]) == {"web", "whatsapp", "messenger", "sms"}
    assert set(figures["per_language"]) == {"en", "zh-TW"}
    # a provider's channel hands a reply over more slowly than the web chat's answer
    per_channel = figures["response"]["per_channel"]
    assert per_channel["whatsapp"]["p50_seconds"] > per_channel["web"]["p50_seconds"]
    assert sum(1 for d in figures["daily"] if d["conversations"]) >= 25


def test_the_history_was_written_by_the_engine(full, recognizer):
    services, summary, _ = full

    def read(s):
        turns = s.exec(
            select(AnalyticsEvent, MessageRecord)
            .join(MessageRecord, col(MessageRecord.id) == AnalyticsEvent.message_id)
            .where(AnalyticsEvent.kind == "turn")
        ).all()
        events = s.exec(select(func.count()).select_from(AnalyticsEvent)).one()
        demo = s.exec(select(func.count()).select_from(AnalyticsEvent).where(col(AnalyticsEvent.demo))).one()
        orders = s.exec(select(Order)).all()
        lines = Counter(i.order_id for i in s.exec(select(OrderItem)).all())
        ratings = s.exec(select(CsatAnswer.source)).all()
        tickets = s.exec(select(HandoffTicket.status)).all()
        identities = s.exec(
            select(func.count())
            .select_from(ChannelIdentity)
            .where(col(ChannelIdentity.customer_id).startswith(demo_history.PREFIX))
        ).one()
        return turns, events, demo, orders, lines, ratings, tickets, identities

    turns, events, demo, orders, lines, ratings, tickets, identities = services.db.transaction(read)
    # one turn event per inbound message the simulated shoppers sent, each with its stored message
    assert len(turns) == summary.messages
    assert events == demo  # every event is marked as demo
    # the intents are the recogniser's: what it makes of each typed text is what the turn recorded
    typed = {m.text: e.intent for e, m in turns if m.text and m.text in demo_history.SAYS["en"]["faq"]}
    assert typed
    for text, intent in typed.items():
        assert asyncio.run(recognizer.recognize(text)).name == intent
    assert {"product_search", "faq", "order_status"} <= {e.intent for e, _ in turns}
    # played in the past, under the simulated clock: over weeks, none of it today
    days = {as_utc(e.received_at).date() for e, _ in turns}
    assert max(days) < utcnow().date() and len(days) >= 25
    # orders were placed by the checkout, with lines, and paid through the pay page's path
    demo_orders = [o for o in orders if o.customer_id.startswith(demo_history.PREFIX)]
    assert len(demo_orders) == summary.orders > 0
    assert all(lines[o.id] > 0 and o.total_cents > 0 for o in demo_orders)
    assert "paid" in {o.status for o in demo_orders}
    assert "handoff" in ratings  # answers to the question after a handoff (and "bot" ones after sampled talks)
    assert set(tickets) == {"resolved"}  # the demo agent resolved every handoff
    assert identities == 0  # its shoppers cannot be messaged any more


async def test_nothing_reaches_a_provider(tmp_path, recognizer):
    """With Twilio and Messenger on, the history is written, then the outbox and the scheduler's
    jobs run: the providers are sent nothing for the simulated shoppers."""
    twilio, graph = await FakeTwilio().start(), await FakeGraph().start()
    try:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{tmp_path / 'shop.db'}",
            public_base_url="https://shop.example.com",
            twilio_account_sid=FakeTwilio.account_sid,
            twilio_auth_token=FakeTwilio.auth_token,
            twilio_whatsapp_from="whatsapp:+15550001111",
            twilio_sms_from="+15550001111",
            twilio_api_base=twilio.url,
            twilio_content_api_base=twilio.url,
            messenger_page_access_token=FakeGraph.page_token,
            messenger_app_secret=FakeGraph.app_secret,
            messenger_verify_token=FakeGraph.verify_token,
            graph_api_base=graph.url,
            bot_disclosure="off",
            csat_sample_rate=1.0,
        )
        services = build(settings, recognizer=recognizer, seed=True, demo_history=True)
        services.engine  # noqa: B018
        summary = await demo_history.write(services, NOW, conversations=40)
        assert summary.conversations == 40 and summary.messages > 40
        # The live jobs and the outbox, from the history's last evening on: its last conversations
        # are within the rating question's reach, its carts within the reminders'.
        end = (NOW - timedelta(days=1)).replace(hour=22, minute=0)
        for later in (end + timedelta(hours=1), NOW, NOW + timedelta(days=1), NOW + timedelta(days=2)):
            with clock.simulated(later):
                await services.db.run(services.csat_sampler.ask)
                await services.db.run(
                    lambda s, at=later: remind_carts(s, services.policy, reminder_settings(settings), at)
                )
                await services.outbox.dispatch_once()
        assert twilio.requests == [] and graph.requests == []
        pending = await services.db.run(
            lambda s: s.exec(
                select(func.count())
                .select_from(MessageRecord)
                .where(col(MessageRecord.status).in_(["pending", "sending"]))
            ).one()
        )
        assert pending == 0
        await services.close()
    finally:
        await twilio.close()
        await graph.close()


def test_the_figures_follow_the_scripts_and_the_seed(tmp_path, recognizer):
    """The same scripts from the same seed give the same history; other scripts, other figures."""

    def figures(name: str, scripts: tuple[str, ...]):
        settings = Settings(
            _env_file=None, database_url=f"sqlite:///{tmp_path / name}.db", public_base_url="http://shop.test"
        )
        services, _ = play(settings, recognizer, NOW, conversations=16, scripts=scripts)
        result = services.db.transaction(lambda s: report(s, Period(NOW.date() - timedelta(days=29), NOW.date()), 6.0))
        asyncio.run(services.close())
        return result

    browsing, again = figures("one", ("browse",)), figures("two", ("browse",))
    lost = figures("three", ("lost",))
    for figure in ("self_resolution", "conversion", "aov", "ctr"):
        assert browsing[figure] == again[figure]
    assert browsing["conversion"]["with_cart_add"] > 0 and browsing["ctr"]["recommendations"]["shown"] > 0
    assert lost["conversion"]["with_cart_add"] == 0 and lost["ctr"]["recommendations"]["shown"] == 0
    # shoppers who are not understood fall back, twice in a row, and are handed to a person
    assert lost["self_resolution"]["rate"] < browsing["self_resolution"]["rate"]
    assert lost["self_resolution"]["handed_off"] > 0
