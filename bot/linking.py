"""One shopper across channels: link tokens and codes, merging two customers into one, and
what a shopper may see of, or erase from, their own data."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import jsonpickle
from sqlalchemy import delete, update
from sqlmodel import Session, func, select

from bot.policy import REQUESTED
from bot.proactive import notice_channel
from bot.store.models import (
    Cart,
    CartItem,
    ChannelIdentity,
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
MAX_WRONG_CODES = 5
MAX_WRONG_CODES_PER_CHANNEL = 200  # all addresses together: a wide guessing run stops codes a while
WRONG_CODE_WINDOW = timedelta(minutes=10)
CHANNEL_NAMES = {"whatsapp": "WhatsApp", "messenger": "Messenger", "sms": "SMS", "web": "web chat"}


@dataclass(frozen=True)
class LinkTargets:
    """Where a shopper can continue, and how to build the one-tap link for each."""

    base_url: str
    whatsapp_from: str | None = None
    sms_from: str | None = None
    messenger_page: str | None = None

    def available(self) -> list[str]:
        return [c for c, ok in (("whatsapp", self.whatsapp_from), ("messenger", self.messenger_page),
                                ("sms", self.sms_from), ("web", True)) if ok]

    def url(self, channel: str, token: str) -> str | None:
        text = f"Hi! Link code: {token}"
        if channel == "whatsapp" and self.whatsapp_from:
            digits = re.sub(r"\D", "", self.whatsapp_from)
            return f"https://wa.me/{digits}?text={quote(text)}"
        if channel == "sms" and self.sms_from:
            return f"sms:{self.sms_from}?&body={quote(text)}"  # "?&" is read by both iOS and Android
        if channel == "messenger" and self.messenger_page:
            return f"https://m.me/{self.messenger_page}?ref={REF_PREFIX}{token}"
        if channel == "web":
            return f"{self.base_url}/?link={token}"
        return None


@dataclass(frozen=True)
class LinkOffer:
    channel: str
    url: str | None
    code: str
    minutes: int


@dataclass(frozen=True)
class LinkResult:
    status: str  # linked | same | expired | used | invalid | rate_limited
    kept_id: str | None = None
    from_channel: str | None = None


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


def create_link(session: Session, customer_id: str, channel: str, targets: LinkTargets,
                ttl: timedelta = timedelta(minutes=10)) -> LinkOffer:
    now = utcnow()
    # Codes are unique among live tokens, so a typed code names exactly one shopper.
    while True:
        code = f"{secrets.randbelow(1_000_000):06d}"
        clash = session.exec(select(LinkToken.id).where(
            LinkToken.code == code, LinkToken.used_at.is_(None), LinkToken.expires_at > now)).first()
        if clash is None:
            break
    token = secrets.token_urlsafe(16)  # 128 bits
    session.add(LinkToken(token=token, code=code, customer_id=customer_id, target_channel=channel,
                          expires_at=now + ttl))
    return LinkOffer(channel, targets.url(channel, token), code, int(ttl.total_seconds() // 60))


def redeem(session: Session, kind: str, value: str, channel: str, address: str, customer_id: str) -> LinkResult:
    """Link the sender's customer with the token's owner; refuses expired, used and wrong tokens,
    and an address that guessed wrong too often."""
    now = utcnow()
    recent = session.exec(select(func.count()).select_from(LinkAttempt).where(
        LinkAttempt.channel == channel, LinkAttempt.address == address,
        LinkAttempt.created_at > now - WRONG_CODE_WINDOW)).one()
    everyone = session.exec(select(func.count()).select_from(LinkAttempt).where(
        LinkAttempt.channel == channel, LinkAttempt.created_at > now - WRONG_CODE_WINDOW)).one()
    if recent >= MAX_WRONG_CODES or (kind == "code" and everyone >= MAX_WRONG_CODES_PER_CHANNEL):
        return LinkResult("rate_limited")
    column = LinkToken.token if kind == "token" else LinkToken.code
    query = select(LinkToken).where(column == value).order_by(LinkToken.id.desc())
    link = session.exec(query).first()
    # A code only works on the channel it was made for (never on the web chat, where a new
    # session costs nothing), so it cannot be guessed from a stream of fresh sessions.
    if link is None or (kind == "code" and (channel == "web" or link.target_channel != channel)):
        session.add(LinkAttempt(channel=channel, address=address))
        return LinkResult("invalid")
    if link.used_at is not None:
        session.add(LinkAttempt(channel=channel, address=address))
        return LinkResult("used")
    if as_utc(link.expires_at) <= now:
        session.add(LinkAttempt(channel=channel, address=address))
        return LinkResult("expired")
    link.used_at = now
    origin = session.exec(select(MessageRecord.channel).where(
        MessageRecord.customer_id == link.customer_id, MessageRecord.direction == "in"
    ).order_by(MessageRecord.id.desc())).first()
    if link.customer_id == customer_id:
        return LinkResult("same", customer_id, origin)
    merge(session, keep_id=link.customer_id, drop_id=customer_id, current_channel=channel)
    return LinkResult("linked", link.customer_id, origin)


def token_owner(session: Session, kind: str, value: str) -> str | None:
    column = LinkToken.token if kind == "token" else LinkToken.code
    return session.exec(select(LinkToken.customer_id).where(column == value).order_by(LinkToken.id.desc())).first()


RESULT_TEXTS = {
    "en": {
        "expired": "That link has expired. Ask for a new one in the chat you came from.",
        "used": "That link was already used. Ask for a new one in the chat you came from.",
        "invalid": "That code isn't right. Check it and try again, or ask for a new one.",
        "rate_limited": "Too many wrong codes from this chat. Please wait 10 minutes and try again.",
        "linked": "You're linked: this chat carries on from {where}. {cart}"
                  "Say “checkout” to finish your order, or ask me anything.",
        "cart": "Your cart has {items} item{s}. ",
    },
    "zh-TW": {
        "expired": "這個連結已過期，請在原本的對話中重新索取。",
        "used": "這個連結已經用過了，請在原本的對話中重新索取。",
        "invalid": "驗證碼不正確，請確認後再試一次，或重新索取。",
        "rate_limited": "這個對話輸入錯誤的次數太多了，請 10 分鐘後再試。",
        "linked": "已連結：這裡接續您在{where}的對話。{cart}輸入「結帳」即可完成訂單，或隨時問我任何問題。",
        "cart": "您的購物車有 {items} 件商品。",
    },
}
CHANNEL_NAMES_ZH = {"whatsapp": "WhatsApp", "messenger": "Messenger", "sms": "簡訊", "web": "網頁聊天"}


def result_text(session: Session, result: LinkResult, customer_id: str) -> str:
    """What the shopper is told after a link attempt, in their language."""
    customer = session.get(Customer, customer_id)
    zh = customer is not None and customer.language.startswith("zh")
    texts = RESULT_TEXTS["zh-TW" if zh else "en"]
    if result.status in ("linked", "same"):
        items = session.exec(select(func.sum(CartItem.quantity)).join(Cart, Cart.id == CartItem.cart_id).where(
            Cart.customer_id == customer_id, Cart.status == "open")).one() or 0
        names = CHANNEL_NAMES_ZH if zh else CHANNEL_NAMES
        where = names.get(result.from_channel or "", "另一個對話" if zh else "your other chat")
        cart = texts["cart"].format(items=items, s="s" * (items != 1)) if items else ""
        return texts["linked"].format(where=where, cart=cart)
    return texts[result.status]


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
    open_ones = session.exec(select(HandoffTicket).where(HandoffTicket.open_key.in_([keep_id, drop_id]))
                             .order_by(HandoffTicket.id)).all()
    for extra in open_ones[1:]:
        extra.status, extra.open_key, extra.resolved_at = "resolved", None, utcnow()
        extra.summary = {**(extra.summary or {}), "merged_into": open_ones[0].id}
    session.flush()
    moved = session.execute(
        update(HandoffTicket).where(HandoffTicket.customer_id == drop_id).values(customer_id=keep_id)).rowcount
    if open_ones:
        session.flush()
        open_ones[0].open_key = keep_id
    return moved


def merge(session: Session, keep_id: str, drop_id: str, current_channel: str) -> MergeRecord:
    """Fold customer `drop_id` into `keep_id`, in the caller's transaction."""
    keep, drop = session.get(Customer, keep_id), session.get(Customer, drop_id)
    summary: dict[str, Any] = {}
    summary["identities"] = session.execute(
        update(ChannelIdentity).where(ChannelIdentity.customer_id == drop_id).values(customer_id=keep_id)).rowcount
    summary["cart_items"] = _merge_carts(session, keep_id, drop_id)
    for model, key in ((Order, "orders"), (MessageRecord, "messages"), (WaitlistEntry, "waitlist"),
                       (LinkToken, "link_tokens")):
        summary[key] = session.execute(
            update(model).where(model.customer_id == drop_id).values(customer_id=keep_id)).rowcount
    # Consent: the stricter wins; an opt-out anywhere stays.
    if keep.marketing_consent is False or drop.marketing_consent is False:
        keep.marketing_consent = False
    elif drop.marketing_consent:
        keep.marketing_consent = True
    keep.sms_opted_out = keep.sms_opted_out or drop.sms_opted_out
    for name in ("shipping_address", "receipt_contact", "email", "phone", "display_name", "timezone",
                 "preferred_channel"):
        if getattr(keep, name) is None and getattr(drop, name) is not None:
            setattr(keep, name, getattr(drop, name))
    keep.language = drop.language if drop.last_channel == current_channel else keep.language
    keep.last_channel, keep.last_active_at = current_channel, utcnow()
    # Dialog state: the conversation on the channel in use now wins, if it has one going.
    drop_state = session.get(StateRecord, f"conversation/{drop_id}")
    if drop_state is not None:
        if _has_dialog(session, drop_id) or session.get(StateRecord, f"conversation/{keep_id}") is None:
            session.execute(delete(StateRecord).where(StateRecord.key == f"conversation/{keep_id}"))
            session.flush()
            drop_state.key = f"conversation/{keep_id}"
            summary["dialog_state"] = "current channel"
        else:
            session.delete(drop_state)
            summary["dialog_state"] = "kept"
    session.execute(update(Cart).where(Cart.customer_id == drop_id).values(customer_id=keep_id))
    summary["handoff_tickets"] = _merge_tickets(session, keep_id, drop_id)
    session.flush()
    session.delete(drop)
    record = MergeRecord(kept_id=keep_id, merged_id=drop_id, summary=summary)
    session.add(record)
    session.flush()
    return record


def _merge_carts(session: Session, keep_id: str, drop_id: str) -> int:
    carts = {cid: session.exec(select(Cart).where(Cart.customer_id == cid, Cart.status == "open")
                               .order_by(Cart.id)).first() for cid in (keep_id, drop_id)}
    source, target = carts[drop_id], carts[keep_id]
    if source is None:
        return 0
    if target is None:
        source.customer_id = keep_id
        return len(session.exec(select(CartItem).where(CartItem.cart_id == source.id)).all())
    moved = 0
    for item in session.exec(select(CartItem).where(CartItem.cart_id == source.id)).all():
        existing = session.exec(select(CartItem).where(
            CartItem.cart_id == target.id, CartItem.variant_sku == item.variant_sku)).first()
        stock = session.get(Variant, item.variant_sku).stock
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


def describe(session: Session, customer_id: str) -> dict[str, Any]:
    """What the shop keeps about a shopper, for the shopper."""
    customer = session.get(Customer, customer_id)
    identities = session.exec(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id)).all()
    messages = session.exec(select(func.count()).select_from(MessageRecord).where(
        MessageRecord.customer_id == customer_id)).one()
    orders = session.exec(select(func.count()).select_from(Order).where(Order.customer_id == customer_id)).one()
    return {
        "channels": [f"{'phone (WhatsApp/SMS)' if i.channel == 'phone' else CHANNEL_NAMES.get(i.channel, i.channel)}"
                     f" {mask(i.address)}" for i in identities],
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
    for model, key in ((ChannelIdentity, "identities"), (MessageRecord, "messages"), (WaitlistEntry, "waitlist"),
                       (LinkToken, "link_tokens")):
        counts[key] = session.execute(delete(model).where(model.customer_id == customer_id)).rowcount
    cart_ids = session.exec(select(Cart.id).where(Cart.customer_id == customer_id)).all()
    if cart_ids:
        session.execute(delete(CartItem).where(CartItem.cart_id.in_(cart_ids)))
        session.execute(delete(Cart).where(Cart.id.in_(cart_ids)))
    counts["orders_anonymised"] = session.execute(
        update(Order).where(Order.customer_id == customer_id).values(shipping_address="", receipt_contact=None)
    ).rowcount
    # Handoff tickets stay for the service figures (times, ratings), without what was said.
    ticket_ids = session.exec(select(HandoffTicket.id).where(HandoffTicket.customer_id == customer_id)).all()
    if ticket_ids:
        session.execute(update(HandoffTicket).where(HandoffTicket.id.in_(ticket_ids)).values(summary={}))
        session.execute(update(HandoffEvent).where(HandoffEvent.ticket_id.in_(ticket_ids)).values(text=None))
    counts["handoff_tickets_anonymised"] = len(ticket_ids)
    # The conversation state is not deleted here: the turn asking for this is still running and
    # ends its dialog; `PrivacyDialog` clears what the conversation remembered.
    customer = session.get(Customer, customer_id)
    for name in ("display_name", "email", "phone", "shipping_address", "receipt_contact", "timezone",
                 "preferred_channel", "last_channel"):
        setattr(customer, name, None)
    customer.marketing_consent = False
    customer.erased_at = utcnow()
    return counts


class ShopperAccounts:
    """What dialogs may do with a shopper's identity: offer a link elsewhere, show or erase data."""

    def __init__(self, db, targets: LinkTargets, ttl: timedelta = timedelta(minutes=10)) -> None:
        self._db = db
        self._targets = targets
        self._ttl = ttl

    def channels(self) -> list[str]:
        return self._targets.available()

    async def offer(self, customer_id: str, channel: str) -> LinkOffer:
        return await self._db.run(lambda s: create_link(s, customer_id, channel, self._targets, self._ttl))

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
            customer.preferred_channel = customer.last_channel
            return customer.preferred_channel

        return await self._db.run(prefer)

    async def forget(self, customer_id: str) -> dict[str, int]:
        return await self._db.run(lambda s: forget(s, customer_id))
