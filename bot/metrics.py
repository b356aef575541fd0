"""Operations metrics in Prometheus' terms: turns, fallbacks, handoffs, outbox sends and webhook
acknowledgements, counted in memory as they happen (no store access) and read by `GET /metrics`.

Each service builds its own `Metrics` on its own `CollectorRegistry` (see `service/wiring.py`),
so every app, and every test, starts from zero. Labels carry only channel names, intents, error
codes, outcomes and status codes: never an address, a name or a text.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.nlu import FALLBACK, INTENTS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNDERSTOOD, FALLBACK_OUTCOME, HANDED_OFF = "understood", "fallback", "handed_off"
SENT, FAILED, RETRIED = "sent", "failed", "retried"
# Intents a turn may be counted under; a button's payload names one of these, anything else a
# shopper typed after a slash is counted as "other" (their text must not become a label).
KNOWN_INTENTS = frozenset(INTENTS) | {FALLBACK, "resume", "link"}
# A provider's error code is a short token ("21610", "network", "131047"); anything else is "other".
CODE_RE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Set by the engine for the turn under way: whether the dialogs opened a handoff in it.
_TURN_HANDOFF: ContextVar[list[bool] | None] = ContextVar("turn_handoff", default=None)


def intent_label(name: str | None) -> str:
    return name if name in KNOWN_INTENTS else "other"


def code_label(code: str | None) -> str:
    if not code:
        return "none"
    return code if CODE_RE.fullmatch(code) else "other"


class Metrics:
    """The service's counters, histograms and gauges, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.turns = Counter(
            "shop_turns_total",
            "Conversation turns by channel, outcome and intent",
            ["channel", "outcome", "intent"],
            registry=r,
        )
        self.turn_latency = Histogram(
            "shop_turn_latency_seconds",
            "From an inbound message stored to its turn's replies recorded",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter("shop_fallbacks_total", "Turns the bot did not understand", ["channel"], registry=r)
        self.handoffs_opened = Counter("shop_handoffs_opened_total", "Handoff tickets opened", registry=r)
        self.outbox_sends = Counter(
            "shop_outbox_sends_total",
            "Outbox send attempts by channel, result (sent, failed, retried) and error code",
            ["channel", "result", "code"],
            registry=r,
        )
        self.outbox_lag = Histogram(
            "shop_outbox_lag_seconds",
            "From a message becoming due to its being sent",
            ["channel"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.outbox_pending = Gauge(
            "shop_outbox_pending", "Outbound messages waiting to be sent, per channel", ["channel"], registry=r
        )
        self.webhook_acks = Counter(
            "shop_webhook_acks_total", "Webhook answers by channel and status code", ["channel", "status"], registry=r
        )
        self.webhook_latency = Histogram(
            "shop_webhook_ack_latency_seconds",
            "From a webhook's arrival to its answer",
            ["channel"],
            buckets=ACK_BUCKETS,
            registry=r,
        )

    # --- turns ------------------------------------------------------------------------------

    @staticmethod
    def watch_turn() -> list[bool]:
        """Start watching the turn under way (this task) for a handoff opened by the dialogs."""
        opened: list[bool] = []
        _TURN_HANDOFF.set(opened)
        return opened

    def turn(self, channel: str, intent: str | None, latency: float | None, outcome: str | None = None) -> None:
        """One turn whose replies are recorded. `outcome` when no ordinary turn ran (handed_off: a
        person has the conversation or the dialogs opened a handoff; rate_limited; failed); else
        it is understood, or fallback for the recogniser's fallback intent."""
        if outcome is None:
            outcome = FALLBACK_OUTCOME if intent == FALLBACK else UNDERSTOOD
        if intent == FALLBACK:
            self.fallbacks.labels(channel).inc()
        self.turns.labels(channel, outcome, intent_label(intent)).inc()
        if latency is not None:
            self.turn_latency.labels(channel).observe(max(0.0, latency))

    def handoff_opened(self) -> None:
        self.handoffs_opened.inc()
        watching = _TURN_HANDOFF.get()
        if watching is not None:
            watching.append(True)

    # --- the outbox -------------------------------------------------------------------------

    def send(self, channel: str, result: str, code: str | None = None, lag: float | None = None) -> None:
        self.outbox_sends.labels(channel, result, code_label(code)).inc()
        if lag is not None:
            self.outbox_lag.labels(channel).observe(max(0.0, lag))

    def set_pending(self, channels: list[str], counts: dict[str, int]) -> None:
        for channel in {*channels, *counts}:
            self.outbox_pending.labels(channel).set(counts.get(channel, 0))

    # --- webhooks ---------------------------------------------------------------------------

    def webhook(self, channel: str, status: int, seconds: float) -> None:
        self.webhook_acks.labels(channel, str(status)).inc()
        self.webhook_latency.labels(channel).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
