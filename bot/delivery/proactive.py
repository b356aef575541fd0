"""Messages the shop starts: each one to one shopper passes the policy gate and is then queued
in the outbox, or recorded as skipped with the reason. A key per (source, shopper) makes
queueing idempotent, so a crash and a re-run never send twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.channel import HOME_CHANNEL, profile, pushable
from bot.delivery import clicks
from bot.delivery.policy import (
    CAP_PERIOD,
    MARKETING,
    POLICY,
    WINDOW_REASONS,
    Policy,
    Recipient,
    Verdict,
    choose_channel,
    reaches_web,
)
from bot.messages import OutboundMessage
from bot.store.database import among, insert_many
from bot.store.models import AnalyticsEvent, ChannelIdentity, Customer, Dispatch, MessageRecord, as_utc


@dataclass(frozen=True)
class Planned:
    """What to send one recipient; `template` is used where the window has closed."""

    customer_id: str
    message: OutboundMessage
    template: OutboundMessage | None = None


def recipients(
    session: Session, customer_ids: Sequence[str], now: datetime, channel: str | None = None, purpose: str = MARKETING
) -> dict[str, Recipient]:
    """The gate's facts for these customers, read set-wise (a few queries per batch), on the
    channel `purpose` would use (see `policy.choose_channel`), unless `channel` says which."""
    if not customer_ids:
        return {}
    table = Customer.__table__  # rows, not models: a batch is hundreds of shoppers
    customers = (
        session.connection()
        .execute(
            sa_select(
                table.c.id,
                table.c.preferred_channel,
                table.c.last_channel,
                table.c.language,
                table.c.timezone,
                table.c.marketing_consent,
                table.c.sms_opted_out,
                table.c.erased_at,
            ).where(among(session, table.c.id, customer_ids))
        )
        .all()
    )
    identities: dict[tuple[str, str], str] = {}
    for row in session.exec(
        select(ChannelIdentity.customer_id, ChannelIdentity.channel, ChannelIdentity.address).where(
            among(session, ChannelIdentity.customer_id, customer_ids)
        )
    ).all():
        identities[(row[0], row[1])] = row[2]
    last_in: dict[tuple[str, str], datetime] = {
        (row[0], row[1]): row[2]
        for row in session.exec(
            select(MessageRecord.customer_id, MessageRecord.channel, func.max(MessageRecord.created_at))
            .where(among(session, MessageRecord.customer_id, customer_ids), MessageRecord.direction == "in")
            .group_by(MessageRecord.customer_id, MessageRecord.channel)
        ).all()
    }
    recent = dict(
        session.exec(
            select(Dispatch.customer_id, func.count())
            .where(
                among(session, Dispatch.customer_id, customer_ids),
                col(Dispatch.marketing).is_(True),
                Dispatch.status == "queued",
                Dispatch.created_at > now - CAP_PERIOD,
            )
            .group_by(Dispatch.customer_id)
        ).all()
    )
    web = reaches_web(purpose)
    result = {}
    for c in customers:
        name = channel or c.preferred_channel or c.last_channel
        if web and channel is None:
            used = sorted(
                (n for n in pushable() if (c.id, n) in last_in), key=lambda n: last_in[(c.id, n)], reverse=True
            )
            name = choose_channel(purpose, name, used, (c.id, HOME_CHANNEL) in identities)
        # A notice the phone channel cannot take (its window closed) waits in the web chat instead.
        fallback = (
            _recipient(c, HOME_CHANNEL, identities, last_in, recent)
            if web and name != HOME_CHANNEL and (c.id, HOME_CHANNEL) in identities
            else None
        )
        result[c.id] = _recipient(c, name, identities, last_in, recent, fallback)
    return result


def _space(channel: str) -> str:
    """Where the channel's addresses are stored (WhatsApp's and SMS's: with the phone numbers)."""
    declared = profile(channel)
    return declared.address_space or channel if declared else channel


def _recipient(
    c, name: str | None, identities: dict, last_in: dict, recent: dict, fallback: Recipient | None = None
) -> Recipient:
    inbound = last_in.get((c.id, name)) if name else None
    return Recipient(
        customer_id=c.id,
        channel=name,
        address=identities.get((c.id, _space(name))) if name else None,
        language=c.language,
        timezone=c.timezone,
        consent=c.marketing_consent,
        sms_opted_out=c.sms_opted_out,
        erased=c.erased_at is not None,
        last_inbound_at=_utc(inbound),
        recent_marketing=recent.get(c.id, 0),
        fallback=fallback,
    )


def notice_channel(session: Session, customer_id: str, purpose: str, now: datetime) -> str | None:
    """Where a message of `purpose` to this shopper would go now (None: nowhere)."""
    who = recipients(session, [customer_id], now, purpose=purpose).get(customer_id)
    return who.channel if who is not None else None


def queue(
    session: Session,
    policy: Policy,
    source: str,
    source_id: int,
    step: int,
    plans: Sequence[Planned],
    purpose: str,
    now: datetime,
    channel: str | None = None,
    on_queued: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Gate and queue one message per plan; plans whose key exists already are left alone.
    A queued message that carries its tracked link (`bot/delivery/clicks.py`) is an impression
    for the dashboard. Returns counts by outcome ("queued", or the skip reason)."""
    keys = {p.customer_id: dispatch_key(source, source_id, step, p.customer_id) for p in plans}
    done = set(session.exec(select(Dispatch.key).where(among(session, Dispatch.key, keys.values()))).all())
    todo = [p for p in plans if keys[p.customer_id] not in done]
    facts = recipients(session, [p.customer_id for p in todo], now, channel, purpose)
    counts: dict[str, int] = {}
    dispatches, records, shown = [], [], []
    for plan in todo:
        who = facts.get(plan.customer_id)
        if who is None:
            continue
        verdict = policy.check(who, purpose, plan.template is not None, now)
        if not verdict.send and verdict.reason in WINDOW_REASONS and who.fallback is not None:
            verdict = policy.check(who.fallback, purpose, False, now)
            who = who.fallback
        outcome = "queued" if verdict.send else verdict.reason
        assert outcome is not None  # a verdict that does not send says why
        counts[outcome] = counts.get(outcome, 0) + 1
        key = keys[plan.customer_id]
        dispatches.append(
            {
                "key": key,
                "source": source,
                "source_id": source_id,
                "step": step,
                "customer_id": who.customer_id,
                "channel": who.channel,
                "marketing": POLICY[purpose].capped,
                "status": "queued" if verdict.send else "skipped",
                "reason": verdict.reason,
                "created_at": now,
            }
        )
        if verdict.send:
            message = replace(_message(plan, verdict, purpose), language=who.language)
            # The outbox record shares the dispatch's key: that is what makes queueing idempotent.
            records.append(
                {
                    "customer_id": who.customer_id,
                    "channel": who.channel,
                    "address": who.address,
                    "direction": "out",
                    "text": message.text,
                    "payload": message.to_dict(),
                    "idempotency_key": key,
                    "status": "pending",
                    "attempts": 0,
                    "parts_sent": 0,
                    "next_attempt_at": verdict.not_before,
                    "created_at": now,
                }
            )
            if source in clicks.TRACKED and _carries(message, key):
                assert who.channel is not None  # a verdict that sends has a channel
                shown.append(clicks.impression(key, source, who.customer_id, who.channel, who.language, now))
            if on_queued is not None:
                on_queued(plan.customer_id)
    # Bulk inserts: a campaign queues hundreds of thousands of these.
    insert_many(session, Dispatch.__table__, dispatches)
    insert_many(session, MessageRecord.__table__, records)
    insert_many(session, AnalyticsEvent.__table__, shown)
    return counts


def dispatch_key(source: str, source_id: int, step: int, customer_id: str) -> str:
    """The key of one message the shop starts: its dispatch's, its outbox record's, its link's."""
    return f"{source}:{source_id}:{step}:{customer_id}"


def _carries(message: OutboundMessage, key: str) -> bool:
    """The message holds its tracked link (a template may not)."""
    found = clicks.path(key)
    return found in (message.text or "") or any(found in link.url for link in message.links)


def _message(plan: Planned, verdict: Verdict, purpose: str) -> OutboundMessage:
    message = plan.template if verdict.use_template and plan.template is not None else plan.message
    return replace(message, kind=POLICY[purpose].kind)


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None
