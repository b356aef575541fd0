"""Human handoff: when to escalate, the ticket and its summary, routing to agents, and what
agents do with a ticket (claim, reply, note, transfer, resolve) until the bot takes over again."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import bindparam, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.conversation.linking import mask
from bot.csat import answer as bot_csat_answer
from bot.delivery.outbox import conversation_channel, queue_to_customer
from bot.delivery.policy import agent_reply_kind, window_name
from bot.handoff.hours import DAYS, StaffedHours  # noqa: F401  (re-exported)
from bot.i18n import ZH, language_of, text_in
from bot.messages import Choice, OutboundMessage
from bot.metrics import Metrics
from bot.nlu import FALLBACK, Intent
from bot.store.database import Database
from bot.store.models import (
    ORDER_NUMBER_OFFSET,
    Agent,
    Cart,
    CartItem,
    ChannelIdentity,
    CsatAnswer,
    Customer,
    FaqEntry,
    HandoffEvent,
    HandoffTicket,
    MessageRecord,
    Order,
    Product,
    Variant,
    as_utc,
    utcnow,
)

_TICKET = HandoffTicket.__table__
_ANY_TICKET = (
    sa_select(_TICKET.c.id)
    .where(_TICKET.c.customer_id == bindparam("customer"), or_(_TICKET.c.open_key.is_not(None), _TICKET.c.csat_pending))
    .limit(1)
)

log = logging.getLogger(__name__)

RULES_FILE = Path(__file__).with_name("rules.yml")
OPEN = ("queued", "assigned")
ONLINE = timedelta(minutes=2)  # an agent whose page has not polled for this long is away
CSAT_RE = re.compile(r"(?:/rate\s*)?([1-5])")
AGENT_REPLY_KEY = re.compile(r"handoff:\d+:\d+")
MAX_TEXT = 4000


class HandoffError(Exception):
    """A request about a ticket that cannot be done; `status` is the HTTP status that says why."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(HandoffError):
    status = 404


class Conflict(HandoffError):
    status = 409


# --- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    topic: str
    priority: int = 1
    keywords: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    order_over_cents: int | None = None


@dataclass(frozen=True)
class Rules:
    """What makes the bot hand over, as the retailer configured it."""

    ask_phrases: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    frustration_phrases: tuple[str, ...] = ()
    repeats: int = 3
    frustration_priority: int = 2
    fallbacks: int = 2
    topics: dict[str, str] = field(default_factory=dict)
    faq_for_topic: dict[str, str] = field(default_factory=dict)


def load_rules(path: str | Path | None = None) -> Rules:
    """Read the rules file (the bundled one by default).

    Raises:
        ValueError: the file is not a valid rules file.
    """
    data = yaml.safe_load(Path(path or RULES_FILE).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError("handoff rules must be a mapping")
    try:
        rules = tuple(
            Rule(
                str(r["name"]),
                str(r.get("topic", r["name"])),
                int(r.get("priority", 1)),
                tuple(str(k) for k in r.get("keywords", ())),
                tuple(str(i) for i in r.get("intents", ())),
                round(float(r["order_over"]) * 100) if r.get("order_over") is not None else None,
            )
            for r in data.get("rules", ())
        )
        frustration = data.get("frustration") or {}
        return Rules(
            tuple(str(p) for p in data.get("ask_phrases", ())),
            rules,
            tuple(str(p) for p in frustration.get("phrases", ())),
            int(frustration.get("repeats", 3)),
            int(frustration.get("priority", 2)),
            int(data.get("fallbacks", 2)),
            {str(k): str(v) for k, v in (data.get("topics") or {}).items()},
            {str(k): str(v) for k, v in (data.get("faq_for_topic") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"invalid handoff rules: {exc}") from exc


def contains(text: str, phrase: str) -> bool:
    """Whole words for Latin-script phrases; anywhere for Chinese, which has no spaces."""
    text, phrase = text.lower(), phrase.lower()
    if phrase.isascii():
        return re.search(rf"(?<![\w']){re.escape(phrase)}(?![\w'])", text) is not None
    return phrase in text


@dataclass(frozen=True)
class Trigger:
    """Why a conversation goes to a person."""

    reason: str  # asked | fallback | frustration | rule:<name>
    topic: str
    priority: int


SURE = 0.5  # the confidence an intent needs to open a ticket


def match(
    rules: Rules,
    text: str,
    intent: Intent,
    fallbacks: int,
    repeats: int,
    order_cents: Callable[[], int | None] = lambda: None,
) -> Trigger | None:
    """The first trigger that applies: a configured rule, a request for a person, frustration,
    or the bot unsure too often. `order_cents` is asked only when a rule needs an order's value."""
    for rule in rules.rules:
        if any(contains(text, k) for k in rule.keywords):
            return Trigger(f"rule:{rule.name}", rule.topic, rule.priority)
        if intent.name in rule.intents and intent.confidence >= SURE:  # an unsure guess opens no ticket
            if rule.order_over_cents is None:
                return Trigger(f"rule:{rule.name}", rule.topic, rule.priority)
            value = order_cents()
            if value is not None and value > rule.order_over_cents:
                return Trigger(f"rule:{rule.name}", rule.topic, rule.priority)
    if (intent.name == "human_agent" and intent.confidence >= SURE) or any(
        contains(text, p) for p in rules.ask_phrases
    ):
        return Trigger("asked", "general", 1)
    if any(contains(text, p) for p in rules.frustration_phrases) or (rules.repeats and repeats >= rules.repeats):
        return Trigger("frustration", "general", rules.frustration_priority)
    if intent.name == FALLBACK and rules.fallbacks and fallbacks >= rules.fallbacks:
        return Trigger("fallback", "general", 1)
    return None


# --- staffed hours ---------------------------------------------------------------------------

# --- who is asking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who calls the agent API: the admin, or one agent."""

    name: str
    agent_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.agent_id is None


def hash_token(token: str) -> str:
    # Agent tokens are 32 random bytes, so a plain SHA-256 is enough to keep them out of the store.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Opened:
    ticket_id: int
    created: bool
    staffed: bool
    opens: str | None  # when someone will answer, if nobody is in now


# --- the service -----------------------------------------------------------------------------


class Handoffs:
    """Tickets and agents. Methods taking a `Session` run in the caller's transaction; the
    async ones run their own."""

    def __init__(
        self,
        db: Database,
        rules: Rules,
        hours: StaffedHours,
        agent_timeout: timedelta,
        notify: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.rules = rules
        self.hours = hours
        self.agent_timeout = agent_timeout
        self.notify = notify  # wakes the outbox when messages were queued

    @classmethod
    def from_settings(
        cls,
        db: Database,
        settings: Settings,
        notify: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> Handoffs:
        return cls(
            db,
            load_rules(settings.handoff_rules),
            StaffedHours.parse(settings.handoff_hours, settings.default_timezone),
            settings.agent_timeout,
            notify,
            metrics,
        )

    # --- the bot's side ----------------------------------------------------------------------

    async def triggered(
        self, customer_id: str, text: str, intent: Intent, fallbacks: int, repeats: int
    ) -> Trigger | None:
        """Whether this turn should go to a person (see `match`)."""
        needs_order = any(intent.name in r.intents and r.order_over_cents is not None for r in self.rules.rules)
        order_value = None
        if needs_order:
            number = intent.entities.order_number
            order_value = await self.db.run(lambda s: _order_value(s, customer_id, number))
        return match(self.rules, text, intent, fallbacks, repeats, lambda: order_value)

    async def open(
        self, customer_id: str, trigger: Trigger, language: str, intents: list[str], faq_key: str | None = None
    ) -> Opened:
        """Open a ticket for the customer, or return the one already open."""

        def run(session: Session) -> Opened:
            ticket, created = self.open_ticket(session, customer_id, trigger, language, intents, faq_key)
            assert ticket.id is not None  # stored, or just flushed
            customer = session.get(Customer, customer_id)
            return Opened(ticket.id, created, *self._staffed(language, customer.timezone if customer else None))

        for attempt in range(2):
            try:
                opened = await self.db.run(run)
            except IntegrityError:  # another process opened one at the same moment: use it
                if attempt:
                    raise
                continue
            if opened.created:
                self.metrics.handoff_opened()
            return opened
        raise AssertionError("unreachable")

    def _staffed(self, language: str, zone: str | None = None) -> tuple[bool, str | None]:
        """Whether someone is in, and if not when they will be, in the shopper's zone when known."""
        now = utcnow()
        if self.hours.is_open(now):
            return True, None
        opens = self.hours.next_open(now)
        return False, self.hours.describe(opens, language, zone) if opens else None

    def open_ticket(
        self,
        session: Session,
        customer_id: str,
        trigger: Trigger,
        language: str,
        intents: list[str],
        faq_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> tuple[HandoffTicket, bool]:
        """Open a ticket in the caller's transaction, or raise the priority of the one open.
        `details`: what the agent must know that the summary cannot find in the store (a payment
        to check), added to the summary, also of a ticket already open."""
        existing = session.exec(select(HandoffTicket).where(HandoffTicket.open_key == customer_id)).first()
        if existing is not None:
            existing.priority = max(existing.priority, trigger.priority)
            if details:
                existing.summary = {**(existing.summary or {}), **details}
            return existing, False
        topic = trigger.topic
        if topic == "general":
            topic = next((self.rules.topics[i] for i in reversed(intents) if i in self.rules.topics), "general")
        # A rule's topic decides the policy shown; otherwise the FAQ entry the shopper last asked about.
        faq_key = (faq_key if trigger.topic == "general" else None) or self.rules.faq_for_topic.get(topic)
        now = utcnow()
        ticket = HandoffTicket(
            customer_id=customer_id,
            open_key=customer_id,
            priority=trigger.priority,
            topic=topic,
            language=language,
            trigger=trigger.reason,
            created_at=now,
            last_customer_activity_at=now,
            awaiting_agent_since=now,
        )
        ticket.summary = {
            **build_summary(session, customer_id, replace(trigger, topic=topic), intents, faq_key, language),
            **(details or {}),
        }
        session.add(ticket)
        session.flush()
        assert ticket.id is not None  # the flush gave it its id
        _event(session, ticket.id, "opened", "bot", None, {"trigger": trigger.reason, "topic": topic})
        log.info(
            "handoff ticket opened",
            extra={"ticket": ticket.id, "trigger": trigger.reason, "topic": topic, "priority": trigger.priority},
        )
        self.route(session)
        return ticket, True

    def intercept(self, session: Session, customer_id: str, text: str) -> list[OutboundMessage] | None:
        """The engine asks this before each turn. While a ticket is open the bot stays silent
        (an empty list); the answer to the satisfaction question (after a ticket, or the bot's
        own, bot/csat.py) is recorded and thanked for;
        None lets the bot answer as usual."""
        if session.connection().execute(_ANY_TICKET, {"customer": customer_id}).first() is None:
            return bot_csat_answer(session, customer_id, text)  # a rating for the bot, or None
        ticket = session.exec(
            select(HandoffTicket)
            .where(
                HandoffTicket.customer_id == customer_id,
                or_(col(HandoffTicket.open_key).is_not(None), col(HandoffTicket.csat_pending)),
            )
            .order_by(col(HandoffTicket.id).desc())
            .limit(1)
        ).first()
        if ticket is None:
            return bot_csat_answer(session, customer_id, text)
        now = utcnow()
        if ticket.status in OPEN:
            ticket.last_customer_activity_at = now
            if ticket.awaiting_agent_since is None:
                ticket.awaiting_agent_since = now
            return []
        ticket.csat_pending = False  # asked once: any other answer moves on
        found = CSAT_RE.fullmatch(text.strip())
        if found is None:
            return None
        score = int(found.group(1))
        assert ticket.id is not None  # a stored ticket
        session.add(CsatAnswer(ticket_id=ticket.id, customer_id=customer_id, agent_id=ticket.agent_id, score=score))
        _event(session, ticket.id, "csat", "shopper", None, {"score": score})
        return [OutboundMessage(text=text_in(_language(session, customer_id), "handoff.csat_thanks"))]

    # --- agents ------------------------------------------------------------------------------

    def authenticate(self, session: Session, token: str) -> Actor | None:
        agent = session.exec(select(Agent).where(Agent.token_hash == hash_token(token), Agent.active)).first()
        if agent is None:
            return None
        agent.last_seen_at = utcnow()
        return Actor(agent.name, agent.id)

    @staticmethod
    def create_agent(
        session: Session, name: str, languages: list[str], topics: list[str], capacity: int
    ) -> tuple[Agent, str]:
        """A new agent and their token, which is shown this once."""
        token = secrets.token_urlsafe(32)
        agent = Agent(name=name, token_hash=hash_token(token), languages=languages, topics=topics, capacity=capacity)
        session.add(agent)
        session.flush()
        return agent, token

    @staticmethod
    def set_available(session: Session, actor: Actor, available: bool) -> None:
        agent = session.get(Agent, actor.agent_id)
        if agent is None:
            raise NotFound("no such agent")
        agent.available, agent.last_seen_at = available, utcnow()

    def route(self, session: Session, now: datetime | None = None) -> int:
        """Give queued tickets, by priority then age, to the most suitable free agent: one who is
        available, online, under capacity and speaks the language; topic skill and a light load
        count next. A ticket nobody suits waits. Returns how many were assigned."""
        now = now or utcnow()
        agents = [
            a
            for a in session.exec(select(Agent).where(Agent.active, Agent.available)).all()
            if a.last_seen_at and as_utc(a.last_seen_at) > now - ONLINE
        ]
        if not agents:
            return 0
        load = dict(
            session.exec(
                select(HandoffTicket.agent_id, func.count())
                .where(HandoffTicket.status == "assigned")
                .group_by(col(HandoffTicket.agent_id))
            ).all()
        )
        assigned = 0
        for ticket in _queue(session):
            fits = [
                a
                for a in agents
                if load.get(a.id, 0) < a.capacity and (not a.languages or ticket.language in a.languages)
            ]
            if not fits:
                continue
            best = max(fits, key=lambda a: (ticket.topic in a.topics, not a.topics, -load.get(a.id, 0) / a.capacity))
            assert ticket.id is not None  # a stored ticket
            if self._assign(session, ticket.id, Actor(best.name, best.id), now, "routed"):
                load[best.id] = load.get(best.id, 0) + 1
                assigned += 1
        return assigned

    @staticmethod
    def _assign(session: Session, ticket_id: int, actor: Actor, now: datetime, kind: str) -> bool:
        # Conditional update: of two agents claiming at once, exactly one changes the row.
        changed = session.exec(
            update(HandoffTicket)
            .where(col(HandoffTicket.id) == ticket_id, col(HandoffTicket.status) == "queued")
            .values(
                status="assigned",
                agent_id=actor.agent_id,
                agent_name=actor.name,
                assigned_at=now,
                last_agent_activity_at=now,
            )
        ).rowcount
        if changed == 1:
            _event(session, ticket_id, kind, actor.name)
        return changed == 1

    def claim(self, session: Session, ticket_id: int, actor: Actor) -> HandoffTicket:
        """Raises: NotFound; Conflict if someone else has it, it is resolved, or the agent is full."""
        ticket = _ticket(session, ticket_id)
        if _holds(ticket, actor):
            return ticket  # already theirs
        if actor.agent_id is not None:
            agent = session.get(Agent, actor.agent_id)
            if agent is None:
                raise NotFound("no such agent")
            if _load(session, actor.agent_id) >= agent.capacity:
                raise Conflict(f"you already have {agent.capacity} open tickets (your capacity)")
        if not self._assign(session, ticket_id, actor, utcnow(), "claimed"):
            session.refresh(ticket)
            if _holds(ticket, actor):
                return ticket  # their own claim, sent twice at once
            if ticket.status == "resolved":
                raise Conflict("this ticket is resolved")
            raise Conflict(f"this ticket was claimed by {ticket.agent_name}")
        session.refresh(ticket)
        log.info("handoff ticket claimed", extra={"ticket": ticket_id, "agent_id": actor.agent_id})
        return ticket

    def _own(self, session: Session, ticket_id: int, actor: Actor) -> HandoffTicket:
        """The ticket, if this actor may act on it now (for update; see `claim` for the rules)."""
        ticket = _ticket(session, ticket_id, lock=not self.db.is_sqlite)
        if ticket.status == "resolved":
            raise Conflict("this ticket is resolved; the shopper is back with the bot")
        if ticket.status == "queued":
            raise Conflict("claim this ticket before answering it")
        if not actor.is_admin and ticket.agent_id != actor.agent_id:
            raise Conflict(f"this ticket is assigned to {ticket.agent_name}")
        return ticket

    def reply(self, session: Session, ticket_id: int, actor: Actor, text: str) -> MessageRecord:
        """Queue the agent's message to the shopper on the channel they last used.

        Raises: NotFound; Conflict (not theirs, resolved, or outside the platform's window);
        HandoffError for an empty or over-long text.
        """
        text = _clean(text)
        ticket = self._own(session, ticket_id, actor)
        customer = session.get(Customer, ticket.customer_id)
        assert customer is not None  # a ticket's customer is a foreign key
        channel = conversation_channel(customer)
        kind = _reply_kind(session, ticket.customer_id, channel, utcnow())
        ticket.agent_replies += 1
        row = queue_to_customer(
            session,
            ticket.customer_id,
            f"handoff:{ticket.id}:{ticket.agent_replies}",
            OutboundMessage(text=text, kind=kind),
            channel=channel,
        )
        now = utcnow()
        ticket.last_agent_activity_at, ticket.awaiting_agent_since = now, None
        _event(session, ticket_id, "reply", actor.name, text, {"channel": channel, "kind": kind})
        session.flush()
        assert row is not None  # the key is new: agent_replies went up above
        return row

    def note(self, session: Session, ticket_id: int, actor: Actor, text: str) -> HandoffEvent:
        """An internal note, never sent to the shopper. Raises: NotFound, HandoffError."""
        text = _clean(text)
        _ticket(session, ticket_id)
        return _event(session, ticket_id, "note", actor.name, text)

    def transfer(
        self, session: Session, ticket_id: int, actor: Actor, agent_id: int | None, topic: str | None = None
    ) -> HandoffTicket:
        """To another agent (who must be active and under capacity), or back to the queue.

        Raises: NotFound (ticket or agent), Conflict.
        """
        ticket = self._own(session, ticket_id, actor)
        now = utcnow()
        if topic:
            ticket.topic = topic[:40]
        if agent_id is None:
            ticket.status, ticket.agent_id, ticket.agent_name, ticket.assigned_at = "queued", None, None, None
            _event(session, ticket_id, "transfer", actor.name, None, {"to": "queue", "topic": ticket.topic})
            session.flush()
            self.route(session, now)
        else:
            agent = session.get(Agent, agent_id)
            if agent is None or not agent.active:
                raise NotFound("no such active agent")
            if _load(session, agent_id) >= agent.capacity:
                raise Conflict(f"{agent.name} has no free capacity")
            ticket.agent_id, ticket.agent_name, ticket.assigned_at = agent.id, agent.name, now
            ticket.last_agent_activity_at = now
            _event(session, ticket_id, "transfer", actor.name, None, {"to": agent.name, "agent_id": agent.id})
        session.flush()
        session.refresh(ticket)
        return ticket

    def resolve(self, session: Session, ticket_id: int, actor: Actor) -> HandoffTicket:
        """Close the ticket; the bot takes over again, says so and asks for a 1-5 rating.

        Raises: NotFound, Conflict (already resolved, or someone else's).
        """
        ticket = _ticket(session, ticket_id, lock=not self.db.is_sqlite)
        if ticket.status == "resolved":
            raise Conflict("this ticket is already resolved")
        if ticket.status == "assigned" and not actor.is_admin and ticket.agent_id != actor.agent_id:
            raise Conflict(f"this ticket is assigned to {ticket.agent_name}")
        ticket.status, ticket.open_key, ticket.resolved_at = "resolved", None, utcnow()
        ticket.csat_pending = True
        if ticket.agent_name is None:
            ticket.agent_id, ticket.agent_name = actor.agent_id, actor.name
        _event(session, ticket_id, "resolved", actor.name)
        language = _language(session, ticket.customer_id)
        channel, kind = _conversation_channel(session, ticket.customer_id)
        queue_to_customer(
            session,
            ticket.customer_id,
            f"handoff:{ticket.id}:resolved",
            OutboundMessage(text=text_in(language, "handoff.resolved"), kind=kind),
            channel=channel,
        )
        queue_to_customer(
            session,
            ticket.customer_id,
            f"handoff:{ticket.id}:csat",
            replace(self.csat_question(language), kind=kind),
            channel=channel,
        )
        session.flush()
        log.info("handoff ticket resolved", extra={"ticket": ticket.id})
        return ticket

    def csat_question(self, language: str) -> OutboundMessage:
        # Choice n is the nth option, so "3" typed on a numbered channel means 3 stars.
        return OutboundMessage(
            text=text_in(language, "handoff.csat"), choices=tuple(Choice("★" * n, str(n)) for n in range(1, 6))
        )

    def sweep(self, session: Session, now: datetime | None = None) -> int:
        """Put back in the queue the tickets whose agent has let the shopper wait longer than
        the timeout (the shopper is told, the agent is marked away), then route. Returns how
        many went back."""
        now = now or utcnow()
        requeued = 0
        for ticket in session.exec(
            select(HandoffTicket).where(
                HandoffTicket.status == "assigned", col(HandoffTicket.awaiting_agent_since).is_not(None)
            )
        ).all():
            assert ticket.id is not None and ticket.awaiting_agent_since is not None  # stored; and the query's filter
            since = max(as_utc(ticket.awaiting_agent_since), as_utc(ticket.assigned_at or ticket.awaiting_agent_since))
            if now - since < self.agent_timeout:
                continue
            agent_id, agent_name = ticket.agent_id, ticket.agent_name  # the update below clears them
            changed = session.exec(
                update(HandoffTicket)
                .where(
                    col(HandoffTicket.id) == ticket.id,
                    col(HandoffTicket.status) == "assigned",
                    col(HandoffTicket.agent_id).is_(None)
                    if agent_id is None
                    else col(HandoffTicket.agent_id) == agent_id,
                )
                .values(status="queued", agent_id=None, agent_name=None, assigned_at=None)
            ).rowcount
            if changed != 1:
                continue
            if agent_id is not None:
                session.execute(update(Agent).where(col(Agent.id) == agent_id).values(available=False))
            count = session.exec(
                select(func.count())
                .select_from(HandoffEvent)
                .where(HandoffEvent.ticket_id == ticket.id, HandoffEvent.kind == "requeued")
            ).one()
            _event(session, ticket.id, "requeued", "bot", None, {"from": agent_name})
            channel, kind = _conversation_channel(session, ticket.customer_id)
            queue_to_customer(
                session,
                ticket.customer_id,
                f"handoff:{ticket.id}:requeued:{count + 1}",
                OutboundMessage(text=text_in(_language(session, ticket.customer_id), "handoff.requeued"), kind=kind),
                channel=channel,
            )
            log.info("handoff ticket requeued: agent silent", extra={"ticket": ticket.id})
            requeued += 1
        session.flush()
        self.route(session, now)
        return requeued

    # --- reading -----------------------------------------------------------------------------

    @staticmethod
    def listing(session: Session, status: str, actor: Actor) -> list[dict[str, Any]]:
        """Tickets for the console: the queue by priority then age; `mine` = the caller's open ones."""
        if status == "queued":
            tickets = _queue(session)
        else:
            query = select(HandoffTicket)
            if status == "open":
                query = query.where(col(HandoffTicket.status).in_(OPEN))
            elif status == "mine":
                mine = (
                    col(HandoffTicket.agent_id).is_(None)
                    if actor.is_admin
                    else col(HandoffTicket.agent_id) == actor.agent_id
                )
                query = query.where(HandoffTicket.status == "assigned", HandoffTicket.agent_name == actor.name, mine)
            else:
                query = query.where(HandoffTicket.status == status)
            order = (
                (col(HandoffTicket.priority).desc(), col(HandoffTicket.created_at))
                if status != "resolved"
                else (col(HandoffTicket.resolved_at).desc(),)
            )
            tickets = list(session.exec(query.order_by(*order).limit(200)).all())
        return [ticket_view(t) for t in tickets]

    @staticmethod
    def detail(session: Session, ticket_id: int, after: int = 0) -> dict[str, Any]:
        """The ticket with its summary, events, rating and the customer's whole transcript
        (every channel), or the part after message id `after`. Raises: NotFound."""
        ticket = _ticket(session, ticket_id)
        rows = session.exec(
            select(MessageRecord)
            .where(MessageRecord.customer_id == ticket.customer_id, col(MessageRecord.id) > after)
            .order_by(col(MessageRecord.id).desc())
            .limit(500)
        ).all()
        events = session.exec(
            select(HandoffEvent).where(HandoffEvent.ticket_id == ticket.id).order_by(col(HandoffEvent.id))
        ).all()
        csat = session.exec(select(CsatAnswer.score).where(CsatAnswer.ticket_id == ticket.id)).first()
        return {
            **ticket_view(ticket),
            "summary": ticket.summary,
            "csat": csat,
            "events": [
                {"id": e.id, "kind": e.kind, "actor": e.actor, "text": e.text, "data": e.data, "at": _iso(e.created_at)}
                for e in events
            ],
            "transcript": [_transcript_entry(r) for r in reversed(rows)],
        }

    @staticmethod
    def agents(session: Session) -> list[dict[str, Any]]:
        rows = session.exec(select(Agent).order_by(col(Agent.id))).all()
        return [agent_view(a, _load(session, a.id)) for a in rows if a.id is not None]  # stored: all have ids


# --- helpers ---------------------------------------------------------------------------------


def _event(
    session: Session, ticket_id: int, kind: str, actor: str, text: str | None = None, data: dict[str, Any] | None = None
) -> HandoffEvent:
    event = HandoffEvent(ticket_id=ticket_id, kind=kind, actor=actor, text=text, data=data)
    session.add(event)
    return event


def _ticket(session: Session, ticket_id: int, lock: bool = False) -> HandoffTicket:
    query = select(HandoffTicket).where(HandoffTicket.id == ticket_id).execution_options(populate_existing=True)
    ticket = session.exec(query.with_for_update() if lock else query).first()
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


def _holds(ticket: HandoffTicket, actor: Actor) -> bool:
    return ticket.status == "assigned" and ticket.agent_id == actor.agent_id and ticket.agent_name == actor.name


def _queue(session: Session) -> list[HandoffTicket]:
    return list(
        session.exec(
            select(HandoffTicket)
            .where(HandoffTicket.status == "queued")
            .order_by(col(HandoffTicket.priority).desc(), col(HandoffTicket.created_at), col(HandoffTicket.id))
            .limit(200)
        ).all()
    )


def _load(session: Session, agent_id: int) -> int:
    return session.exec(
        select(func.count())
        .select_from(HandoffTicket)
        .where(HandoffTicket.agent_id == agent_id, HandoffTicket.status == "assigned")
    ).one()


def _language(session: Session, customer_id: str) -> str:
    customer = session.get(Customer, customer_id)
    return customer.language if customer is not None else "en"


def _clean(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise HandoffError("text must be a non-empty string")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise HandoffError(f"text must be at most {MAX_TEXT} characters, without NUL")
    return text.strip()


def _conversation_channel(session: Session, customer_id: str) -> tuple[str, str]:
    """Where the handed-off conversation is going on (the channel used last), and the kind of
    message the shop may send there now."""
    customer = session.get(Customer, customer_id)
    channel = conversation_channel(customer)
    return channel, _reply_kind(session, customer_id, channel, utcnow(), strict=False)


def _reply_kind(session: Session, customer_id: str, channel: str, now: datetime, strict: bool = True) -> str:
    """What a person's message may be on the shopper's channel (`policy.agent_reply_kind`).

    Raises: Conflict (when `strict`) if the platform allows no reply from us now.
    """
    last = session.exec(
        select(func.max(MessageRecord.created_at)).where(
            MessageRecord.customer_id == customer_id, MessageRecord.channel == channel, MessageRecord.direction == "in"
        )
    ).one()
    kind = agent_reply_kind(channel, now - as_utc(last) if last else None)
    if kind is not None:
        return kind
    if strict:
        raise Conflict(
            f"the shopper's last {channel} message is outside the {window_name(channel)} window; "
            "they must write again before a reply can reach them"
        )
    return "reply"


def _order_value(session: Session, customer_id: str, number: int | None) -> int | None:
    query = select(Order.total_cents).where(Order.customer_id == customer_id)
    if number is not None:
        query = query.where(Order.id == number - ORDER_NUMBER_OFFSET)
    return session.exec(query.order_by(col(Order.id).desc()).limit(1)).first()


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None


def build_summary(
    session: Session, customer_id: str, trigger: Trigger, intents: list[str], faq_key: str | None, language: str
) -> dict[str, Any]:
    """What the agent needs before reading the transcript: who, what they want, what the bot
    said, and the policy that applies."""
    customer = session.get(Customer, customer_id)
    identities = session.exec(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id)).all()
    used = session.exec(select(MessageRecord.channel).where(MessageRecord.customer_id == customer_id).distinct()).all()
    orders = session.exec(
        select(Order).where(Order.customer_id == customer_id).order_by(col(Order.id).desc()).limit(5)
    ).all()
    lines = session.exec(
        select(CartItem.quantity, Variant.size, Variant.colour, Product.name)
        .join(Cart, col(Cart.id) == CartItem.cart_id)
        .join(Variant, col(Variant.sku) == CartItem.variant_sku)
        .join(Product, col(Product.sku) == Variant.product_sku)
        .where(Cart.customer_id == customer_id, Cart.status == "open")
    ).all()
    recent = list(
        reversed(
            session.exec(
                select(MessageRecord)
                .where(MessageRecord.customer_id == customer_id)
                .order_by(col(MessageRecord.id).desc())
                .limit(12)
            ).all()
        )
    )
    faq = session.get(FaqEntry, faq_key) if faq_key else None
    zh = language_of(language) == ZH
    return {
        "customer": {
            "name": customer.display_name if customer else None,
            "language": language,
            "channels": sorted(set(used)),
            "addresses": [{"channel": i.channel, "address": mask(i.address)} for i in identities],
            "last_channel": customer.last_channel if customer else None,
        },
        "orders": [
            {"number": o.number, "status": o.status, "total_cents": o.total_cents, "created_at": _iso(o.created_at)}
            for o in orders
        ],
        "cart": [
            {"name": name, "size": size, "colour": colour, "quantity": quantity}
            for quantity, size, colour, name in lines
        ],
        "reason": trigger.reason,
        "topic": trigger.topic,
        "recent_intents": intents[-5:],
        "last_messages": [{"channel": m.channel, "text": (m.text or "")[:500]} for m in recent if m.direction == "in"][
            -6:
        ],
        "bot_answers": [(m.text or "")[:500] for m in recent if m.direction == "out" and m.text][-4:],
        "faq": {
            "key": faq.key,
            "question": faq.question_zh if zh and faq.question_zh else faq.question,
            "answer": faq.answer_zh if zh and faq.answer_zh else faq.answer,
        }
        if faq
        else None,
    }


def ticket_view(ticket: HandoffTicket) -> dict[str, Any]:
    summary = ticket.summary or {}
    last = (summary.get("last_messages") or [{}])[-1].get("text")
    return {
        "id": ticket.id,
        "status": ticket.status,
        "priority": ticket.priority,
        "topic": ticket.topic,
        "language": ticket.language,
        "trigger": ticket.trigger,
        "agent_id": ticket.agent_id,
        "agent_name": ticket.agent_name,
        "created_at": _iso(ticket.created_at),
        "assigned_at": _iso(ticket.assigned_at),
        "resolved_at": _iso(ticket.resolved_at),
        "last_agent_activity_at": _iso(ticket.last_agent_activity_at),
        "last_customer_activity_at": _iso(ticket.last_customer_activity_at),
        "awaiting_agent_since": _iso(ticket.awaiting_agent_since),
        "customer": (summary.get("customer") or {}).get("name"),
        "channel": (summary.get("customer") or {}).get("last_channel"),
        "headline": last,
    }


def agent_problem(name: Any, languages: Any, topics: Any, capacity: Any) -> str | None:
    """What is wrong with a new agent's details (from the API or the command line), or None."""
    if not isinstance(name, str) or not name.strip() or len(name) > 80 or name.strip().lower() == "admin":
        return "name must be 1-80 characters (and not 'admin')"
    if type(capacity) is not int or not 1 <= capacity <= 50:
        return "capacity must be a whole number from 1 to 50"
    for value in (languages, topics):
        if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 40 for v in value):
            return "languages and topics must be lists of short strings"
    return None


def agent_view(agent: Agent, load: int) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "languages": agent.languages,
        "topics": agent.topics,
        "capacity": agent.capacity,
        "active": agent.active,
        "available": agent.available,
        "open_tickets": load,
        "last_seen_at": _iso(agent.last_seen_at),
    }


def _transcript_entry(row: MessageRecord) -> dict[str, Any]:
    if row.direction == "in":
        author = "shopper"
    elif row.idempotency_key and AGENT_REPLY_KEY.fullmatch(row.idempotency_key):
        author = "agent"
    else:
        author = "bot"
    choices = [c.get("title") for c in (row.payload or {}).get("choices", ())] if row.direction == "out" else []
    return {
        "id": row.id,
        "channel": row.channel,
        "direction": row.direction,
        "author": author,
        "text": row.text,
        "choices": choices,
        "status": row.status,
        "at": _iso(row.created_at),
    }
