"""The turn pipeline: persist inbound -> resolve customer -> one turn at a time per customer ->
botbuilder dialogs -> replies recorded, with our `BotAdapter` underneath."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import uuid4

from botbuilder.core import BotAdapter, BotState, TurnContext
from botbuilder.core.bot_state import CachedBotState
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ResourceResponse,
)
from sqlalchemy import ColumnDefault, bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.channel import profile
from bot.conversation import identity, linking, verification
from bot.conversation.sender_limit import SenderLimit, Verdict
from bot.conversation.turn import EVENTS_KEY, FELL_BACK, RESUME, TURN_INFO_KEY, TurnInfo, command, parse_command
from bot.messages import Choice, InboundMessage, OutboundMessage, numbered_options, to_outbound
from bot.metrics import Metrics
from bot.nlu import CJK_RE, EMAIL_RE, FALLBACK, Intent, Recognizer, detect_language, normalise
from bot.store.database import Database, connection_lost
from bot.store.models import AnalyticsEvent, Customer, LinkToken, MessageRecord, as_utc, utcnow
from bot.store.storage import ETagConflict, SqlStorage, encode_document

log = logging.getLogger(__name__)
T = TypeVar("T")

# The statements every turn runs, built once (see `identity.resolve_id`).
_MESSAGE = MessageRecord.__table__
_FIND_INBOUND = sa_select(
    _MESSAGE.c.id,
    _MESSAGE.c.customer_id,
    _MESSAGE.c.channel,
    _MESSAGE.c.address,
    _MESSAGE.c.text,
    _MESSAGE.c.status,
).where(
    _MESSAGE.c.channel == bindparam("channel_"),
    _MESSAGE.c.provider_message_id == bindparam("provider_id"),
    _MESSAGE.c.direction == "in",
)
_INSERT_MESSAGE = insert(_MESSAGE).returning(_MESSAGE.c.id)
# The model's defaults, for the columns an insert does not set itself (a Core insert fills none).
_MESSAGE_DEFAULTS = {
    c.name: c.default.arg if isinstance(c.default, ColumnDefault) and c.default.is_scalar else None
    for c in _MESSAGE.columns
    if c.name not in ("id", "customer_id", "channel", "direction", "created_at")
}
_STATUS = sa_select(_MESSAGE.c.status).where(_MESSAGE.c.id == bindparam("message"))
_MARK_PROCESSED = (
    update(_MESSAGE)
    .where(_MESSAGE.c.id == bindparam("message"), _MESSAGE.c.status != "processed")
    .values(status="processed")
)
_CUSTOMER = Customer.__table__
# A turn's analytics events, inserted with its replies in one statement.
_INSERT_EVENTS = insert(AnalyticsEvent.__table__)
_CUSTOMER_FACTS = sa_select(
    _CUSTOMER.c.id, _CUSTOMER.c.language, _CUSTOMER.c.shipping_address, _CUSTOMER.c.display_name, _CUSTOMER.c.created_at
).where(_CUSTOMER.c.id == bindparam("customer"))
_LANGUAGE = sa_select(_CUSTOMER.c.language).where(_CUSTOMER.c.id == bindparam("customer"))
# An earlier message from this shopper on this channel: none means this is their first contact here.
_EARLIER_HERE = (
    sa_select(_MESSAGE.c.id)
    .where(
        _MESSAGE.c.customer_id == bindparam("customer"),
        _MESSAGE.c.channel == bindparam("channel_"),
        _MESSAGE.c.direction == "in",
        _MESSAGE.c.id < bindparam("message"),
    )
    .limit(1)
)
REPLIES_KEY = "shop.replies"
RETURNING_AFTER = timedelta(hours=1)  # a shopper first seen longer ago than this is welcomed back
RESUME_COMMAND = command(RESUME)
MAX_TURN_ATTEMPTS = 4


class StoredState(CachedBotState):
    """A turn's copy of a state, remembered as the text it was stored as. botbuilder's own copy
    tells a change by flattening the state three times a turn; this one encodes it once, and
    that encoding is what gets written."""

    def __init__(self, state: dict | None, stored: str | None) -> None:
        self.state = state if state is not None else {}
        self.hash = stored if stored is not None else encode_document(self.state)

    @property
    def is_changed(self) -> bool:
        return encode_document(self.state) != self.hash


class CustomerConversationState(BotState):
    """Conversation (dialog) state keyed by customer, so it follows the shopper across channels."""

    def __init__(self, storage: SqlStorage) -> None:
        super().__init__(storage, "CustomerConversationState")
        self._sql = storage

    def get_storage_key(self, turn_context: TurnContext) -> str:
        return f"conversation/{turn_context.activity.conversation.id}"

    async def load(self, turn_context: TurnContext, force: bool = False) -> None:
        cached = self.get_cached_state(turn_context)
        if force or not cached or not cached.state:
            key = self.get_storage_key(turn_context)
            value = (await self._sql.read([key])).get(key)
            stored = self._sql.stored_text(key) if value is not None else None
            turn_context.turn_state[self._context_service_key] = StoredState(value, stored)

    async def save_changes(self, turn_context: TurnContext, force: bool = False) -> None:
        cached = self.get_cached_state(turn_context)
        if cached is None:
            return
        encoded = encode_document(cached.state)
        if force or encoded != cached.hash:
            await self._sql.write_encoded(self.get_storage_key(turn_context), cached.state, encoded)
            cached.hash = encoded


class ShopAdapter(BotAdapter):
    """Runs turns in-process; replies are collected on the turn and recorded by the engine.

    Channels never receive a send from here directly: a reply becomes a durable message record
    first, so a failed turn (for example an eTag conflict that is retried) sends nothing.
    """

    async def send_activities(self, context: TurnContext, activities: list[Activity]) -> list[ResourceResponse]:
        replies = context.turn_state.setdefault(REPLIES_KEY, [])
        responses = []
        for activity in activities:
            if activity.type == ActivityTypes.message:
                replies.append(to_outbound(activity))
            responses.append(ResourceResponse(id=uuid4().hex))
        return responses

    async def update_activity(self, context: TurnContext, activity: Activity):
        raise NotImplementedError("messages cannot be edited once sent")

    async def delete_activity(self, context: TurnContext, reference):
        raise NotImplementedError("messages cannot be deleted once sent")


@dataclass(frozen=True)
class Received:
    """An inbound message once stored."""

    message_id: int
    customer_id: str
    channel: str
    address: str
    text: str
    duplicate: bool
    processed: bool
    ref: str | None = None  # a referral parameter (Messenger m.me links) that came with it
    stored_at: float | None = None  # time.monotonic() when stored (or found, for a retry): the turn's latency
    received_at: datetime | None = None  # when it arrived: the platform's window for replies runs from here
    stored_on: datetime | None = None  # the wall-clock time it was stored (or found), for the dashboard


class HandoffGate(Protocol):
    def intercept(self, session: Session, customer_id: str, text: str) -> list[OutboundMessage] | None:
        """Replies instead of the bot's (empty while a person has the conversation), or None."""


class CustomerLocks:
    """One turn at a time per customer: an asyncio lock in this process (dropped when nobody
    holds or waits for it) and, on PostgreSQL, an advisory lock across processes."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def __call__(self, customer_id: str, fn: Callable[[], Awaitable[T]]) -> T:
        lock, users = self._locks.get(customer_id, (asyncio.Lock(), 0))
        self._locks[customer_id] = (lock, users + 1)
        try:
            async with lock, self._db.exclusive(f"customer:{customer_id}"):
                return await fn()
        finally:
            lock, users = self._locks[customer_id]
            if users <= 1:
                del self._locks[customer_id]
            else:
                self._locks[customer_id] = (lock, users - 1)

    async def many(self, customer_ids: list[str], fn: Callable[[], Awaitable[T]]) -> T:
        """Hold several customers' locks, always taken in the same order."""
        if not customer_ids:
            return await fn()
        first, *rest = sorted(set(customer_ids))
        return await self(first, lambda: self.many(rest, fn))


class Engine:
    """Owns the pipeline from a parsed inbound message to recorded replies."""

    def __init__(
        self,
        db: Database,
        recognizer: Recognizer,
        bot_turn: Callable[[TurnContext], Awaitable],
        storage: SqlStorage,
        states: list[BotState],
        max_chars: int = 4000,
        numbered_channels: frozenset[str] = frozenset(),
        handoff: HandoffGate | None = None,
        default_timezone: str = "UTC",
        sender_limit: SenderLimit | None = None,
        sorry: Callable[[str], str] = lambda language: "Sorry, something went wrong on our side. Please try again.",
        disclosure: Callable[[str], str] | None = None,
        metrics: Metrics | None = None,
        read_ahead: Mapping[str, Callable[[Session, str], Any]] | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.recognizer = recognizer
        self.adapter = ShopAdapter()
        self._bot_turn = bot_turn
        self._storage = storage
        self._states = states
        self._locks = CustomerLocks(db)
        self._max_chars = max_chars
        self._numbered = numbered_channels
        self._handoff = handoff
        self._zone = default_timezone  # times in link questions, for shoppers whose own zone is unknown
        self._sender_limit = sender_limit
        self._sorry = sorry  # the apology for a turn that could not finish, in a language
        # That the shopper is talking to a bot, in a language: said once, at first contact on a channel.
        self._disclosure = disclosure
        # What the dialogs would each read in a transaction of their own (the open cart), read in
        # the turn's read transaction instead: name -> reader(session, customer_id).
        self._read_ahead = dict(read_ahead or {})

    async def receive(self, msg: InboundMessage) -> Received:
        """Store an inbound message and resolve its customer; a provider retry is recognised."""

        def store(session: Session) -> Received:
            connection = session.connection()
            existing = connection.execute(
                _FIND_INBOUND, {"channel_": msg.channel, "provider_id": msg.provider_message_id}
            ).first()
            if existing is not None:
                return Received(
                    existing.id,
                    existing.customer_id,
                    existing.channel,
                    existing.address or msg.address,
                    existing.text or "",
                    True,
                    existing.status == "processed",
                    stored_at=time.monotonic(),
                    stored_on=utcnow(),
                )
            customer_id = identity.resolve_id(session, msg.channel, msg.address, msg.profile_name, msg.aliases)
            media = [{"url": m.url, "content_type": m.content_type} for m in msg.media]
            payload = {"media": media, **msg.extra} if (media or msg.extra) else None
            text = msg.text[: self._max_chars]
            arrived = as_utc(msg.received_at) if msg.received_at else utcnow()
            message_id = connection.execute(
                _INSERT_MESSAGE,
                {
                    **_MESSAGE_DEFAULTS,
                    "customer_id": customer_id,
                    "channel": msg.channel,
                    "direction": "in",
                    "text": text,
                    "payload": payload,
                    "provider_message_id": msg.provider_message_id,
                    "address": msg.address,
                    "created_at": arrived,
                },
            ).scalar_one()
            return Received(
                message_id,
                customer_id,
                msg.channel,
                msg.address,
                text,
                False,
                False,
                msg.extra.get("ref"),
                time.monotonic(),
                arrived,
                utcnow(),
            )

        for attempt in range(3):
            try:
                # The provider waits for this answer: a store that does not give it in time is a 503.
                return await self.db.run(store, urgent=True, deadline=self.db.timeout)
            except IntegrityError:  # a concurrent first message created the same row
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def run_turn(
        self, received: Received, reply_status: str = "pending", slots: asyncio.Semaphore | None = None
    ) -> list[MessageRecord]:
        """Run the dialog turn for a stored message (once) and record its replies.

        `reply_status` is "delivered" when the caller hands the replies over itself (web chat).
        `slots` bounds how many turns run at once; a turn takes a slot only once it holds its
        customer's lock, so a shopper's messages waiting for each other hold no slot.
        """
        if received.duplicate and received.processed:
            return await self.replies_to(received.message_id)
        try:
            return await self._run_turn(received, reply_status, slots)
        except Exception as exc:
            if not connection_lost(exc):
                raise
            # The database dropped our connection (a restart, a failover): the next transaction
            # connects afresh. A turn commits in one transaction and marks its message processed,
            # so running it again either does it once or finds it done.
            log.warning("turn lost its database connection; running it again", extra={"record_id": received.message_id})
            return await self._run_turn(received, reply_status, slots)

    async def _run_turn(
        self, received: Received, reply_status: str, slots: asyncio.Semaphore | None
    ) -> list[MessageRecord]:
        # A stored message whose turn failed runs again when the provider retries it.
        attempt = linking.find_token(received.text, {"ref": received.ref} if received.ref else None)
        if attempt is not None and attempt[0] == "code":
            # Six digits are the contact code this shopper was sent, when one waits: the dialog's.
            if await self.db.run(lambda s: verification.waiting(s, received.customer_id)):
                attempt = None
        if attempt is not None:
            rows = await self._locks(received.customer_id, lambda: self._link(received, *attempt, reply_status))
            self._count(received, "link")
            return rows
        if linking.may_answer(received.text, received.channel in self._numbered):
            pending = await self.db.run(
                lambda s: linking.pending_claim(s, received.channel, received.address, received.message_id)
            )
            if pending is not None:
                return await self._locks.many(
                    [received.customer_id, pending.owner_id], lambda: self._answer_link(received, pending, reply_status)
                )
            if linking.answer(received.text, []) is not None:  # a Yes/No button with nothing waiting
                rows = await self._locks(
                    received.customer_id, lambda: self._link_reply(received, linking.LinkResult("stale"), reply_status)
                )
                self._count(received, "link")
                return rows
        if slots is None:
            return await self._locks(received.customer_id, lambda: self._run_locked(received, reply_status))

        async def in_a_slot() -> list[MessageRecord]:
            async with slots:
                return await self._run_locked(received, reply_status)

        return await self._locks(received.customer_id, in_a_slot)

    async def _link(self, received: Received, kind: str, value: str, reply_status: str) -> list[MessageRecord]:
        """A link token or code arrived: refuse it, or ask this chat to confirm the link. Nothing
        is merged on arrival, since whoever sent the link may not be the one it arrives with."""

        def link(session: Session) -> list[MessageRecord]:
            message = session.get(MessageRecord, received.message_id)
            assert message is not None  # stored by `receive`, and this turn holds the shopper's lock
            if message.status == "processed":
                return self._replies(session, received.message_id)
            result = linking.claim(
                session, kind, value, received.channel, received.address, received.customer_id, received.message_id
            )
            reply = linking.result_reply(session, result, received.customer_id, self._zone, received.message_id)
            return self._commit(session, received, {}, [reply], None, reply_status, outcome="link")

        return await self.db.run(link)

    async def _link_reply(
        self, received: Received, result: linking.LinkResult, reply_status: str
    ) -> list[MessageRecord]:
        def answer(session: Session) -> list[MessageRecord]:
            reply = linking.result_reply(session, result, received.customer_id, self._zone)
            return self._commit(session, received, {}, [reply], None, reply_status, outcome="link")

        return await self.db.run(answer)

    async def _answer_link(
        self, received: Received, pending: linking.PendingLink, reply_status: str
    ) -> list[MessageRecord]:
        """Maybe the answer to a confirmation question, with both customers' turn locks held.

        Yes merges and the kept customer's dialog in progress asks its question again here; No
        spends the token; anything else is an ordinary message and the question stays open."""

        def decide(session: Session):
            message = session.get(MessageRecord, received.message_id)
            assert message is not None  # stored by `receive`, and this turn holds the shopper's lock
            if message.status == "processed":
                return "done", self._replies(session, received.message_id)
            offered = [o.value for o in self._offered(session, received)]
            text = normalise(received.text)
            if received.channel in self._numbered and text.isascii() and text.isdecimal():
                index = int(text) - 1
                text = offered[index] if 0 <= index < len(offered) else text
            yes = linking.answer(text, offered)
            token = session.get(LinkToken, pending.token_id)
            rerun = token is not None and token.confirmed_message_id == received.message_id
            if yes is None and not rerun:
                return "turn", None
            result = linking.confirm(
                session,
                pending,
                yes is not False,
                received.channel,
                received.address,
                received.customer_id,
                received.message_id,
            )
            kept = result.kept_id or received.customer_id
            reply = linking.result_reply(session, result, kept, self._zone)
            if result.status == "linked":
                return "linked", (kept, reply)
            return "done", self._commit(session, received, {}, [reply], None, reply_status, outcome="link")

        outcome, value = await self.db.run(decide)
        if outcome == "done":
            self._count(received, "link")
            return value
        if outcome == "turn":
            return await self._run_locked(received, reply_status)
        kept, reply = value
        # The merge is committed (the token remembers this message, so a rerun merges once); now
        # the conversation's own turn: a dialog in progress asks its question again in this chat.
        resumed = replace(received, customer_id=kept, text=RESUME_COMMAND)
        return await self._run_locked(resumed, reply_status, first=[reply])

    async def handle(self, msg: InboundMessage, reply_status: str = "pending") -> tuple[Received, list[MessageRecord]]:
        received = await self.receive(msg)
        return received, await self.run_turn(received, reply_status)

    async def replies_to(self, message_id: int) -> list[MessageRecord]:
        return await self.db.run(lambda s: self._replies(s, message_id))

    @staticmethod
    def _replies(session: Session, message_id: int) -> list[MessageRecord]:
        return list(
            session.exec(
                select(MessageRecord).where(MessageRecord.reply_to_id == message_id).order_by(col(MessageRecord.id))
            ).all()
        )

    async def _run_locked(
        self, received: Received, reply_status: str, first: list[OutboundMessage] | None = None
    ) -> list[MessageRecord]:
        """The dialog turn, with the customer's lock held. `first` are replies that go before the
        turn's own (what a link said before the conversation carries on)."""
        first = first or []
        typed = normalise(received.text)
        numbered = received.channel in self._numbered and typed.isascii() and typed.isdecimal()
        intent: Intent | None = None
        handoff_opened = self.metrics.watch_turn()  # the dialogs may hand the shopper to a person
        held: list[str] = []  # why no turn ran: "rate_limited", "handed_off" (a person has it), "rated"
        for attempt in range(MAX_TURN_ATTEMPTS):
            context = TurnContext(self.adapter, self._activity(received, typed))
            keys = [state.get_storage_key(context) for state in self._states]

            def load(session: Session):
                """Everything the turn reads, in one transaction (a flood or a person's
                conversation commits its answer in it instead)."""
                connection = session.connection()
                status = connection.execute(_STATUS, {"message": received.message_id}).scalar_one()
                # On channels that number the choices, "2" means the second option we last offered.
                text = self._numbered_choice(session, received, typed) if numbered else typed
                if status != "processed" and self._sender_limit is not None:
                    verdict = self._sender_limit.check(connection, received.customer_id, received.message_id)
                    if verdict is not None:  # a flood: stored, no turn, one notice
                        held[:] = ["rate_limited"]
                        return status, text, None, None, None, self._hold_back(session, received, verdict, reply_status)
                if status != "processed" and self._handoff is not None:
                    # A person has the conversation (or this answers their rating question).
                    instead = self._handoff.intercept(session, received.customer_id, text)
                    if instead is not None:
                        # [] while a person has it; replies only thank for a 1-5 rating
                        held[:] = ["rated" if instead else "handed_off"]
                        rows = self._commit(
                            session,
                            received,
                            {},
                            first + instead,
                            None,
                            reply_status,
                            intent=intent.name if intent else None,
                            outcome=held[0],
                        )
                        return status, text, None, None, None, rows
                customer = connection.execute(_CUSTOMER_FACTS, {"customer": received.customer_id}).one()
                docs = self._storage.read_sync(session, keys, stored)
                ahead = {(name, customer.id): read(session, customer.id) for name, read in self._read_ahead.items()}
                return status, text, customer, docs, ahead, None

            stored: dict[str, str] = {}
            status, text, customer, docs, ahead, handed_off = await self.db.run(load)
            context.activity.text = text
            intent = intent or parse_command(text)
            if handed_off is not None:
                self._count(received, intent.name if intent else None, outcome=held[0] if held else None)
                return handed_off
            if status == "processed":  # a retry that arrived while the first was running
                return await self.replies_to(received.message_id)
            if intent is None:  # after the handoff check: a message for a person needs no model
                intent = await self._recognize(text)
            language = self._language(intent, text, customer.language)
            returning = utcnow() - as_utc(customer.created_at) > RETURNING_AFTER
            context.turn_state[TURN_INFO_KEY] = TurnInfo(
                customer.id, language, customer.shipping_address, intent, customer.display_name, returning
            )
            with self._storage.turn(docs, keys, stored) as buffer, self.db.read_ahead(ahead):
                await self.adapter.run_pipeline(context, self._turn)
            replies = context.turn_state.get(REPLIES_KEY, [])
            noted = context.turn_state.get(EVENTS_KEY, [])
            # The dialogs say when the bot did not understand (an answer to their question is not that).
            outcome = "handed_off" if handoff_opened else "fallback" if FELL_BACK in noted else "understood"
            noted = [n for n in noted if n != FELL_BACK]
            acted_on = context.turn_state[TURN_INFO_KEY].intent.name  # what the dialogs made of it
            try:
                rows = await self.db.run(
                    lambda s: self._commit(
                        s,
                        received,
                        buffer.pending,
                        first + replies,
                        language,
                        reply_status,
                        buffer.encoded,
                        intent=acted_on,
                        outcome=outcome,
                        noted=noted,
                    )
                )
                self._count(received, intent.name, outcome="handed_off" if handoff_opened else None)
                return rows
            except ETagConflict:
                log.warning("state changed under a turn; retrying", extra={"attempt": attempt + 1})
                await asyncio.sleep(0.01 * (attempt + 1))
        log.error("turn gave up after repeated state conflicts")
        sorry = [OutboundMessage(text=self._sorry(language or "en"), language=language or "en")]
        rows = await self.db.run(
            lambda s: self._commit(
                s,
                received,
                {},
                first + sorry,
                None,
                reply_status,
                intent=intent.name if intent else None,
                outcome="failed",
            )
        )
        self._count(received, intent.name if intent else None, outcome="failed")
        return rows

    def _count(self, received: Received, intent: str | None, outcome: str | None = None) -> None:
        """A turn's replies are recorded: count it, and its latency since the message was stored."""
        latency = time.monotonic() - received.stored_at if received.stored_at is not None else None
        self.metrics.turn(received.channel, intent, latency, outcome)

    def _hold_back(
        self, session: Session, received: Received, verdict: Verdict, reply_status: str
    ) -> list[MessageRecord]:
        """A message over the sender's rate limit: processed without a turn, the reason recorded;
        the first of a flood is answered with the notice, in the shopper's language."""
        assert self._sender_limit is not None  # only a sender limit holds a message back
        connection = session.connection()
        self._sender_limit.mark(connection, received.message_id)
        replies = []
        if verdict is Verdict.NOTICE:
            language = connection.execute(_CUSTOMER_FACTS, {"customer": received.customer_id}).one().language
            replies = [OutboundMessage(text=self._sender_limit.notice(language))]
        return self._commit(session, received, {}, replies, None, reply_status, outcome="rate_limited")

    def _numbered_choice(self, session: Session, received: Received, text: str) -> str:
        """On channels that number the choices, "2" means the second option we last offered."""
        options = self._offered(session, received)
        index = int(text) - 1
        return options[index].value if 0 <= index < len(options) else text

    def _offered(self, session: Session, received: Received) -> list[Choice]:
        """The options of the last reply this chat was given, numbered as one list."""
        last = session.exec(
            select(MessageRecord)
            .where(
                MessageRecord.customer_id == received.customer_id,
                MessageRecord.channel == received.channel,
                MessageRecord.direction == "out",
                col(MessageRecord.id) < received.message_id,
            )
            .order_by(col(MessageRecord.id).desc())
            .limit(1)
        ).first()
        if last is None:
            return []
        payloads = (
            [last.payload or {}]
            if last.reply_to_id is None
            else [r.payload or {} for r in self._replies(session, last.reply_to_id)]
        )
        # The replies to one message are numbered as one list (see `option_offset`).
        return [o for p in payloads for o in numbered_options(OutboundMessage.from_dict(p))]

    async def _turn(self, context: TurnContext) -> None:
        for state in self._states:
            await state.load(context, force=True)
        await self._bot_turn(context)
        for state in self._states:
            await state.save_changes(context)

    @staticmethod
    def _language(intent: Intent, text: str, current: str) -> str:
        """Chinese text switches to zh-TW; English needs a few words, since "ok" says little."""
        if text.startswith("/"):  # a button's payload says nothing of the shopper's language
            return current
        if intent.language != "en":
            return intent.language
        if CJK_RE.search(text):  # English words beside Chinese ones: a tapped "Trail Blazer Runner（9 號）"
            return current
        # An e-mail address (a receipt contact) is no English sentence.
        return "en" if len(re.findall(r"[A-Za-z]{2,}", EMAIL_RE.sub(" ", text))) >= 3 else current

    async def _recognize(self, text: str) -> Intent:
        if not text.strip():
            return Intent(FALLBACK, 0.0, language=detect_language(text))
        return await self.recognizer.recognize(text)

    @staticmethod
    def _activity(received: Received, text: str) -> Activity:
        customer_id = received.customer_id
        return Activity(
            type=ActivityTypes.message,
            id=str(received.message_id),
            text=text,
            channel_id=received.channel,
            locale="en-US",
            from_property=ChannelAccount(id=customer_id),
            recipient=ChannelAccount(id="shop"),
            conversation=ConversationAccount(id=customer_id),
            service_url="",
        )

    def _commit(
        self,
        session: Session,
        received: Received,
        state_changes: dict,
        replies: list[OutboundMessage],
        language: str | None,
        reply_status: str,
        encoded_states: dict[str, str] | None = None,
        *,
        intent: str | None = None,
        outcome: str | None = None,
        noted: list[tuple[str, str | None]] | None = None,
    ) -> list[MessageRecord]:
        """The turn's results in one transaction: state, replies, the inbound marked processed, and
        the turn's analytics events (`outcome` as for `Metrics.turn`; `noted`: what the dialogs saw)."""
        connection = session.connection()
        marked = connection.execute(_MARK_PROCESSED, {"message": received.message_id}).rowcount
        if not marked and connection.execute(_STATUS, {"message": received.message_id}).first() is not None:
            return self._replies(session, received.message_id)  # a concurrent retry ran it already
        # (Neither marked nor found: the shopper's transcript was just erased; the replies stand.)
        self._storage.write_sync(session, state_changes, encoded_states)
        if language:
            identity.set_language(session, received.customer_id, language)
        else:  # a reply from outside the dialogs (linking, a handoff): in the language the shopper has
            language = connection.execute(_LANGUAGE, {"customer": received.customer_id}).scalar() or "en"
        if (
            self._disclosure is not None
            and replies
            and connection.execute(
                _EARLIER_HERE,
                {"customer": received.customer_id, "channel_": received.channel, "message": received.message_id},
            ).first()
            is None
        ):
            # A paragraph before the first reply's text (a message of its own if it has none), so the
            # shopper gets no extra message to pay for or scroll past.
            said = self._disclosure(language)
            first_reply = replies[0]
            replies = (
                [replace(first_reply, text=f"{said}\n\n{first_reply.text}"), *replies[1:]]
                if first_reply.text
                else [OutboundMessage(text=said), *replies]
            )
        rows = []
        offset = 0
        declared = profile(received.channel)
        # The shopper just wrote: the platform's window for these replies runs from that message.
        session_until = (
            (received.received_at or utcnow()) + declared.window
            if declared is not None and declared.window is not None
            else None
        )
        for index, reply in enumerate(replies):
            reply = replace(reply, option_offset=offset, language=language, session_until=session_until)
            offset += len(numbered_options(reply))
            values: dict[str, Any] = {
                **_MESSAGE_DEFAULTS,
                "customer_id": received.customer_id,
                "channel": received.channel,
                "address": received.address,
                "direction": "out",
                "text": reply.text,
                "payload": reply.to_dict(),
                "idempotency_key": f"reply:{received.message_id}:{index}",
                "reply_to_id": received.message_id,
                "status": reply_status,
                "created_at": utcnow(),
            }
            row = MessageRecord(id=connection.execute(_INSERT_MESSAGE, values).scalar_one(), **values)
            rows.append(row)
        self._record_events(connection, received, language, intent, outcome, noted or [], rows, reply_status)
        return rows

    @staticmethod
    def _record_events(
        connection: Any,
        received: Received,
        language: str,
        intent: str | None,
        outcome: str | None,
        noted: list[tuple[str, str | None]],
        rows: list[MessageRecord],
        reply_status: str,
    ) -> None:
        """One statement: the turn's event and what the dialogs noted. A reply handed over in the
        answer (web chat) is given now; the others when the outbox's provider takes the first."""
        if outcome is None:
            outcome = "fallback" if intent == FALLBACK else "understood"
        now = utcnow()
        common = {
            "customer_id": received.customer_id,
            "channel": received.channel,
            "language": language,
            "message_id": received.message_id,
            "received_at": received.stored_on or now,
            "demo": False,
        }
        turn = {
            **common,
            "kind": "turn",
            "intent": intent,
            "outcome": outcome,
            "handoff": outcome == "handed_off",
            "subject": None,
            "replied_at": now if rows and reply_status == "delivered" else None,
        }
        others = [
            {
                **common,
                "kind": kind,
                "intent": None,
                "outcome": None,
                "handoff": False,
                "subject": subject,
                "replied_at": None,
            }
            for kind, subject in noted
        ]
        connection.execute(_INSERT_EVENTS, [turn, *others])

    async def recover(self) -> int:
        """Run turns for inbound messages stored but never processed (a crash in between)."""
        pending = await self.db.run(
            lambda s: list(
                s.exec(
                    select(  # type: ignore[call-overload]  # sqlmodel types select() for at most four columns
                        MessageRecord.id,
                        MessageRecord.customer_id,
                        MessageRecord.channel,
                        MessageRecord.address,
                        MessageRecord.text,
                        MessageRecord.payload,
                        MessageRecord.created_at,
                    ).where(MessageRecord.direction == "in", MessageRecord.status == "stored")
                ).all()
            )
        )
        for message_id, customer_id, channel, address, text, payload, created_at in pending:
            ref = (payload or {}).get("ref")
            try:
                await self.run_turn(
                    Received(
                        message_id,
                        customer_id,
                        channel,
                        address or "",
                        text or "",
                        False,
                        False,
                        ref,
                        received_at=as_utc(created_at) if created_at else None,
                    )
                )
            except Exception:  # one bad message must not keep the service from starting
                log.exception("stored message failed again", extra={"record_id": message_id})
                await self.db.run(lambda s: self._count_failure(s, message_id))
        return len(pending)

    @staticmethod
    def _count_failure(session: Session, message_id: int) -> None:
        """After `MAX_TURN_ATTEMPTS` failed turns a message is set aside as failed."""
        record = session.get(MessageRecord, message_id)
        if record is not None and record.status == "stored":
            record.attempts += 1
            if record.attempts >= MAX_TURN_ATTEMPTS:
                record.status = "failed"

    async def record_failure(self, received: Received) -> None:
        await self.db.run(lambda s: self._count_failure(s, received.message_id))
