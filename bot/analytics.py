"""The retailer's dashboard: the nine figures a retail bot is judged by, computed from the store
(the turns' `AnalyticsEvent`s, orders, carts, campaign sends, handoffs and CSAT answers) over a
period, per channel, per language and per day. The definitions are in the README ("Analytics")
and on the page; `DEFINITIONS` holds the page's wording."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.marketing.reminders import DISCOUNT_STEP
from bot.nlu import EMAIL_RE
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

GAP = timedelta(minutes=30)  # a shopper's messages further apart than this are two conversations
REPEAT_WINDOW = timedelta(hours=24)  # the same question again within this: not resolved
ORDER_WINDOW = timedelta(hours=24)  # an order this long after a conversation (or reminder) counts
RETENTION_DAYS = (7, 30)
MAX_DAYS = 366  # the longest period a report covers
FIGURES = (
    "self_resolution",
    "conversion",
    "cart_recovery",
    "aov",
    "csat",
    "response",
    "retention",
    "ctr",
    "efficiency",
)
DEFINITIONS = {
    "self_resolution": "Conversations (a shopper's messages less than 30 minutes apart) that ended without a "
    "person taking over, without two fallbacks in a row, and without the shopper opening the next "
    "conversation within 24 hours with the same question (intent).",
    "conversion": "Conversations in which something was added to the cart, and those followed by an order "
    "(not cancelled) within 24 hours of the conversation's last message.",
    "cart_recovery": "Carts that got an abandoned-cart reminder in the period, and those checked out within "
    "24 hours of the first reminder.",
    "aov": "Average order value of orders holding a product the bot recommended to that shopper and which "
    "they then added, against orders without one; and the revenue from those recommended products.",
    "csat": "The shoppers' 1-5 answers to the satisfaction question, asked after a handoff and after one in "
    "N conversations the bot handled alone (CSAT_SAMPLE_RATE), both counted: average and distribution.",
    "response": "Time from an inbound message being stored to its first reply being accepted by the "
    "provider (web chat: handed over in the answer), 50th and 95th percentile.",
    "retention": "Shoppers with a conversation in the period who started another one within 7 and within "
    "30 days after it ended.",
    "ctr": "Clicks per impression: taps on products the bot recommended per product recommended; "
    "campaign links opened per campaign message sent with its link; offer links (abandoned-cart "
    "and restock reminders) opened per reminder sent with its link, each counted once; and "
    "reminder discount codes used in an order within 24 hours per code sent.",
    "efficiency": "Share of conversations no person took part in, agent minutes per handed-over "
    "conversation (assigned to resolved), and agent hours saved: conversations without an agent "
    "times AGENT_MINUTES_PER_CONVERSATION.",
}


class PeriodError(ValueError):
    """A period the report cannot cover (end before start, too long)."""


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `start` to `end` (both included), optionally one channel and language."""

    start: date
    end: date
    channel: str | None = None
    language: str | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError("`to` is before `from`")
        if self.days > MAX_DAYS:
            raise PeriodError(f"a period is at most {MAX_DAYS} days")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]

    def covers(self, moment: datetime) -> bool:
        return self.since <= moment < self.until


@dataclass
class Conversation:
    customer_id: str
    channel: str
    language: str
    start: datetime
    end: datetime
    intents: list[str | None] = field(default_factory=list)
    outcomes: list[str | None] = field(default_factory=list)
    handoff: bool = False
    repeated: bool = False  # the next conversation, within 24 h, opened with the same intent
    cart_add: bool = False
    ordered: bool = False

    @property
    def double_fallback(self) -> bool:
        return any(a == b == "fallback" for a, b in zip(self.outcomes, self.outcomes[1:], strict=False))

    @property
    def opening_intent(self) -> str | None:
        return next((i for i, o in zip(self.intents, self.outcomes, strict=True) if o == "understood"), None)

    @property
    def resolved(self) -> bool:
        return not (self.handoff or self.double_fallback or self.repeated)


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (the smallest value at or above `share` of them)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def conversations(session: Session, period: Period) -> list[Conversation]:
    """The conversations that started in the period (on its channel and in its language)."""
    # A day before for where a conversation began, a day after for the same question again.
    load_from, load_to = period.since - timedelta(days=1), period.until + REPEAT_WINDOW
    turns = session.execute(
        sa_select(
            col(AnalyticsEvent.customer_id),
            col(AnalyticsEvent.channel),
            col(AnalyticsEvent.language),
            col(AnalyticsEvent.intent),
            col(AnalyticsEvent.outcome),
            col(AnalyticsEvent.handoff),
            col(AnalyticsEvent.received_at),
        )
        .where(
            col(AnalyticsEvent.kind) == "turn",
            col(AnalyticsEvent.received_at) >= load_from,
            col(AnalyticsEvent.received_at) < load_to,
        )
        .order_by(col(AnalyticsEvent.customer_id), col(AnalyticsEvent.received_at), col(AnalyticsEvent.id))
    ).all()
    by_customer: dict[str, list[Conversation]] = defaultdict(list)
    for customer_id, channel, language, intent, outcome, handoff, received in turns:
        if outcome == "rated":
            continue  # an answer to the rating question is no conversation of its own
        at = as_utc(received)
        talks = by_customer[customer_id]
        if not talks or at - talks[-1].end >= GAP:
            talks.append(Conversation(customer_id, channel, language, at, at))
        talk = talks[-1]
        talk.end, talk.language = at, language
        talk.intents.append(intent)
        talk.outcomes.append(outcome)
        talk.handoff = talk.handoff or bool(handoff)
    adds = _times(session, "cart_add", load_from, load_to)
    orders = _order_times(session, load_from, load_to + ORDER_WINDOW)
    found = []
    for customer_id, talks in by_customer.items():
        for talk, following in zip(talks, talks[1:] + [None], strict=True):
            if following is not None and following.start - talk.end < REPEAT_WINDOW:
                talk.repeated = talk.opening_intent is not None and following.opening_intent == talk.opening_intent
            talk.cart_add = any(talk.start <= at <= talk.end for at in adds.get(customer_id, ()))
            talk.ordered = any(talk.start <= at <= talk.end + ORDER_WINDOW for at in orders.get(customer_id, ()))
            if (
                period.covers(talk.start)
                and period.channel in (None, talk.channel)
                and period.language in (None, talk.language)
            ):
                found.append(talk)
    return found


def _times(session: Session, kind: str, since: datetime, until: datetime) -> dict[str, list[datetime]]:
    rows = session.execute(
        sa_select(col(AnalyticsEvent.customer_id), col(AnalyticsEvent.received_at)).where(
            col(AnalyticsEvent.kind) == kind,
            col(AnalyticsEvent.received_at) >= since,
            col(AnalyticsEvent.received_at) < until,
        )
    ).all()
    found: dict[str, list[datetime]] = defaultdict(list)
    for customer_id, at in rows:
        found[customer_id].append(as_utc(at))
    return found


def _order_times(session: Session, since: datetime, until: datetime) -> dict[str, list[datetime]]:
    rows = session.execute(
        sa_select(col(Order.customer_id), col(Order.created_at)).where(
            col(Order.status) != "cancelled", col(Order.created_at) >= since, col(Order.created_at) < until
        )
    ).all()
    found: dict[str, list[datetime]] = defaultdict(list)
    for customer_id, at in rows:
        found[customer_id].append(as_utc(at))
    return found


def _shopper_filter(period: Period) -> list[Any]:
    """Orders, carts and answers belong to the shopper's latest channel and language."""
    conditions = []
    if period.channel:
        conditions.append(col(Customer.last_channel) == period.channel)
    if period.language:
        conditions.append(col(Customer.language) == period.language)
    return conditions


def _conversation_figures(talks: list[Conversation], minutes_per_conversation: float) -> dict[str, Any]:
    total = len(talks)
    resolved = sum(t.resolved for t in talks)
    carts = sum(t.cart_add for t in talks)
    ordered = sum(t.ordered for t in talks)
    no_agent = sum(not t.handoff for t in talks)
    return {
        "self_resolution": {
            "conversations": total,
            "resolved": resolved,
            "handed_off": sum(t.handoff for t in talks),
            "two_fallbacks": sum(t.double_fallback for t in talks),
            "asked_again": sum(t.repeated for t in talks),
            "rate": _rate(resolved, total),
        },
        "conversion": {
            "conversations": total,
            "with_cart_add": carts,
            "with_order": ordered,
            "cart_rate": _rate(carts, total),
            "order_rate": _rate(ordered, total),
        },
        "efficiency_conversations": {
            "without_agent": no_agent,
            "share_without_agent": _rate(no_agent, total),
            "agent_hours_saved": round(no_agent * minutes_per_conversation / 60, 2),
        },
    }


def cart_recovery(session: Session, period: Period) -> dict[str, Any]:
    first = (
        select(col(Dispatch.source_id), func.min(col(Dispatch.created_at)).label("at"))
        .where(col(Dispatch.source) == "cart_reminder", col(Dispatch.status) == "queued")
        .group_by(col(Dispatch.source_id))
        .subquery()
    )
    rows = session.execute(
        sa_select(first.c.at, col(Cart.checked_out_at))
        .join(Cart, col(Cart.id) == first.c.source_id)
        .join(Customer, col(Customer.id) == col(Cart.customer_id))
        .where(first.c.at >= period.since, first.c.at < period.until, *_shopper_filter(period))
    ).all()
    reminded = len(rows)
    recovered = sum(
        1 for at, done in rows if done is not None and as_utc(at) <= as_utc(done) <= as_utc(at) + ORDER_WINDOW
    )
    return {"reminded": reminded, "recovered": recovered, "rate": _rate(recovered, reminded)}


def aov(session: Session, period: Period) -> dict[str, Any]:
    orders = session.execute(
        sa_select(col(Order.id), col(Order.customer_id), col(Order.total_cents), col(Order.created_at))
        .join(Customer, col(Customer.id) == col(Order.customer_id))
        .where(
            col(Order.status) != "cancelled",
            col(Order.created_at) >= period.since,
            col(Order.created_at) < period.until,
            *_shopper_filter(period),
        )
    ).all()
    customers = {customer_id for _, customer_id, _, _ in orders}
    added: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for customer_id, sku, at in session.execute(
        sa_select(col(AnalyticsEvent.customer_id), col(AnalyticsEvent.subject), col(AnalyticsEvent.received_at)).where(
            col(AnalyticsEvent.kind) == "rec_added",
            col(AnalyticsEvent.customer_id).in_(customers),
            col(AnalyticsEvent.received_at) < period.until,
        )
    ).all():
        added[(customer_id, sku or "")].append(as_utc(at))
    items: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for order_id, product_sku, quantity, price in session.execute(
        sa_select(
            col(OrderItem.order_id), col(Variant.product_sku), col(OrderItem.quantity), col(OrderItem.unit_price_cents)
        )
        .join(Variant, col(Variant.sku) == col(OrderItem.variant_sku))
        .where(col(OrderItem.order_id).in_([o[0] for o in orders]))
    ).all():
        items[order_id].append((product_sku, quantity * price))
    with_rec: list[int] = []
    without: list[int] = []
    revenue = 0
    for order_id, customer_id, total, created in orders:
        recommended = [
            amount
            for sku, amount in items.get(order_id, [])
            if any(at <= as_utc(created) for at in added.get((customer_id, sku), ()))
        ]
        (with_rec if recommended else without).append(total)
        revenue += sum(recommended)
    aov_with = round(statistics.fmean(with_rec)) if with_rec else None
    aov_without = round(statistics.fmean(without)) if without else None
    return {
        "orders": len(orders),
        "with_recommended": len(with_rec),
        "aov_with_cents": aov_with,
        "aov_without_cents": aov_without,
        "uplift": round(aov_with / aov_without - 1, 4) if aov_with is not None and aov_without else None,
        "recommended_revenue_cents": revenue,
    }


def csat(session: Session, period: Period) -> dict[str, Any]:
    scores = (
        session.execute(
            sa_select(col(CsatAnswer.score))
            .join(Customer, col(Customer.id) == col(CsatAnswer.customer_id))
            .where(
                col(CsatAnswer.created_at) >= period.since,
                col(CsatAnswer.created_at) < period.until,
                *_shopper_filter(period),
            )
        )
        .scalars()
        .all()
    )
    return {
        "answers": len(scores),
        "average": round(statistics.fmean(scores), 2) if scores else None,
        "distribution": {str(n): sum(1 for s in scores if s == n) for n in range(1, 6)},
    }


def response(session: Session, period: Period) -> dict[str, Any]:
    conditions: list[Any] = [
        col(AnalyticsEvent.kind) == "turn",
        col(AnalyticsEvent.received_at) >= period.since,
        col(AnalyticsEvent.received_at) < period.until,
        col(AnalyticsEvent.replied_at).is_not(None),
    ]
    if period.channel:
        conditions.append(col(AnalyticsEvent.channel) == period.channel)
    if period.language:
        conditions.append(col(AnalyticsEvent.language) == period.language)
    rows = session.execute(
        sa_select(col(AnalyticsEvent.channel), col(AnalyticsEvent.received_at), col(AnalyticsEvent.replied_at)).where(
            *conditions
        )
    ).all()
    waits: dict[str, list[float]] = defaultdict(list)
    for channel, received, replied in rows:
        assert replied is not None  # selected so
        seconds = max(0.0, (as_utc(replied) - as_utc(received)).total_seconds())
        waits[channel].append(seconds)
        waits["all"].append(seconds)

    def spread(values: list[float]) -> dict[str, Any]:
        p50, p95 = _percentile(values, 0.5), _percentile(values, 0.95)
        return {
            "replies": len(values),
            "p50_seconds": round(p50, 3) if p50 is not None else None,
            "p95_seconds": round(p95, 3) if p95 is not None else None,
        }

    return {**spread(waits.pop("all", [])), "per_channel": {c: spread(v) for c, v in sorted(waits.items())}}


def retention(session: Session, period: Period, talks: list[Conversation]) -> dict[str, Any]:
    """Shoppers with a conversation in the period and their next conversation after it."""
    first_end: dict[str, datetime] = {}
    for talk in sorted(talks, key=lambda t: t.start):
        first_end.setdefault(talk.customer_id, talk.end)
    horizon = period.until + timedelta(days=max(RETENTION_DAYS))
    later = (
        []
        if not first_end
        else session.execute(
            sa_select(col(AnalyticsEvent.customer_id), col(AnalyticsEvent.received_at)).where(
                col(AnalyticsEvent.kind) == "turn",
                col(AnalyticsEvent.customer_id).in_(list(first_end)),
                col(AnalyticsEvent.received_at) >= period.since,
                col(AnalyticsEvent.received_at) < horizon,
            )
        ).all()
    )
    came_back: dict[str, datetime] = {}
    for customer_id, at in later:
        at = as_utc(at)
        end = first_end[customer_id]
        if at - end >= GAP and (customer_id not in came_back or at < came_back[customer_id]):
            came_back[customer_id] = at
    result: dict[str, Any] = {"shoppers": len(first_end)}
    for days in RETENTION_DAYS:
        back = sum(1 for c, at in came_back.items() if at - first_end[c] <= timedelta(days=days))
        result[f"back_within_{days}_days"] = back
        result[f"rate_{days}"] = _rate(back, len(first_end))
    return result


CTR_KINDS = (
    "rec_shown",
    "rec_clicked",
    "campaign_shown",
    "campaign_clicked",
    "offer_shown",
    "offer_clicked",
)


def ctr(session: Session, period: Period) -> dict[str, Any]:
    """Clicks per impression, all from analytics events: products the bot recommended (shown in a
    turn, tapped), and the tracked links of campaign messages and of reminders, the offers
    (`bot/delivery/clicks.py`: shown when queued carrying the link, clicked when first opened);
    besides, the codes the reminders carried (the second reminder) used in an order within 24 hours."""
    conditions: list[Any] = [
        col(AnalyticsEvent.kind).in_(CTR_KINDS),
        col(AnalyticsEvent.received_at) >= period.since,
        col(AnalyticsEvent.received_at) < period.until,
    ]
    if period.channel:
        conditions.append(col(AnalyticsEvent.channel) == period.channel)
    if period.language:
        conditions.append(col(AnalyticsEvent.language) == period.language)
    counts = dict.fromkeys(CTR_KINDS, 0)
    for kind, n in session.execute(
        sa_select(col(AnalyticsEvent.kind), func.count()).where(*conditions).group_by(col(AnalyticsEvent.kind))
    ).all():
        counts[kind] = n
    sent = [
        col(Dispatch.status) == "queued",
        col(Dispatch.created_at) >= period.since,
        col(Dispatch.created_at) < period.until,
    ]
    if period.channel:
        sent.append(col(Dispatch.channel) == period.channel)
    language = [col(Customer.language) == period.language] if period.language else []
    offers = session.execute(
        sa_select(col(Dispatch.customer_id), col(Dispatch.created_at), col(Cart.discount_code))
        .join(Cart, and_(col(Cart.id) == col(Dispatch.source_id), col(Cart.discount_code).is_not(None)))
        .join(Customer, col(Customer.id) == col(Dispatch.customer_id))
        .where(col(Dispatch.source) == "cart_reminder", col(Dispatch.step) == DISCOUNT_STEP, *sent, *language)
    ).all()
    used = 0
    for customer_id, at, code in offers:
        used += (
            session.execute(
                sa_select(func.count())
                .select_from(Order)
                .where(
                    col(Order.customer_id) == customer_id,
                    col(Order.discount_code) == code,
                    col(Order.status) != "cancelled",
                    col(Order.created_at) >= at,
                    col(Order.created_at) < as_utc(at) + ORDER_WINDOW,
                )
            ).scalar_one()
            > 0
        )

    def clicks(shown: str, clicked: str, label: str = "shown") -> dict[str, Any]:
        return {label: counts[shown], "clicked": counts[clicked], "rate": _rate(counts[clicked], counts[shown])}

    return {
        "recommendations": clicks("rec_shown", "rec_clicked"),
        "campaign_links": clicks("campaign_shown", "campaign_clicked", "sent"),
        "offers": {
            **clicks("offer_shown", "offer_clicked", "sent"),
            "discounts_sent": len(offers),
            "used": used,
            "use_rate": _rate(used, len(offers)),
        },
    }


def agent_minutes(session: Session, period: Period) -> dict[str, Any]:
    language = [col(HandoffTicket.language) == period.language] if period.language else []
    channel = [col(Customer.last_channel) == period.channel] if period.channel else []
    rows = session.execute(
        sa_select(col(HandoffTicket.assigned_at), col(HandoffTicket.resolved_at))
        .join(Customer, col(Customer.id) == col(HandoffTicket.customer_id))
        .where(
            col(HandoffTicket.resolved_at).is_not(None),
            col(HandoffTicket.assigned_at).is_not(None),
            col(HandoffTicket.resolved_at) >= period.since,
            col(HandoffTicket.resolved_at) < period.until,
            *language,
            *channel,
        )
    ).all()
    minutes = [(as_utc(done) - as_utc(start)).total_seconds() / 60 for start, done in rows if start and done]
    return {
        "handoffs_resolved": len(minutes),
        "agent_minutes_per_handoff": round(statistics.fmean(minutes), 1) if minutes else None,
    }


def _split(talks: Iterable[Conversation], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Conversation]] = defaultdict(list)
    for talk in talks:
        groups[getattr(talk, key)].append(talk)
    return {
        name: {
            "conversations": len(group),
            "self_resolution": _rate(sum(t.resolved for t in group), len(group)),
            "cart_rate": _rate(sum(t.cart_add for t in group), len(group)),
            "order_rate": _rate(sum(t.ordered for t in group), len(group)),
        }
        for name, group in sorted(groups.items())
    }


def _daily(session: Session, period: Period, talks: list[Conversation]) -> list[dict[str, Any]]:
    by_day: dict[date, list[Conversation]] = defaultdict(list)
    for talk in talks:
        by_day[talk.start.date()].append(talk)
    scores: dict[date, list[int]] = defaultdict(list)
    for score, at in session.execute(
        sa_select(col(CsatAnswer.score), col(CsatAnswer.created_at))
        .join(Customer, col(Customer.id) == col(CsatAnswer.customer_id))
        .where(
            col(CsatAnswer.created_at) >= period.since,
            col(CsatAnswer.created_at) < period.until,
            *_shopper_filter(period),
        )
    ).all():
        scores[as_utc(at).date()].append(score)
    days = []
    for day in period.dates():
        group = by_day.get(day, [])
        days.append(
            {
                "date": day.isoformat(),
                "conversations": len(group),
                "resolved": sum(t.resolved for t in group),
                "with_cart_add": sum(t.cart_add for t in group),
                "with_order": sum(t.ordered for t in group),
                "self_resolution": _rate(sum(t.resolved for t in group), len(group)),
                "csat_average": round(statistics.fmean(scores[day]), 2) if scores.get(day) else None,
            }
        )
    return days


def report(session: Session, period: Period, minutes_per_conversation: float) -> dict[str, Any]:
    """Every figure for the period, with the per-day series and the channel and language splits."""
    talks = conversations(session, period)
    by_conversation = _conversation_figures(talks, minutes_per_conversation)
    return {
        "period": {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "channel": period.channel,
            "language": period.language,
            "days": period.days,
        },
        "self_resolution": by_conversation["self_resolution"],
        "conversion": by_conversation["conversion"],
        "cart_recovery": cart_recovery(session, period),
        "aov": aov(session, period),
        "csat": csat(session, period),
        "response": response(session, period),
        "retention": retention(session, period, talks),
        "ctr": ctr(session, period),
        "efficiency": {**by_conversation["efficiency_conversations"], **agent_minutes(session, period)},
        "per_channel": _split(talks, "channel"),
        "per_language": _split(talks, "language"),
        "daily": _daily(session, period, talks),
        "definitions": DEFINITIONS,
    }


# The not-understood review: what shoppers said that the bot fell back on or handed to a person.
_MASKS = (
    (EMAIL_RE, "[email]"),
    (re.compile(r"\+?\d[\d ().-]{5,}\d"), "[number]"),  # phone numbers, order and card numbers
    (re.compile(r"#\s?\d+|\b\d{4,}\b"), "[number]"),
)
SIMILAR = 0.75  # cosine similarity of sentence vectors at which two messages are one group
REVIEW_LIMIT = 500  # the newest messages read for a review


def mask(text: str) -> str:
    """A message with e-mail addresses and long numbers (phones, orders) masked."""
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    return text


def not_understood(session: Session, period: Period) -> list[tuple[str, str]]:
    """(masked text, outcome) of the period's messages that fell back or were handed to a person,
    newest first."""
    message = MessageRecord.__table__
    conditions: list[Any] = [
        col(AnalyticsEvent.kind) == "turn",
        col(AnalyticsEvent.outcome).in_(["fallback", "handed_off"]),
        col(AnalyticsEvent.received_at) >= period.since,
        col(AnalyticsEvent.received_at) < period.until,
    ]
    if period.channel:
        conditions.append(col(AnalyticsEvent.channel) == period.channel)
    if period.language:
        conditions.append(col(AnalyticsEvent.language) == period.language)
    rows = session.execute(
        sa_select(message.c.text, col(AnalyticsEvent.outcome))
        .join(message, message.c.id == col(AnalyticsEvent.message_id))
        .where(*conditions)
        .order_by(col(AnalyticsEvent.received_at).desc())
        .limit(REVIEW_LIMIT)
    ).all()
    return [(mask(text.strip()), outcome or "") for text, outcome in rows if text and text.strip()]


def group(items: list[tuple[str, str]], vectors: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Messages in groups, the most frequent first: the same words (case aside) are one group, and
    with `vectors` (normalised sentence vectors by text) those whose meaning is close are too."""
    counts: dict[str, dict[str, Any]] = {}
    for text, outcome in items:
        key = " ".join(text.lower().split())
        entry = counts.setdefault(key, {"text": text, "fallback": 0, "handed_off": 0})
        entry[outcome if outcome in ("fallback", "handed_off") else "fallback"] += 1
    groups: list[dict[str, Any]] = []
    leaders: list[Any] = []
    for entry in sorted(counts.values(), key=lambda e: -(e["fallback"] + e["handed_off"])):
        vector = vectors.get(entry["text"]) if vectors else None
        home = None
        if vector is not None:
            home = next(
                (i for i, lead in enumerate(leaders) if lead is not None and float(lead @ vector) >= SIMILAR), None
            )
        if home is None:
            groups.append(
                {"example": entry["text"], "count": 0, "fallbacks": 0, "handoffs": 0, "texts": [], "members": []}
            )
            leaders.append(vector)
            home = len(groups) - 1
        found = groups[home]
        found["count"] += entry["fallback"] + entry["handed_off"]
        found["fallbacks"] += entry["fallback"]
        found["handoffs"] += entry["handed_off"]
        if len(found["texts"]) < 5:
            found["texts"].append(entry["text"])
        found["members"].append(entry["text"])  # every distinct text: what teaching the group takes
    ordered = sorted(groups, key=lambda g: -g["count"])
    for number, found in enumerate(ordered, 1):
        found["group"] = number
    return ordered


def shown(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups as the page and the JSON show them (up to five texts each)."""
    return [{k: v for k, v in g.items() if k != "members"} for g in groups]
