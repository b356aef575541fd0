"""The satisfaction question after conversations the bot handled alone: one in N
(`CSAT_SAMPLE_RATE`) of the conversations that ended (30 minutes without a shopper's message)
without a handoff is asked for a 1-5 rating, once, while the channel still lets us write; the
shopper's next message, if it is a rating, is stored as a CSAT answer with source "bot"."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from bot.delivery.policy import REQUESTED, Policy
from bot.delivery.proactive import Planned, queue, recipients
from bot.i18n import text_in
from bot.messages import Choice, OutboundMessage
from bot.store.database import Database
from bot.store.models import CsatAnswer, Customer, Dispatch, HandoffTicket, MessageRecord, as_utc, utcnow

log = logging.getLogger(__name__)

GAP = timedelta(minutes=30)  # the same gap as the dashboard's conversations (bot/analytics.py)
LOOKBACK = timedelta(hours=24)  # conversations that ended longer ago than this are not asked
RUN_EVERY_SECONDS = 60.0  # how often the scheduler looks for ended conversations
SOURCE = "csat"  # the Dispatch source of the question
RATING_RE = re.compile(r"(?:/rate\s*)?([1-5])")

_DISPATCH = Dispatch.__table__
_LAST_QUESTION = (
    sa_select(_DISPATCH.c.created_at)
    .where(
        _DISPATCH.c.customer_id == bindparam("customer"),
        _DISPATCH.c.source == SOURCE,
        _DISPATCH.c.status == "queued",
    )
    .order_by(_DISPATCH.c.created_at.desc())
    .limit(1)
)


def sampled(customer_id: str, start: datetime, rate: float) -> bool:
    """The same answer every time for one conversation: a hash of the customer and the
    conversation's start, as a number in [0, 1), under the rate."""
    digest = hashlib.sha256(f"{customer_id}|{as_utc(start).isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def question(language: str) -> OutboundMessage:
    """The rating question; the bot asks it of itself ("How did I do?")."""
    return OutboundMessage(
        text=text_in(language, "csat.bot"), choices=tuple(Choice("★" * n, str(n)) for n in range(1, 6))
    )


@dataclass(frozen=True)
class Ended:
    customer_id: str
    channel: str
    start: datetime
    end: datetime


def ended(session: Session, now: datetime) -> list[Ended]:
    """Each shopper's last conversation, if it ended (GAP ago) within LOOKBACK."""
    rows = session.execute(
        sa_select(col(MessageRecord.customer_id), col(MessageRecord.channel), col(MessageRecord.created_at))
        .where(
            col(MessageRecord.direction) == "in",
            col(MessageRecord.created_at) >= now - LOOKBACK - GAP * 4,
        )
        .order_by(col(MessageRecord.customer_id), col(MessageRecord.created_at))
    ).all()
    last: dict[str, Ended] = {}
    for customer_id, channel, created in rows:
        at = as_utc(created)
        talk = last.get(customer_id)
        if talk is None or at - talk.end >= GAP:
            last[customer_id] = Ended(customer_id, channel, at, at)
        else:
            last[customer_id] = Ended(customer_id, channel, talk.start, at)
    return [t for t in last.values() if now - LOOKBACK <= t.end <= now - GAP]


def _handed_off(session: Session, talk: Ended) -> bool:
    """Did a person take part (their ticket has its own rating question)?"""
    return (
        session.execute(
            sa_select(func.count())
            .select_from(HandoffTicket)
            .where(
                col(HandoffTicket.customer_id) == talk.customer_id,
                # open, or resolved during or after it (it is the shopper's last conversation)
                col(HandoffTicket.resolved_at).is_(None) | (col(HandoffTicket.resolved_at) >= talk.start),
            )
        ).scalar_one()
        > 0
    )


class CsatSampler:
    """The scheduled job (`every("csat-sample", ...)`) and the answer to its question."""

    def __init__(self, db: Database, policy: Policy, rate: float, on_queued: Callable[[], None]) -> None:
        self.db = db
        self.policy = policy
        self.rate = rate
        self.on_queued = on_queued

    async def run(self) -> int:
        """Ask the sampled conversations that ended; returns how many questions were queued."""
        if self.rate <= 0:
            return 0
        asked = await self.db.run(self.ask)
        if asked:
            self.on_queued()
        return asked

    def ask(self, session: Session, now: datetime | None = None) -> int:
        now = now or utcnow()
        asked = 0
        for talk in ended(session, now):
            if not sampled(talk.customer_id, talk.start, self.rate) or _handed_off(session, talk):
                continue
            source_id = int(talk.start.timestamp())  # with the customer: one key per conversation
            key = f"{SOURCE}:{source_id}:0:{talk.customer_id}"
            if session.execute(sa_select(_DISPATCH.c.id).where(_DISPATCH.c.key == key)).first() is not None:
                continue
            who = recipients(session, [talk.customer_id], now, talk.channel, REQUESTED).get(talk.customer_id)
            if who is None:
                continue
            verdict = self.policy.check(who, REQUESTED, False, now)
            if verdict.send and verdict.not_before is not None:
                continue  # quiet hours: never then; a later run asks if the window is still open
            language = session.get(Customer, talk.customer_id)
            plan = Planned(talk.customer_id, question(language.language if language else "en"))
            counts = queue(session, self.policy, SOURCE, source_id, 0, [plan], REQUESTED, now, talk.channel)
            asked += counts.get("queued", 0)
        if asked:
            log.info("csat questions queued", extra={"count": asked})
        return asked


def answer(session: Session, customer_id: str, text: str) -> list[OutboundMessage] | None:
    """The shopper's first message after the bot's question: a 1-5 rating is stored and thanked
    for (no normal turn); anything else is None (a normal turn, and the question lapses)."""
    asked = session.connection().execute(_LAST_QUESTION, {"customer": customer_id}).scalar()
    if asked is None:
        return None
    found = RATING_RE.fullmatch(text.strip())
    if found is None:
        return None
    since = session.execute(
        sa_select(func.count())
        .select_from(MessageRecord)
        .where(
            col(MessageRecord.customer_id) == customer_id,
            col(MessageRecord.direction) == "in",
            col(MessageRecord.created_at) > asked,
        )
    ).scalar_one()
    if since != 1:  # the question was answered, or lapsed with an earlier message
        return None
    session.add(CsatAnswer(ticket_id=None, customer_id=customer_id, score=int(found.group(1)), source="bot"))
    customer = session.get(Customer, customer_id)
    return [OutboundMessage(text=text_in(customer.language if customer else "en", "handoff.csat_thanks"))]
