"""The turn pipeline: persist inbound -> resolve customer -> one turn at a time per customer ->
botbuilder dialogs -> replies recorded, with our `BotAdapter` underneath."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import uuid4

from botbuilder.core import BotAdapter, BotState, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ResourceResponse,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot import identity
from bot.messages import InboundMessage, OutboundMessage, to_outbound
from bot.nlu import FALLBACK, Intent, Recognizer, detect_language, normalise
from bot.store.database import Database
from bot.store.models import Customer, MessageRecord, utcnow
from bot.store.storage import ETagConflict
from bot.turn import TURN_INFO_KEY, TurnInfo, parse_command

log = logging.getLogger(__name__)
REPLIES_KEY = "shop.replies"
MAX_TURN_ATTEMPTS = 4


class CustomerConversationState(BotState):
    """Conversation (dialog) state keyed by customer, so it follows the shopper across channels."""

    def __init__(self, storage) -> None:
        super().__init__(storage, "CustomerConversationState")

    def get_storage_key(self, turn_context: TurnContext) -> str:
        return f"conversation/{turn_context.activity.conversation.id}"


class CustomerUserState(BotState):
    """User state keyed by customer."""

    def __init__(self, storage) -> None:
        super().__init__(storage, "CustomerUserState")

    def get_storage_key(self, turn_context: TurnContext) -> str:
        return f"user/{turn_context.activity.from_property.id}"


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
    duplicate: bool
    processed: bool


class CustomerLocks:
    """One asyncio lock per customer, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def __call__(self, customer_id: str, fn: Callable[[], Awaitable]):
        lock, users = self._locks.get(customer_id, (asyncio.Lock(), 0))
        self._locks[customer_id] = (lock, users + 1)
        try:
            async with lock:
                return await fn()
        finally:
            lock, users = self._locks[customer_id]
            if users <= 1:
                del self._locks[customer_id]
            else:
                self._locks[customer_id] = (lock, users - 1)


class Engine:
    """Owns the pipeline from a parsed inbound message to recorded replies."""

    def __init__(
        self,
        db: Database,
        recognizer: Recognizer,
        bot_turn: Callable[[TurnContext], Awaitable],
        states: list[BotState],
        max_chars: int = 4000,
    ) -> None:
        self.db = db
        self.recognizer = recognizer
        self.adapter = ShopAdapter()
        self._bot_turn = bot_turn
        self._states = states
        self._locks = CustomerLocks()
        self._max_chars = max_chars

    async def receive(self, msg: InboundMessage) -> Received:
        """Store an inbound message and resolve its customer; a provider retry is recognised."""

        def store(session: Session) -> Received:
            existing = session.exec(
                select(MessageRecord).where(
                    MessageRecord.channel == msg.channel,
                    MessageRecord.provider_message_id == msg.provider_message_id,
                    MessageRecord.direction == "in",
                )
            ).first()
            if existing is not None:
                return Received(existing.id, existing.customer_id, True, existing.status == "processed")
            customer = identity.resolve(session, msg.channel, msg.address, msg.profile_name)
            media = [{"url": m.url, "content_type": m.content_type} for m in msg.media]
            record = MessageRecord(
                customer_id=customer.id,
                channel=msg.channel,
                direction="in",
                text=msg.text[: self._max_chars],
                payload={"media": media, **msg.extra} if (media or msg.extra) else None,
                provider_message_id=msg.provider_message_id,
                created_at=msg.received_at or utcnow(),
            )
            session.add(record)
            session.flush()
            return Received(record.id, customer.id, False, False)

        for attempt in range(3):
            try:
                return await self.db.run(store)
            except IntegrityError:  # a concurrent first message created the same row
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def run_turn(self, received: Received) -> list[MessageRecord]:
        """Run the dialog turn for a stored message (once) and record its replies."""
        if received.duplicate:
            return await self.replies_to(received.message_id)
        return await self._locks(received.customer_id, lambda: self._run_locked(received))

    async def handle(self, msg: InboundMessage) -> tuple[Received, list[MessageRecord]]:
        received = await self.receive(msg)
        return received, await self.run_turn(received)

    async def replies_to(self, message_id: int) -> list[MessageRecord]:
        return await self.db.run(
            lambda s: list(
                s.exec(
                    select(MessageRecord).where(MessageRecord.reply_to_id == message_id).order_by(MessageRecord.id)
                ).all()
            )
        )

    async def _run_locked(self, received: Received) -> list[MessageRecord]:
        record, customer = await self.db.run(
            lambda s: (s.get(MessageRecord, received.message_id), s.get(Customer, received.customer_id))
        )
        if record.status == "processed":  # a retry that arrived while the first was running
            return await self.replies_to(record.id)
        text = normalise(record.text or "")
        intent = parse_command(text) or await self._recognize(text)
        language = customer.language if intent.language == "en" and not text else intent.language
        info = TurnInfo(customer.id, language, customer.shipping_address, intent)
        replies: list[OutboundMessage] = []
        for attempt in range(MAX_TURN_ATTEMPTS):
            context = TurnContext(self.adapter, self._activity(record, customer.id, text))
            context.turn_state[TURN_INFO_KEY] = info
            try:
                await self.adapter.run_pipeline(context, self._turn)
            except ETagConflict:
                log.warning("state changed under a turn; retrying", extra={"attempt": attempt + 1})
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            replies = context.turn_state.get(REPLIES_KEY, [])
            break
        else:
            log.error("turn gave up after repeated state conflicts")
            replies = [OutboundMessage(text="Sorry, something went wrong on our side. Please try again.")]
        return await self.db.run(lambda s: self._record_replies(s, record, replies, language))

    async def _turn(self, context: TurnContext) -> None:
        for state in self._states:
            await state.load(context, force=True)
        await self._bot_turn(context)
        for state in self._states:
            await state.save_changes(context)

    async def _recognize(self, text: str) -> Intent:
        if not text.strip():
            return Intent(FALLBACK, 0.0, language=detect_language(text))
        return await self.recognizer.recognize(text)

    @staticmethod
    def _activity(record: MessageRecord, customer_id: str, text: str) -> Activity:
        return Activity(
            type=ActivityTypes.message,
            id=str(record.id),
            text=text,
            channel_id=record.channel,
            locale="en-US",
            from_property=ChannelAccount(id=customer_id),
            recipient=ChannelAccount(id="shop"),
            conversation=ConversationAccount(id=customer_id),
            service_url="",
        )

    @staticmethod
    def _record_replies(
        session: Session, record: MessageRecord, replies: list[OutboundMessage], language: str
    ) -> list[MessageRecord]:
        inbound = session.get(MessageRecord, record.id)
        if inbound.status == "processed":
            return list(
                session.exec(select(MessageRecord).where(MessageRecord.reply_to_id == record.id)).all()
            )
        inbound.status = "processed"
        identity.set_language(session, record.customer_id, language)
        rows = []
        for index, reply in enumerate(replies):
            row = MessageRecord(
                customer_id=record.customer_id,
                channel=record.channel,
                direction="out",
                text=reply.text,
                payload=reply.to_dict(),
                idempotency_key=f"reply:{record.id}:{index}",
                reply_to_id=record.id,
                status="pending",
            )
            session.add(row)
            rows.append(row)
        session.flush()
        return rows

    async def recover(self) -> int:
        """Run turns for inbound messages stored but never processed (a crash in between)."""
        pending = await self.db.run(
            lambda s: list(
                s.exec(
                    select(MessageRecord.id, MessageRecord.customer_id).where(
                        MessageRecord.direction == "in", MessageRecord.status == "stored"
                    )
                ).all()
            )
        )
        for message_id, customer_id in pending:
            await self.run_turn(Received(message_id, customer_id, False, False))
        return len(pending)
