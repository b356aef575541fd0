"""The outbox: every outbound message is a durable record; a dispatcher sends pending ones
through their lane (a chat channel, or a sender that is no chat, such as e-mail), retries
transient failures with backoff and records permanent ones."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Row, bindparam, case, func, or_, text, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.channel import HOME_CHANNEL, ChannelAdapter, SendError, profile, profiles
from bot.messages import ChannelAddress, OutboundMessage, SendReceipt, StatusUpdate
from bot.metrics import FAILED, RETRIED, SENT, Metrics
from bot.store.database import Database, among, one_of
from bot.store.models import AnalyticsEvent, Customer, MessageRecord, as_utc, utcnow

log = logging.getLogger(__name__)

STATUS_RANK = {
    "pending": 0,
    "sending": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
}
OUTSIDE_WINDOW_CODES = {"63016"}
OPTED_OUT_CODES = {"21610"}


_MESSAGE, _CUSTOMER = MessageRecord.__table__, Customer.__table__
# The columns a send needs of a claimed record.
_CLAIMED = (
    "id",
    "customer_id",
    "channel",
    "address",
    "payload",
    "status",
    "attempts",
    "parts_sent",
    "reply_to_id",
    "idempotency_key",
    "error_code",
    "created_at",
    "next_attempt_at",
)
# Sends in flight at once on one channel: each channel's client session keeps 100 connections
# (aiohttp's default), and a send that queued for one would spend its timeout waiting.
SEND_CONCURRENCY = 100
# A try that failed this way may have reached the provider (a timeout after the request went
# out, or an earlier check that could not tell): the next try first asks the provider whether it
# arrived.
AMBIGUOUS_CODES = {"network", "in_doubt"}
POLL_SECONDS = 0.5  # how often a lane looks for due messages (retries coming due) unprompted
# After a claim that found less than it had room for, a lane waits this long before it claims
# again because a send finished (which may have freed a recipient's next message): a busy lane's
# tail would otherwise run one claim per send.
REFILL_PAUSE = 0.05


@dataclass(frozen=True)
class Delivery:
    """One outbound record, handed to its lane's sender: where it goes, what it says, its
    idempotency key, and what an earlier try did (parts sent; when it may have sent more)."""

    to: ChannelAddress
    message: OutboundMessage
    key: str | None = None
    resume_from: int = 0
    in_doubt: datetime | None = None


class Sender(Protocol):
    """What a lane sends through. Every chat channel is one (wrapped by the outbox); a way of
    reaching a shopper that is no chat they talk on (e-mail) is one too, with a lane of its own
    and no channel profile: the policy, handoffs and channel choices never see it."""

    async def deliver(self, delivery: Delivery) -> SendReceipt:
        """Send it. Raises SendError: `permanent` ones are recorded, others retried."""
        ...

    async def close(self) -> None: ...


class ChatSender:
    """A chat channel as a lane's sender."""

    def __init__(self, channel: ChannelAdapter) -> None:
        self.channel = channel

    async def deliver(self, delivery: Delivery) -> SendReceipt:
        return await self.channel.send(
            delivery.to, delivery.message, resume_from=delivery.resume_from, in_doubt=delivery.in_doubt
        )

    async def close(self) -> None:
        """The channel is closed with the other channels."""


class Outbox:
    """Sends pending outbound records. Safe to run in several processes on PostgreSQL: claims
    take row locks with SKIP LOCKED and a lease, so each record is sent by one dispatcher.

    Each channel is a lane of its own (its claims, its sends in flight, its rate), so a slow or
    failing provider delays no other channel; so is each of `senders` (records whose `channel`
    is the sender's name, "email"). Within a lane sending is a pipeline: the lane
    claims more as sends finish, and each recipient's messages go one after the other, so a slow
    recipient delays only their own next message.
    """

    def __init__(
        self,
        db: Database,
        channels: dict[str, ChannelAdapter],
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        lease_seconds: float = 120.0,
        batch: int = 500,
        rate_limits: dict[str, float] | None = None,
        stop_grace: float = 10.0,
        metrics: Metrics | None = None,
        senders: dict[str, Sender] | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.channels = channels
        self.senders: dict[str, Sender] = {
            **{name: ChatSender(channel) for name, channel in channels.items() if not channel.profile.pulled},
            **(senders or {}),
        }
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self.stop_grace = stop_grace  # how long sends in flight may take to finish on stop
        self._outcomes: list[Callable[[Session], None]] = []
        self._sent: list[dict] = []  # successful sends waiting to be recorded, in one statement
        self._writing = asyncio.Lock()
        self.sent = 0  # messages this dispatcher got a provider to take
        rates = rate_limits or {}
        # A lane holds at most `batch` claimed records: five rounds of SEND_CONCURRENCY sends, so
        # even if every send ran into its timeout they would be done well within the lease; a
        # rate-limited lane holds what it can send in a quarter of the lease.
        self.lanes = {
            name: Lane(
                self,
                name,
                batch if name not in rates else max(1, min(batch, int(rates[name] * lease_seconds / 4))),
                Pacer(rates[name]) if name in rates else None,
            )
            for name in self.senders  # not the widget: it fetches its own
        }
        # What is due on one channel, oldest first (prepared once: the lanes poll it).
        # A message waits while another one to the same address is being sent (by this
        # dispatcher or another one), so that a shopper's messages arrive in order whichever
        # process sends them.
        busy = _MESSAGE.alias("busy")
        in_flight = sa_select(busy.c.address).where(
            busy.c.status == "sending", busy.c.next_attempt_at > bindparam("now"), busy.c.address.is_not(None)
        )
        self._due = (
            sa_select(*(_MESSAGE.c[name] for name in _CLAIMED))
            .where(
                _MESSAGE.c.direction == "out",
                _MESSAGE.c.channel == bindparam("lane"),
                # "sending": a dispatcher died mid-send and its lease ran out
                _MESSAGE.c.status.in_(["pending", "sending"]),
                or_(_MESSAGE.c.next_attempt_at.is_(None), _MESSAGE.c.next_attempt_at <= bindparam("now")),
                or_(_MESSAGE.c.address.is_(None), _MESSAGE.c.address.not_in(in_flight.scalar_subquery())),
            )
            .order_by(_MESSAGE.c.id)
            .limit(bindparam("room"))
        )
        postgres = not self.db.is_sqlite
        if postgres:
            self._due = self._due.with_for_update(skip_locked=True)
        self._lease = (
            update(_MESSAGE)
            .where(one_of(_MESSAGE.c.id, "ids", postgres))
            .values(status="sending", next_attempt_at=bindparam("until"))
        )
        # On stop: what was claimed and not handed to the channel is due again at once, for the
        # next dispatcher (the recipient's message in flight, if any, still goes first). One that
        # was claimed in doubt keeps its doubt, so the next try first asks the provider.
        self._release = (
            update(_MESSAGE)
            .where(one_of(_MESSAGE.c.id, "ids", postgres), _MESSAGE.c.status == "sending")
            .values(
                status="pending",
                next_attempt_at=None,
                error_code=case(
                    (
                        one_of(_MESSAGE.c.id, "doubt", postgres)
                        & or_(_MESSAGE.c.error_code.is_(None), _MESSAGE.c.error_code.not_in(sorted(AMBIGUOUS_CODES))),
                        "in_doubt",
                    ),
                    else_=_MESSAGE.c.error_code,
                ),
            )
        )
        self._skip_opted_out = (
            update(_MESSAGE)
            .where(one_of(_MESSAGE.c.id, "ids", postgres))
            .values(status="skipped", error_reason="opted_out", next_attempt_at=None)
        )
        self._refused = sa_select(_CUSTOMER.c.id, _CUSTOMER.c.marketing_consent, _CUSTOMER.c.sms_opted_out).where(
            one_of(_CUSTOMER.c.id, "ids", postgres),
            or_(_CUSTOMER.c.marketing_consent.is_(False), _CUSTOMER.c.sms_opted_out.is_(True)),
        )

    def notify(self) -> None:
        """New records are waiting: look now rather than at the next poll."""
        for lane in self.lanes.values():
            lane.notify()

    def start(self) -> None:
        for lane in self.lanes.values():
            lane.start()

    async def stop(self) -> None:
        """Stop claiming; give the sends in flight up to `stop_grace` seconds to finish (the rest
        stay leased, in doubt); hand back what was claimed and not yet sent; record what was."""
        await asyncio.gather(*(lane.stop(self.stop_grace) for lane in self.lanes.values()))
        await self._record()

    async def _hand_back(self, unsent: dict[int, bool]) -> None:
        """Claimed records that were not handed to their channel: pending again, due now."""
        ids = list(unsent)
        doubt = [record_id for record_id, in_doubt in unsent.items() if in_doubt] or [-1]
        await self.db.run(lambda s: s.connection().execute(self._release, {"ids": ids, "doubt": doubt}))
        log.info("outbox handed back unsent messages", extra={"count": len(ids)})

    async def dispatch_once(self) -> int:
        """Claim what is due on every channel once and send it; returns how many records were
        attempted. (The running dispatcher does not wait like this: see `Lane`.)"""
        return sum(await asyncio.gather(*(lane.once() for lane in self.lanes.values())))

    async def _record(self, outcome: Callable[[Session], None] | None = None, sent: dict | None = None) -> None:
        """Write a send's outcome; returns once it is committed. Outcomes that finish while a
        write is under way share the next transaction, so a busy outbox writes in batches."""
        if outcome is not None:
            self._outcomes.append(outcome)
        if sent is not None:
            self._sent.append(sent)
        async with self._writing:
            if not self._outcomes and not self._sent:
                return  # a write that held the lock meanwhile took ours along
            outcomes, self._outcomes = self._outcomes, []
            sent_rows, self._sent = self._sent, []

            def write(session: Session) -> None:
                self._finish_sent(session, sent_rows)
                for apply in outcomes:
                    apply(session)

            await self.db.run(write)

    def _claim(self, session: Session, channel: str, room: int) -> tuple[list[Row], set[int], int]:
        """Lease up to `room` due records of `channel`. Returns those to send (opted-out
        marketing withdrawn), the ids of those in doubt, and how many were claimed."""
        now = utcnow()
        connection = session.connection()
        rows = connection.execute(self._due, {"now": now, "lane": channel, "room": room}).all()
        # A record still "sending" here was claimed by a dispatcher that died mid-send.
        in_doubt = {row.id for row in rows if row.status == "sending" or row.error_code in AMBIGUOUS_CODES}
        if rows:
            connection.execute(self._lease, {"ids": [row.id for row in rows], "until": now + self.lease})
        withdrawn = self._withdrawn(session, rows)
        return [row for row in rows if row.id not in withdrawn], in_doubt, len(rows)

    async def _send(self, row: Row, in_doubt: datetime | None, lane: Lane) -> datetime | None:
        """Send one record and record the outcome; returns when a retry is due, if it failed
        for now (the recipient's later messages wait for it)."""
        sender = self.senders[row.channel]
        if not row.address:
            self.metrics.send(row.channel, FAILED, "no_address")
            await self._record(lambda s: self._finish(s, row.id, "failed", None, "no_address", "no channel address"))
            return None
        try:
            async with lane.slot():  # not while the outcome is recorded: that waits for the database
                lane.unsent.pop(row.id, None)  # from here on it may reach the provider
                receipt = await sender.deliver(
                    Delivery(
                        ChannelAddress(row.channel, row.address),
                        OutboundMessage.from_dict(row.payload or {}),
                        row.idempotency_key,
                        row.parts_sent,
                        in_doubt,
                    )
                )
        except SendError as failure:
            exc = failure  # the lambdas below run in the database thread, after this block
            attempts = row.attempts + 1
            if exc.permanent or attempts >= self.max_attempts:
                log.warning(
                    "send failed",
                    extra={"channel": row.channel, "record_id": row.id, "code": exc.code, "permanent": exc.permanent},
                )
                self.metrics.send(row.channel, FAILED, exc.code)
                await self._record(lambda s: self._finish(s, row.id, "failed", None, exc.code, exc.reason, attempts))
                return None
            delay = exc.retry_after or min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
            retry_at = utcnow() + timedelta(seconds=delay)
            log.info(
                "send will be retried",
                extra={
                    "channel": row.channel,
                    "record_id": row.id,
                    "code": exc.code,
                    "attempt": attempts,
                    "delay_s": delay,
                },
            )
            self.metrics.send(row.channel, RETRIED, exc.code)
            await self._record(lambda s: self._retry(s, row.id, attempts, retry_at, exc))
            return retry_at
        self.sent += 1
        # Due since its retry time (or a dead dispatcher's lease ran out), else since it was queued.
        due = row.next_attempt_at or row.created_at
        self.metrics.send(row.channel, SENT, lag=(utcnow() - as_utc(due)).total_seconds() if due else None)
        await self._record(
            sent={"b_id": row.id, "b_provider_id": receipt.provider_message_id, "b_attempts": row.attempts + 1}
        )
        return None

    async def _postpone(self, ids: list[int], retry_at: datetime) -> None:
        """A recipient's later messages wait for their earlier one's retry, to keep the order."""
        await self.db.run(
            lambda s: s.execute(
                update(MessageRecord)
                .where(among(s, MessageRecord.id, ids))
                .values(status="pending", next_attempt_at=retry_at)
            )
        )

    @staticmethod
    def _finish_sent(session: Session, sent: list[dict]) -> None:
        """Record successful sends in one statement; a status a delivery report already moved
        further (delivered, read) is kept."""
        if not sent:
            return
        table = MessageRecord.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=case(
                    (or_(table.c.status == "pending", table.c.status == "sending"), "sent"), else_=table.c.status
                ),
                provider_message_id=bindparam("b_provider_id"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=None,
            ),
            sent,
        )
        # The dashboard's response time: when the provider took a turn's first reply.
        events = AnalyticsEvent.__table__
        replied = sa_select(table.c.reply_to_id).where(table.c.id == bindparam("b_id")).scalar_subquery()
        session.execute(
            update(events)
            .where(events.c.kind == "turn", events.c.replied_at.is_(None), events.c.message_id == replied)
            .values(replied_at=utcnow()),
            [{"b_id": row["b_id"]} for row in sent],
        )

    @staticmethod
    def _retry(session: Session, message_id: int, attempts: int, retry_at: datetime, exc: SendError) -> None:
        row = session.get(MessageRecord, message_id)
        if row is None:  # erased (the shopper asked to be forgotten) while it was being sent
            raise LookupError(f"message {message_id} is no longer stored")
        row.status, row.attempts, row.next_attempt_at = "pending", attempts, retry_at
        row.error_code, row.error_reason = exc.code, exc.reason
        row.parts_sent = max(row.parts_sent, exc.parts_sent)  # the retry resumes after them

    @staticmethod
    def _finish(
        session: Session,
        message_id: int,
        status: str,
        provider_id: str | None,
        code: str | None,
        reason: str | None,
        attempts: int | None = None,
    ) -> None:
        row = session.get(MessageRecord, message_id)
        if row is None:  # erased (the shopper asked to be forgotten) while it was being sent
            raise LookupError(f"message {message_id} is no longer stored")
        if STATUS_RANK.get(row.status, 0) > STATUS_RANK.get(status, 0):
            status = row.status  # a delivery report overtook the send's own answer
        row.status, row.next_attempt_at = status, None
        if provider_id:
            row.provider_message_id = provider_id
        if attempts is not None:
            row.attempts = attempts
        if code or reason:
            row.error_reason = reason
            record_error(session, row, code)

    def _withdrawn(self, session: Session, rows: Sequence[Row]) -> set[int]:
        """Messages the shop started whose shopper opted out after they were queued: not sent.
        Returns their ids, marked skipped."""
        started = [
            r for r in rows if r.reply_to_id is None and (r.payload or {}).get("kind") in ("marketing", "update")
        ]
        if not started:
            return set()
        connection = session.connection()
        refused = connection.execute(self._refused, {"ids": list({r.customer_id for r in started})}).all()
        no_marketing = {customer_id for customer_id, consent, _ in refused if consent is False}
        no_sms = {customer_id for customer_id, _, opted_out in refused if opted_out}
        # A carrier keyword (STOP) blocks every text on the channel it was sent on.
        keyword_channels = {p.name for p in profiles() if p.consent_keywords}
        withdrawn = {
            row.id
            for row in started
            if row.customer_id in no_marketing or (row.channel in keyword_channels and row.customer_id in no_sms)
        }
        if withdrawn:
            connection.execute(self._skip_opted_out, {"ids": list(withdrawn)})
        return withdrawn


class LaneStopped(Exception):
    """The lane stopped before this send began."""


class Lane:
    """One channel's sending. It claims due records as room frees up (not batch by batch), keeps
    at most SEND_CONCURRENCY sends in flight, and gives each recipient a queue whose messages go
    one after the other; different recipients go at once."""

    def __init__(self, outbox: Outbox, channel: str, limit: int, pacer: Pacer | None) -> None:
        self.outbox = outbox
        self.channel = channel
        self.limit = limit  # records held at once: claimed and not yet finished
        # Claims come in steps of at least this many, unless the lane has nothing to send: one
        # claim per finished send would cost a transaction per message.
        self.refill = max(1, limit // 4)
        self.pacer = pacer
        self.held = 0
        self.ready = 0  # records whose turn has come, waiting for the pacer or a send slot
        self.sending = 0
        self._slots = asyncio.Semaphore(SEND_CONCURRENCY)
        self._queues: dict[str | None, deque[tuple[Row, datetime | None]]] = {}
        self._workers: dict[str | None, asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._next_claim = 0.0
        self._notified = False
        self._task: asyncio.Task | None = None
        self.unsent: dict[int, bool] = {}  # claimed and not yet handed to the channel -> in doubt
        self.stopping = False

    def notify(self) -> None:
        self._notified, self._next_claim = True, 0.0
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming, let the sends in flight finish within `grace` seconds (no recipient's
        next message starts), then hand back what was claimed and not sent."""
        self.stopping = True
        if self._task is not None:
            # Woken rather than cancelled: a claim under way finishes, so what it leased is known
            # and handed back below.
            self._wake.set()
            await asyncio.wait([self._task], timeout=max(grace, POLL_SECONDS))
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        workers = list(self._workers.values())
        if workers and grace > 0:
            await asyncio.wait(workers, timeout=grace)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        unsent, self.unsent = self.unsent, {}
        if unsent:
            try:
                await self.outbox._hand_back(unsent)
            except Exception:  # they stay leased: claimed again when the lease runs out
                log.exception("outbox could not hand back unsent messages", extra={"channel": self.channel})
        self.stopping = False

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the lane's sends in flight, at the lane's rate."""
        self.ready += 1
        try:
            if self.pacer is not None:
                await self.pacer.wait()
            await self._slots.acquire()
        finally:
            self.ready -= 1
        if self.stopping:  # not begun: handed back
            self._slots.release()
            raise LaneStopped
        self.sending += 1
        try:
            yield
        finally:
            self.sending -= 1
            self._slots.release()

    async def once(self) -> int:
        """Claim once and wait until what was claimed is sent; returns how many were attempted."""
        started, _, workers = await self._claim(self.limit - self.held)
        await asyncio.gather(*workers)
        return started

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self._wake.clear()  # before looking: a wake from now on is not lost
            timeout = POLL_SECONDS
            room = self.limit - self.held
            # Claim while less than a round of sends waits for a slot, so that sends never idle for
            # want of work and what is claimed is sent soon after, well within its lease.
            starving = self.ready == 0 and self.sending < SEND_CONCURRENCY
            if room > 0 and self.ready < SEND_CONCURRENCY and (room >= self.refill or starving):
                wait = self._next_claim - loop.time()
                if wait <= 0:
                    self._notified = False
                    try:
                        _, claimed, _ = await self._claim(room)
                    except Exception:  # keep the lane alive; the records stay and are claimed later
                        log.exception("outbox claim failed", extra={"channel": self.channel})
                        self._next_claim = loop.time() + POLL_SECONDS
                    else:
                        if claimed >= room:
                            continue  # there may be more
                        if not self._notified:
                            self._next_claim = loop.time() + REFILL_PAUSE
                else:
                    timeout = wait
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wake does, and the lane would then never stop.
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _claim(self, room: int) -> tuple[int, int, set[asyncio.Task]]:
        """Claim up to `room` records and queue them behind their recipients. Returns how many
        will be sent, how many were claimed, and the recipients' workers that have them."""
        rows, in_doubt, claimed = await self.outbox.db.run(lambda s: self.outbox._claim(s, self.channel, room))
        workers: set[asyncio.Task] = set()
        for row in rows:
            queue = self._queues.get(row.address)
            if queue is None:
                queue = self._queues[row.address] = deque()
                self._workers[row.address] = asyncio.get_running_loop().create_task(self._work(row.address, queue))
            queue.append((row, as_utc(row.created_at) if row.id in in_doubt else None))
            self.unsent[row.id] = row.id in in_doubt
            workers.add(self._workers[row.address])
        self.held += len(rows)
        return len(rows), claimed, workers

    async def _work(self, address: str | None, queue: deque[tuple[Row, datetime | None]]) -> None:
        """Send one recipient's messages in order until their queue is empty."""
        try:
            while queue and not self.stopping:
                row, in_doubt = queue.popleft()
                try:
                    retry_at = await self.outbox._send(row, in_doubt, self)
                except LaneStopped:
                    break  # handed back, with the rest of the queue
                finally:
                    self.held -= 1
                    if self.ready < SEND_CONCURRENCY:  # the lane may want more
                        self._wake.set()
                self.unsent.pop(row.id, None)
                if retry_at is not None and queue:  # keep the order: the rest wait for this one
                    later = [r.id for r, _ in queue]
                    for record_id in later:
                        self.unsent.pop(record_id, None)
                    self.held -= len(queue)
                    queue.clear()
                    await self.outbox._postpone(later, retry_at)
        except Exception:  # the records stay leased: claimed again, in doubt, when the lease runs out
            log.exception("outbox send failed", extra={"channel": self.channel})
            # Not handed back on stop either: by then another dispatcher may have claimed them.
            self.unsent.pop(row.id, None)
            for later_row, _ in queue:
                self.unsent.pop(later_row.id, None)
        finally:
            self.held -= len(queue)
            queue.clear()
            # No await since the queue was last seen empty: a claim now starts a new worker.
            del self._queues[address], self._workers[address]


class Pacer:
    """Spaces sends on one channel to at most `rate` per second (a provider's sender limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next)
        self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


def record_error(session: Session, row: MessageRecord, code: str | None) -> None:
    """A provider's error code on an outbound record, with what it means for the shopper."""
    row.error_code = code
    if code in OUTSIDE_WINDOW_CODES:
        row.error_reason = "outside_window"
    if code in OPTED_OUT_CODES:
        customer = session.get(Customer, row.customer_id)
        if customer is not None:
            customer.sms_opted_out = True


def apply_status(session: Session, update_: StatusUpdate) -> int:
    """Record a delivery report on the outbound records it is about; never move a status back."""
    if update_.provider_message_id:
        rows = session.exec(
            select(MessageRecord).where(
                MessageRecord.channel == update_.channel,
                MessageRecord.provider_message_id == update_.provider_message_id,
                MessageRecord.direction == "out",
            )
        ).all()
    elif update_.watermark_ms is not None and update_.address:
        cutoff = datetime.fromtimestamp(update_.watermark_ms / 1000, tz=utcnow().tzinfo)
        rows = [
            r
            for r in session.exec(
                select(MessageRecord).where(
                    MessageRecord.channel == update_.channel,
                    MessageRecord.address == update_.address,
                    MessageRecord.direction == "out",
                    col(MessageRecord.status).in_(["sent", "delivered"]),
                )
            ).all()
            if as_utc(r.created_at) <= cutoff
        ]
    else:
        return 0
    for row in rows:
        if STATUS_RANK.get(update_.status, 0) > STATUS_RANK.get(row.status, 0):
            row.status = update_.status
        if update_.error_code:
            record_error(session, row, update_.error_code)
        if update_.error_reason:  # the channel's own reading of its code
            row.error_reason = update_.error_reason
    return len(rows)


_PENDING = (
    sa_select(_MESSAGE.c.channel, func.count())
    # Written as the due index's own condition (bot/store/models.py), so the count reads that index.
    .where(text("status IN ('pending', 'sending')"), _MESSAGE.c.direction == "out")
    .group_by(_MESSAGE.c.channel)
)


def pending_by_channel(session: Session) -> dict[str, int]:
    """How many outbound messages wait to be sent (or are being sent), per channel: one query."""
    return {channel: count for channel, count in session.connection().execute(_PENDING).all()}


def customer_address(session: Session, customer_id: str, channel: str) -> str | None:
    """The address this customer last wrote to us from on `channel`."""
    return session.exec(
        select(MessageRecord.address)
        .where(
            MessageRecord.customer_id == customer_id, MessageRecord.channel == channel, MessageRecord.direction == "in"
        )
        .order_by(col(MessageRecord.id).desc())
        .limit(1)
    ).first()


def mark_fetched(session: Session, ids: list[int]) -> None:
    """Messages a shopper's client fetched (the web chat's) are delivered."""
    for row in session.exec(select(MessageRecord).where(col(MessageRecord.id).in_(ids))).all():
        if row.status == "pending":
            row.status = "delivered"


def conversation_channel(customer: Customer | None) -> str:
    """Where the shopper's conversation is going on: the channel they wrote on last."""
    return (customer.last_channel if customer else None) or HOME_CHANNEL


def update_channel(customer: Customer | None) -> str:
    """Where the shop's own messages go: the shopper's chosen channel for updates, else the one
    they wrote on last, else the web chat (where it waits for their return)."""
    return (customer.preferred_channel if customer else None) or conversation_channel(customer)


def queue_to_customer(
    session: Session,
    customer_id: str,
    key: str,
    message: OutboundMessage,
    channel: str | None = None,
    address: str | None = None,
) -> MessageRecord | None:
    """A message the shop sends on its own, at most once per `key`: on `channel`, or else on the
    shopper's chosen channel for updates, or else the one they last used; to `address`, or else
    the one they last wrote from there. None if already queued."""
    if session.exec(select(MessageRecord.id).where(MessageRecord.idempotency_key == key)).first():
        return None
    customer = session.get(Customer, customer_id)
    channel = channel or update_channel(customer)
    if customer is not None:
        message = replace(message, language=customer.language)
    declared = profile(channel)
    if declared is not None and declared.window is not None and message.session_until is None:
        last_in = session.exec(
            select(func.max(MessageRecord.created_at)).where(
                MessageRecord.customer_id == customer_id,
                MessageRecord.channel == channel,
                MessageRecord.direction == "in",
            )
        ).one()
        if last_in is not None:
            message = replace(message, session_until=as_utc(last_in) + declared.window)
    row = MessageRecord(
        customer_id=customer_id,
        channel=channel,
        address=address or customer_address(session, customer_id, channel),
        direction="out",
        text=message.text,
        payload=message.to_dict(),
        idempotency_key=key,
        status="pending",
    )
    session.add(row)
    return row
