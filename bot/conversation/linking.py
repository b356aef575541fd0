"""One shopper across channels: link tokens and codes, merging two customers into one, and
what a shopper may see of, or erase from, their own data."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonpickle
from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, func, select

from bot.channel import HOME_CHANNEL
from bot.delivery.policy import REQUESTED
from bot.delivery.proactive import notice_channel
from bot.i18n import EN, has_text, language_of, text_in
from bot.messages import Choice, OutboundMessage
from bot.store.database import Database
from bot.store.models import (
    AnalyticsEvent,
    Cart,
    CartItem,
    ChannelIdentity,
    ContactCheck,
    Customer,
    HandoffEvent,
    HandoffTicket,
    LinkAttempt,
    LinkToken,
    MergeRecord,
    MessageRecord,
    Order,
    StateRecord,
    Variant,
    WaitlistEntry,
    as_utc,
    utcnow,
)

TOKEN_RE = re.compile(r"link[\s-]*code:?\s*([A-Za-z0-9_-]{16,40})", re.I)
REF_PREFIX = "link-"
CODE_RE = re.compile(r"^\s*(\d{6})\s*$")
WRONG_CODE_WINDOW = timedelta(minutes=10)
MAX_WRONG_CODES = 5  # wrong codes or tokens from one sender (channel + address) per window
# A wide guessing run on one channel (many numbers, a few guesses each): once this many wrong
# codes arrived there within the window, a sender who has already guessed wrong gets fewer tries.
# A sender with no wrong attempt is never held back, so a shopper with the right code still links.
ATTACK_WRONG_CODES = 100
MAX_WRONG_CODES_UNDER_ATTACK = 2
MAX_TOKEN_FAILURES = 3  # failed attempts naming one token (wrong channel, taken, expired): then it is dead
# The buttons of the confirmation question. Plain words count only as an answer to that question
# when it is the last thing this chat was asked.
CONFIRM, CANCEL = "/link_confirm", "/link_cancel"
YES_WORDS = frozenset(
    {"yes", "y", "yeah", "yep", "sure", "ok", "okay", "是", "是的", "好", "好的", "對", "要", "可以", "確定"}
)
NO_WORDS = frozenset({"no", "n", "nope", "cancel", "否", "不", "不是", "不要", "不用", "取消", "算了"})
_ANSWER_STRIP = " .!?。！？～~，,"


# A channel's one-tap link: (token, text to send, ref to carry) -> the link, or None.
DeepLink = Callable[[str, str, str], str | None]


class LinkTargets:
    """Where a shopper can continue: the channels that can build a one-tap link (each builds its
    own: `ChannelAdapter.deep_link`), in the order they are offered."""

    def __init__(self, links: dict[str, DeepLink]) -> None:
        self._links = {name: link for name, link in links.items() if link("", "", "") is not None}

    def available(self) -> list[str]:
        return list(self._links)

    def url(self, channel: str, token: str) -> str | None:
        link = self._links.get(channel)
        return link(token, f"Hi! Link code: {token}", f"{REF_PREFIX}{token}") if link else None


@dataclass(frozen=True)
class LinkOffer:
    channel: str
    url: str | None
    code: str
    minutes: int


@dataclass(frozen=True)
class LinkResult:
    """What became of a link attempt or of the answer to the confirmation question."""

    status: str  # confirm | linked | same | declined | stale | expired | used | blocked | invalid | rate_limited
    kept_id: str | None = None
    from_channel: str | None = None
    origin_address: str | None = None  # for `confirm`: the chat that asked for the link
    asked_at: datetime | None = None  # for `confirm`: when it did
    wait_minutes: int = 0  # for `rate_limited`


@dataclass(frozen=True)
class PendingLink:
    """A token that arrived in a chat and waits for that chat's Yes or No."""

    token_id: int
    owner_id: str


def find_token(text: str, extra: dict[str, str] | None = None) -> tuple[str, str] | None:
    """("token", value) or ("code", digits) when a message is a link attempt."""
    ref = (extra or {}).get("ref", "")
    if ref.startswith(REF_PREFIX):
        return "token", ref.removeprefix(REF_PREFIX)
    if match := TOKEN_RE.search(text or ""):
        return "token", match.group(1)
    if match := CODE_RE.match(text or ""):
        return "code", match.group(1)
    return None


def _word(text: str) -> str:
    return (text or "").strip().strip(_ANSWER_STRIP).lower()


def may_answer(text: str, numbered: bool) -> bool:
    """Cheap first look: could this message answer a confirmation question? (Only then is the
    store asked whether one is waiting, so other turns pay nothing.)"""
    word = _word(text)
    if word in (CONFIRM, CANCEL) or word in YES_WORDS or word in NO_WORDS:
        return True
    return numbered and word.isascii() and word.isdecimal() and len(word) <= 2


def answer(text: str, offered: list[str]) -> bool | None:
    """True for Yes, False for No, None when the message is not an answer to the question.

    `offered` are the values of the options this chat was shown last (after a numbered reply has
    been turned into its option's value): a bare "yes" answers the question only when the
    question is what the chat was asked last, never a question from earlier."""
    word = _word(text)
    if word in (CONFIRM, CANCEL):
        return word == CONFIRM
    if CONFIRM not in offered:
        return None
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    return None


def create_link(
    session: Session,
    customer_id: str,
    channel: str,
    targets: LinkTargets,
    ttl: timedelta = timedelta(minutes=10),
    origin: tuple[str, str] | None = None,
) -> LinkOffer:
    """A token and a code for `channel`. `origin` is the chat asking (channel, address); without
    it, the chat of the customer's latest message, which is the one whose turn is running."""
    now = utcnow()
    # Codes are unique among live tokens, so a typed code names exactly one shopper.
    while True:
        code = f"{secrets.randbelow(1_000_000):06d}"
        clash = session.exec(
            select(LinkToken.id).where(
                LinkToken.code == code, col(LinkToken.used_at).is_(None), LinkToken.expires_at > now
            )
        ).first()
        if clash is None:
            break
    asker: tuple[str, str | None] | None = origin
    if asker is None:
        asker = session.exec(
            select(MessageRecord.channel, MessageRecord.address)
            .where(MessageRecord.customer_id == customer_id, MessageRecord.direction == "in")
            .order_by(col(MessageRecord.id).desc())
        ).first()
    token = secrets.token_urlsafe(16)  # 128 bits
    session.add(
        LinkToken(
            token=token,
            code=code,
            customer_id=customer_id,
            target_channel=channel,
            expires_at=now + ttl,
            created_at=now,
            origin_channel=asker[0] if asker else None,
            origin_address=asker[1] if asker else None,
        )
    )
    return LinkOffer(channel, targets.url(channel, token), code, int(ttl.total_seconds() // 60))


def _wait_minutes(session: Session, kind: str, channel: str, address: str, now: datetime) -> int | None:
    """Minutes this sender must wait before another try, or None when it may try now."""
    mine = session.exec(
        select(LinkAttempt.created_at)
        .where(
            LinkAttempt.channel == channel,
            LinkAttempt.address == address,
            LinkAttempt.created_at > now - WRONG_CODE_WINDOW,
        )
        .order_by(col(LinkAttempt.created_at))
    ).all()
    if not mine:
        return None  # whatever else is going on, a sender who never guessed wrong may try
    limit = MAX_WRONG_CODES
    if kind == "code" and len(mine) >= MAX_WRONG_CODES_UNDER_ATTACK:
        everyone = session.exec(
            select(func.count())
            .select_from(LinkAttempt)
            .where(LinkAttempt.channel == channel, LinkAttempt.created_at > now - WRONG_CODE_WINDOW)
        ).one()
        if everyone >= ATTACK_WRONG_CODES:
            limit = MAX_WRONG_CODES_UNDER_ATTACK
    if len(mine) < limit:
        return None
    # The sender may try again once enough of its wrong attempts have left the window.
    free_at = as_utc(mine[len(mine) - limit]) + WRONG_CODE_WINDOW
    return max(1, math.ceil((free_at - now).total_seconds() / 60))


def _refusal(link: LinkToken | None, kind: str, channel: str, address: str, now: datetime) -> str | None:
    """Why this token or code cannot be claimed from this chat, or None when it can."""
    # A code only works on the channel it was made for (never on the web chat, where a new
    # session costs nothing), so it cannot be guessed from a stream of fresh sessions.
    if link is None or (kind == "code" and (channel == HOME_CHANNEL or link.target_channel != channel)):
        return "invalid"
    if link.used_at is not None:
        return "used"
    if as_utc(link.expires_at) <= now:
        return "expired"
    if link.failures >= MAX_TOKEN_FAILURES:
        return "blocked"
    if link.claimed_at is not None and (link.claimed_channel, link.claimed_address) != (channel, address):
        return "used"  # it arrived in another chat first
    return None


def claim(
    session: Session, kind: str, value: str, channel: str, address: str, customer_id: str, message_id: int
) -> LinkResult:
    """A token or code arrived in a chat: refuse it, or hold it there for that chat's confirmation.
    Nothing is merged here; see `confirm`."""
    now = utcnow()
    wait = _wait_minutes(session, kind, channel, address, now)
    if wait is not None:
        return LinkResult("rate_limited", wait_minutes=wait)
    column = LinkToken.token if kind == "token" else LinkToken.code
    link = session.exec(select(LinkToken).where(column == value).order_by(col(LinkToken.id).desc())).first()
    refusal = _refusal(link, kind, channel, address, now)
    if refusal is None and link is not None and link.customer_id == customer_id:
        link.used_at, link.outcome = now, "same"
        return LinkResult("same", customer_id, link.origin_channel)
    if refusal is None and link is not None and link.claimed_at is None:
        # Conditional, so two processes receiving it from two chats at once agree on one.
        taken = session.exec(
            update(LinkToken)
            .where(col(LinkToken.id) == link.id, col(LinkToken.claimed_at).is_(None))
            .values(
                claimed_channel=channel,
                claimed_address=address,
                claimed_customer_id=customer_id,
                claimed_at=now,
                claimed_message_id=message_id,
            )
        ).rowcount
        refusal = None if taken else "used"
    if refusal is not None:
        session.add(LinkAttempt(channel=channel, address=address, created_at=now))
        if link is not None:
            session.execute(
                update(LinkToken).where(col(LinkToken.id) == link.id).values(failures=LinkToken.failures + 1)
            )
        return LinkResult(refusal)
    assert link is not None  # `_refusal` refuses a missing token
    return LinkResult("confirm", link.customer_id, link.origin_channel, link.origin_address, as_utc(link.created_at))


def pending_claim(session: Session, channel: str, address: str, message_id: int) -> PendingLink | None:
    """The token waiting for this chat's answer (or already confirmed by this very message)."""
    row = session.exec(
        select(LinkToken.id, LinkToken.customer_id)
        .where(
            LinkToken.claimed_channel == channel,
            LinkToken.claimed_address == address,
            or_(col(LinkToken.used_at).is_(None), col(LinkToken.confirmed_message_id) == message_id),
        )
        .order_by(col(LinkToken.claimed_at).desc(), col(LinkToken.id).desc())
    ).first()
    if row is None:
        return None
    token_id, owner_id = row
    assert token_id is not None  # a stored row has its id
    return PendingLink(token_id, owner_id)


def confirm(
    session: Session, pending: PendingLink, yes: bool, channel: str, address: str, customer_id: str, message_id: int
) -> LinkResult:
    """This chat's answer to the confirmation question: Yes merges (in the caller's transaction,
    both customers' turn locks held), No spends the token."""
    now = utcnow()
    link = session.get(LinkToken, pending.token_id)
    if link is not None and link.confirmed_message_id == message_id:  # this Yes ran before
        return LinkResult("linked", link.customer_id, link.origin_channel)
    if (
        link is None
        or link.used_at is not None
        or link.customer_id != pending.owner_id
        or (link.claimed_channel, link.claimed_address) != (channel, address)
    ):
        return LinkResult("stale")
    if not yes:
        link.used_at, link.outcome = now, "declined"
        return LinkResult("declined")
    if as_utc(link.expires_at) <= now:
        return LinkResult("expired")
    link.used_at, link.confirmed_message_id = now, message_id
    if link.customer_id == customer_id:  # joined meanwhile by another link
        link.outcome = "same"
        return LinkResult("same", customer_id, link.origin_channel)
    link.outcome = "linked"
    # A chat whose first words were the link says nothing yet of the shopper's language.
    spoke = session.exec(
        select(MessageRecord.id)
        .where(
            MessageRecord.customer_id == customer_id,
            MessageRecord.direction == "in",
            col(MessageRecord.id) < (link.claimed_message_id or 0),
        )
        .limit(1)
    ).first()
    merge(
        session, keep_id=link.customer_id, drop_id=customer_id, current_channel=channel, drop_language=spoke is not None
    )
    return LinkResult("linked", link.customer_id, link.origin_channel)


def _reply_language(session: Session, result: LinkResult, customer_id: str, message_id: int | None) -> str:
    """The language of the chat being answered; a chat with nothing said before the link yet
    is read by the shopper who asked for it, so it gets theirs."""
    customer = session.get(Customer, customer_id)
    lang = customer.language if customer is not None else "en"
    if result.status == "confirm" and message_id is not None and result.kept_id:
        earlier = session.exec(
            select(MessageRecord.id)
            .where(MessageRecord.customer_id == customer_id, col(MessageRecord.id) < message_id)
            .limit(1)
        ).first()
        owner = session.get(Customer, result.kept_id)
        if earlier is None and owner is not None:
            lang = owner.language
    return language_of(lang)


def _local_time(moment: datetime, zone: str, now: datetime) -> str:
    local, today = moment.astimezone(ZoneInfo(zone)), now.astimezone(ZoneInfo(zone))
    return local.strftime("%H:%M") if local.date() == today.date() else local.strftime("%Y-%m-%d %H:%M")


def result_reply(
    session: Session, result: LinkResult, customer_id: str, default_zone: str, message_id: int | None = None
) -> OutboundMessage:
    """What the chat is told after a link attempt or an answer, in its language. The question
    names the other chat (a number masked) and the time, and nothing of its cart or address."""
    lang = _reply_language(session, result, customer_id, message_id)
    if result.status == "confirm":
        customer = session.get(Customer, customer_id)
        zone = (customer.timezone if customer is not None and customer.timezone else None) or default_zone
        address = mask(result.origin_address) if result.origin_address else ""
        assert result.asked_at is not None  # `claim` gives a "confirm" result the time of the request
        asked = f"link.asked.{result.from_channel}"
        other = text_in(lang, asked if has_text(asked) else "link.asked.other", address=address).strip()
        question = text_in(lang, "link.confirm", other=other, time=_local_time(result.asked_at, zone, utcnow()))
        return OutboundMessage(
            text=question, choices=(Choice(text_in(lang, "btn.yes"), CONFIRM), Choice(text_in(lang, "btn.no"), CANCEL))
        )
    if result.status in ("linked", "same"):
        items = (
            session.exec(
                select(func.sum(CartItem.quantity))
                .join(Cart, col(Cart.id) == CartItem.cart_id)
                .where(Cart.customer_id == customer_id, Cart.status == "open")
            ).one()
            or 0
        )
        where = text_in(lang, _from_key(result.from_channel, "link.from.other"))
        cart = text_in(lang, "link.cart", items=items, s="s" * (items != 1)) if items else ""
        key = "link.linked_resume" if _has_dialog(session, customer_id) else "link.linked"
        return OutboundMessage(text=text_in(lang, key, where=where, cart=cart))
    if result.status == "rate_limited":
        minutes = result.wait_minutes
        return OutboundMessage(text=text_in(lang, "link.rate_limited", minutes=minutes, s="s" * (minutes != 1)))
    return OutboundMessage(text=text_in(lang, f"link.{result.status}"))


def _from_key(channel: str | None, other: str) -> str:
    """The text key naming the chat of `channel` in a sentence ("web chat", "簡訊"), else `other`."""
    key = f"link.from.{channel}"
    return key if channel and has_text(key) else other


def _has_dialog(session: Session, customer_id: str) -> bool:
    row = session.get(StateRecord, f"conversation/{customer_id}")
    if row is None:
        return False
    state = jsonpickle.decode(row.data)
    dialog_state = state.get("DialogState") if isinstance(state, dict) else None
    stack = getattr(dialog_state, "dialog_stack", None) or []
    # The root dialog is always there; a journey underneath means a conversation in progress.
    root = stack[0] if stack else None
    inner = (getattr(root, "state", None) or {}).get("dialogs") if root else None
    return bool(getattr(inner, "dialog_stack", None))


def _merge_tickets(session: Session, keep_id: str, drop_id: str) -> int:
    """Handoff tickets follow the shopper. One open ticket per customer: if both had one, the
    earlier stays open and the other is closed into it."""
    open_ones = session.exec(
        select(HandoffTicket).where(col(HandoffTicket.open_key).in_([keep_id, drop_id])).order_by(col(HandoffTicket.id))
    ).all()
    for extra in open_ones[1:]:
        extra.status, extra.open_key, extra.resolved_at = "resolved", None, utcnow()
        extra.summary = {**(extra.summary or {}), "merged_into": open_ones[0].id}
    session.flush()
    moved = session.exec(
        update(HandoffTicket).where(col(HandoffTicket.customer_id) == drop_id).values(customer_id=keep_id)
    ).rowcount
    if open_ones:
        session.flush()
        open_ones[0].open_key = keep_id
    return moved


def merge(
    session: Session, keep_id: str, drop_id: str, current_channel: str, drop_language: bool = True
) -> MergeRecord:
    """Fold customer `drop_id` into `keep_id`, in the caller's transaction. The language of the
    chat in use wins unless `drop_language` is False (that chat has not said anything yet)."""
    keep, drop = session.get(Customer, keep_id), session.get(Customer, drop_id)
    if keep is None or drop is None:
        raise LookupError(f"cannot merge customer {drop_id} into {keep_id}: no such customer")
    summary: dict[str, Any] = {}
    summary["identities"] = session.exec(
        update(ChannelIdentity).where(col(ChannelIdentity.customer_id) == drop_id).values(customer_id=keep_id)
    ).rowcount
    summary["cart_items"] = _merge_carts(session, keep_id, drop_id)
    for model, key in (
        (Order, "orders"),
        (MessageRecord, "messages"),
        (WaitlistEntry, "waitlist"),
        (LinkToken, "link_tokens"),
        (AnalyticsEvent, "analytics_events"),  # one shopper's conversations, for the dashboard
        (ContactCheck, "contact_checks"),
    ):
        summary[key] = session.exec(
            update(model).where(col(model.customer_id) == drop_id).values(customer_id=keep_id)
        ).rowcount
    session.execute(
        update(LinkToken).where(col(LinkToken.claimed_customer_id) == drop_id).values(claimed_customer_id=keep_id)
    )
    # Consent: the stricter wins; an opt-out anywhere stays.
    if keep.marketing_consent is False or drop.marketing_consent is False:
        keep.marketing_consent = False
    elif drop.marketing_consent:
        keep.marketing_consent = True
    keep.sms_opted_out = keep.sms_opted_out or drop.sms_opted_out
    for name in (
        "shipping_address",
        "receipt_contact",
        "email",
        "phone",
        "display_name",
        "timezone",
        "preferred_channel",
        "stripe_customer_id",
        "commerce_customer_id",
    ):
        if getattr(keep, name) is None and getattr(drop, name) is not None:
            setattr(keep, name, getattr(drop, name))
    if drop_language and drop.last_channel == current_channel:
        keep.language = drop.language
    keep.last_channel, keep.last_active_at = current_channel, utcnow()
    # Dialog state: the conversation on the channel in use now wins, if it has one going.
    drop_state = session.get(StateRecord, f"conversation/{drop_id}")
    if drop_state is not None:
        if _has_dialog(session, drop_id) or session.get(StateRecord, f"conversation/{keep_id}") is None:
            session.execute(delete(StateRecord).where(col(StateRecord.key) == f"conversation/{keep_id}"))
            session.flush()
            drop_state.key = f"conversation/{keep_id}"
            summary["dialog_state"] = "current channel"
        else:
            session.delete(drop_state)
            summary["dialog_state"] = "kept"
    session.execute(update(Cart).where(col(Cart.customer_id) == drop_id).values(customer_id=keep_id))
    summary["handoff_tickets"] = _merge_tickets(session, keep_id, drop_id)
    session.flush()
    session.delete(drop)
    record = MergeRecord(kept_id=keep_id, merged_id=drop_id, summary=summary)
    session.add(record)
    session.flush()
    return record


def _merge_carts(session: Session, keep_id: str, drop_id: str) -> int:
    carts = {
        cid: session.exec(
            select(Cart).where(Cart.customer_id == cid, Cart.status == "open").order_by(col(Cart.id))
        ).first()
        for cid in (keep_id, drop_id)
    }
    source, target = carts[drop_id], carts[keep_id]
    if source is None:
        return 0
    if target is None:
        source.customer_id = keep_id
        return len(session.exec(select(CartItem).where(CartItem.cart_id == source.id)).all())
    assert target.id is not None  # a stored cart has its id
    moved = 0
    for item in session.exec(select(CartItem).where(CartItem.cart_id == source.id)).all():
        existing = session.exec(
            select(CartItem).where(CartItem.cart_id == target.id, CartItem.variant_sku == item.variant_sku)
        ).first()
        variant = session.get(Variant, item.variant_sku)
        assert variant is not None  # a cart item's variant is a foreign key
        stock = variant.stock
        if existing is not None:  # quantities add up, as far as the stock goes
            existing.quantity = min(existing.quantity + item.quantity, max(stock, existing.quantity))
            session.delete(item)
        elif stock > 0:
            item.cart_id, item.quantity = target.id, min(item.quantity, stock)
        else:
            session.delete(item)
            continue
        moved += 1
    source.status = "merged"
    target.updated_at = utcnow()
    return moved


def mask(address: str) -> str:
    """Enough of an address to recognise it, never all of a phone number."""
    digits = address.removeprefix("whatsapp:")
    if digits.startswith("+"):
        return f"{digits[:3]}•••{digits[-2:]}"
    return f"{digits[:2]}•••{digits[-2:]}" if len(digits) > 4 else "•••"


def _channel_in_list(channel: str) -> str:
    """A chat in the shopper's data, in English as the rest of it ("web chat", "phone (WhatsApp/SMS)")."""
    key = _from_key(channel, "")
    return text_in(EN, key) if key else channel


def describe(session: Session, customer_id: str) -> dict[str, Any]:
    """What the shop keeps about a shopper, for the shopper."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    identities = session.exec(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id)).all()
    messages = session.exec(
        select(func.count()).select_from(MessageRecord).where(MessageRecord.customer_id == customer_id)
    ).one()
    orders = session.exec(select(func.count()).select_from(Order).where(Order.customer_id == customer_id)).one()
    return {
        "channels": [f"{_channel_in_list(i.channel)} {mask(i.address)}" for i in identities],
        "language": customer.language,
        "shipping_address": customer.shipping_address,
        "marketing": {True: "subscribed", False: "unsubscribed", None: "not asked"}[customer.marketing_consent],
        "updates": customer.preferred_channel or customer.last_channel,
        "messages": messages,
        "orders": orders,
    }


def forget(session: Session, customer_id: str) -> dict[str, int]:
    """Erase a shopper: identities, transcript, carts, waitlist and state go; orders stay for
    the shop's records, without personal details."""
    counts = {}
    for model, key in (
        (ChannelIdentity, "identities"),
        (MessageRecord, "messages"),
        (WaitlistEntry, "waitlist"),
        (LinkToken, "link_tokens"),
        (ContactCheck, "contact_checks"),
    ):
        counts[key] = session.exec(delete(model).where(col(model.customer_id) == customer_id)).rowcount
    # Links that arrived in this shopper's chats belong to someone else; only the chat's address goes.
    session.execute(
        update(LinkToken)
        .where(col(LinkToken.claimed_customer_id) == customer_id)
        .values(claimed_address=None, claimed_customer_id=None, used_at=func.coalesce(LinkToken.used_at, utcnow()))
    )
    cart_ids = session.exec(select(Cart.id).where(Cart.customer_id == customer_id)).all()
    if cart_ids:
        session.execute(delete(CartItem).where(col(CartItem.cart_id).in_(cart_ids)))
        session.execute(delete(Cart).where(col(Cart.id).in_(cart_ids)))
    counts["orders_anonymised"] = session.exec(
        update(Order).where(col(Order.customer_id) == customer_id).values(shipping_address="", receipt_contact=None)
    ).rowcount
    # Handoff tickets stay for the service figures (times, ratings), without what was said.
    ticket_ids = session.exec(select(HandoffTicket.id).where(HandoffTicket.customer_id == customer_id)).all()
    if ticket_ids:
        session.execute(update(HandoffTicket).where(col(HandoffTicket.id).in_(ticket_ids)).values(summary={}))
        session.execute(update(HandoffEvent).where(col(HandoffEvent.ticket_id).in_(ticket_ids)).values(text=None))
    counts["handoff_tickets_anonymised"] = len(ticket_ids)
    # The conversation state is not deleted here: the turn asking for this is still running and
    # ends its dialog; `PrivacyDialog` clears what the conversation remembered.
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    for name in (
        "display_name",
        "email",
        "phone",
        "shipping_address",
        "receipt_contact",
        "timezone",
        "preferred_channel",
        "last_channel",
        "stripe_customer_id",  # the shop's link to their Stripe Customer (Stripe keeps its own records)
        "commerce_customer_id",  # and to the commerce platform's customer
    ):
        setattr(customer, name, None)
    customer.marketing_consent = False
    customer.erased_at = utcnow()
    return counts


class ShopperAccounts:
    """What dialogs may do with a shopper's identity: offer a link elsewhere, show or erase data."""

    def __init__(self, db: Database, targets: LinkTargets, ttl: timedelta = timedelta(minutes=10)) -> None:
        self._db = db
        self._targets = targets
        self._ttl = ttl

    def channels(self) -> list[str]:
        return self._targets.available()

    async def offer(self, customer_id: str, channel: str, origin: tuple[str, str] | None = None) -> LinkOffer:
        """A link for `channel`, asked for from the chat `origin` (channel, address) when known."""
        return await self._db.run(lambda s: create_link(s, customer_id, channel, self._targets, self._ttl, origin))

    async def describe(self, customer_id: str) -> dict[str, Any]:
        return await self._db.run(lambda s: describe(s, customer_id))

    async def notice_channel(self, customer_id: str) -> str | None:
        """Where a notice this shopper asks for (back in stock) would reach them: a phone
        channel, "web" (it waits in the web chat for their return) or None."""
        return await self._db.run(lambda s: notice_channel(s, customer_id, REQUESTED, utcnow()))

    async def prefer_current(self, customer_id: str) -> str | None:
        """Send this shopper's updates to the channel they are writing on now."""

        def prefer(session: Session) -> str | None:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise LookupError(f"no customer {customer_id}")
            customer.preferred_channel = customer.last_channel
            return customer.preferred_channel

        return await self._db.run(prefer)

    async def forget(self, customer_id: str) -> dict[str, int]:
        return await self._db.run(lambda s: forget(s, customer_id))
