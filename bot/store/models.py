"""SQLModel tables: customers and their channel identities, the transcript, the catalog,
carts, orders, payment providers' events, the commerce platform's ids of mirrored products, returns, the restock waitlist, FAQ entries, bot state and human handoff."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import uuid4

from sqlalchemy import JSON, Column, Index, Table, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from bot import clock

ORDER_NUMBER_OFFSET = 1000


def utcnow() -> datetime:
    """Now, by the clock of the running task (`bot/clock.py`): the wall clock unless simulated."""
    return clock.now()


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_id() -> str:
    return uuid4().hex


class Customer(SQLModel, table=True):
    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    id: str = Field(default_factory=new_id, primary_key=True)
    display_name: str | None = None
    language: str = "en"
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    marketing_consent: bool | None = None  # None: never asked; marketing needs True on WhatsApp and SMS
    consent_updated_at: datetime | None = None
    consent_source: str | None = None  # how consent was given or withdrawn: "sms:STOP", "whatsapp:chat" ...
    sms_opted_out: bool = False  # replied STOP to our SMS sender: the carrier blocks our texts
    preferred_channel: str | None = None
    erased_at: datetime | None = None  # the shopper asked to be forgotten
    shipping_address: str | None = None
    receipt_contact: str | None = None  # e-mail or phone the shopper gave for receipts, offered next time
    last_channel: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    last_active_at: datetime = Field(default_factory=utcnow)
    # Added by a later revision, so last (a migration adds columns at the end).
    stripe_customer_id: str | None = None  # their Stripe Customer (saved cards live at Stripe, never here)
    # The commerce platform's customer (Shopify GID), matched by a verified phone or e-mail.
    commerce_customer_id: str | None = None


class ChannelIdentity(SQLModel, table=True):
    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    __table_args__ = (UniqueConstraint("channel", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(index=True)
    address: str
    customer_id: str = Field(foreign_key="customer.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


_DUE = "status IN ('pending', 'sending')"


class MessageRecord(SQLModel, table=True):
    """One message of the transcript, inbound or outbound."""

    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id"),
        # The outbox's claim: only what waits to be sent, in order, however long the transcript.
        Index("ix_message_due", "channel", "id", sqlite_where=text(_DUE), postgresql_where=text(_DUE)),
    )
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    channel: str
    direction: str  # "in" | "out"
    text: str | None = Field(default=None, sa_column=Column(Text))
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    address: str | None = None  # the channel address an outbound message goes to
    provider_message_id: str | None = Field(default=None, index=True)
    idempotency_key: str | None = Field(default=None, unique=True)
    reply_to_id: int | None = Field(default=None, index=True)
    # inbound: stored -> processed; outbound: pending -> sending -> sent/delivered/read, or failed
    status: str = Field(default="stored", index=True)
    error_code: str | None = None
    error_reason: str | None = None
    attempts: int = 0
    parts_sent: int = 0  # a message the provider takes in several parts: how many went out
    next_attempt_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Product(SQLModel, table=True):
    sku: str = Field(primary_key=True)
    name: str
    name_zh: str | None = None
    category: str = Field(index=True)
    description: str = ""
    description_zh: str | None = None
    price_cents: int
    tags: str = ""
    colour_hex: str = "#888888"
    image_url: str | None = None  # the commerce platform's picture; else our own /static/products/{sku}.png


class Variant(SQLModel, table=True):
    sku: str = Field(primary_key=True)
    product_sku: str = Field(foreign_key="product.sku", index=True)
    size: str
    colour: str
    stock: int = 0


class RelatedProduct(SQLModel, table=True):
    product_sku: str = Field(foreign_key="product.sku", primary_key=True)
    related_sku: str = Field(foreign_key="product.sku", primary_key=True)


class Cart(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    status: str = Field(default="open", index=True)  # open | checked_out (| abandoned: demo history only)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    checked_out_at: datetime | None = None
    discount_code: str | None = None  # offered by a reminder; the checkout applies it
    discount_percent: int = 0


class CartItem(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("cart_id", "variant_sku"),)
    id: int | None = Field(default=None, primary_key=True)
    cart_id: int = Field(foreign_key="cart.id", index=True)
    variant_sku: str = Field(foreign_key="variant.sku")
    quantity: int
    # the unit price the shopper was shown when adding it (or when told of a change); None: before 0010
    seen_price_cents: int | None = None


class Order(SQLModel, table=True):
    __tablename__ = "shop_order"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    status: str = "pending_payment"  # pending_payment | payment_review | paid | shipped | delivered | cancelled
    total_cents: int = 0
    discount_code: str | None = None
    discount_cents: int = 0
    shipping_cents: int = 0  # part of total_cents
    estimated_delivery: date | None = None  # "arrives by", in the shop's zone
    receipt_contact: str | None = None  # where the receipt goes (e-mail or phone), if the shopper gave one
    shipping_address: str = ""
    payment_ref: str | None = None
    payment_url: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    # Added by a later revision, so last (a migration adds columns at the end).
    payment_capture_ref: str | None = None  # the provider's payment (Stripe: payment intent; PayPal: capture)
    tracker_ref: str | None = Field(default=None, index=True)  # the carrier service's tracker (EasyPost: trk_...)
    tracking_status: str | None = None  # the furthest the parcel has got: in_transit, out_for_delivery, delivered...
    payment_risk_level: str | None = None  # Stripe Radar: normal | elevated | highest | not_assessed | unknown
    payment_risk_score: int | None = None  # Stripe Radar: 0-100, when Radar gave one
    external_order_id: str | None = Field(default=None, index=True)  # the commerce platform's order (Shopify GID)
    external_updated_at: datetime | None = None  # the platform's updated_at of the newest change applied
    # Migration 0012: the payment link's tries (integrations/payment_links.py), while it has none.
    link_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # tries that failed
    link_retry_at: datetime | None = None  # the next scheduled try is due then (None: at once)
    link_held_until: datetime | None = None  # a try under way holds the order till then (one try at a time)
    link_gave_up_at: datetime | None = None  # no link after PAYMENT_LINK_GIVE_UP_HOURS: a person took it

    @property
    def number(self) -> int:
        return ORDER_NUMBER_OFFSET + (self.id or 0)


class ProviderEvent(SQLModel, table=True):
    """A payment or commerce provider's webhook event, kept so a retry or duplicate is processed once."""

    __tablename__ = "provider_event"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str  # "stripe", "paypal", "easypost", "shopify"
    event_id: str
    type: str = ""
    received_at: datetime = Field(default_factory=utcnow)


class ProviderContent(SQLModel, table=True):
    """A content resource made once at a provider for one shape of message (a Twilio Content
    `HX…` for quick-reply buttons of two, say), reused by every message of that shape."""

    __tablename__ = "provider_content"
    __table_args__ = (UniqueConstraint("provider", "shape"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str  # "twilio"
    shape: str  # a digest of what was created (types, language), see channels/twilio_content.py
    content_sid: str
    created_at: datetime = Field(default_factory=utcnow)


class CommerceProduct(SQLModel, table=True):
    """A product mirrored from a commerce platform: its id there, and the platform's `updated_at`
    of the newest version applied (an older delivery is ignored)."""

    __tablename__ = "commerce_product"
    platform: str = Field(primary_key=True)  # "shopify"
    external_id: str = Field(primary_key=True)  # gid://shopify/Product/...
    product_sku: str = Field(index=True)  # our Product.sku (the handle)
    updated_at: datetime


class CommerceVariant(SQLModel, table=True):
    """A mirrored variant: its id on the platform, ours, and the inventory item its stock is kept on."""

    __tablename__ = "commerce_variant"
    platform: str = Field(primary_key=True)
    external_id: str = Field(primary_key=True)  # gid://shopify/ProductVariant/...
    variant_sku: str = Field(index=True)
    product_external_id: str = Field(index=True)
    inventory_item_id: str | None = Field(default=None, index=True)  # gid://shopify/InventoryItem/...


class CommerceStock(SQLModel, table=True):
    """Stock of one inventory item at one location; a variant's stock is the sum over locations."""

    __tablename__ = "commerce_stock"
    platform: str = Field(primary_key=True)
    inventory_item_id: str = Field(primary_key=True)
    location_id: str = Field(primary_key=True)  # gid://shopify/Location/...
    available: int
    updated_at: datetime


class OrderItem(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="shop_order.id", index=True)
    variant_sku: str
    name: str
    size: str
    colour: str
    quantity: int
    unit_price_cents: int


class ReturnRequest(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(unique=True)
    order_id: int = Field(foreign_key="shop_order.id", index=True)
    order_item_id: int = Field(foreign_key="orderitem.id")
    reason: str
    created_at: datetime = Field(default_factory=utcnow)
    # Added by a later revision, so last.
    status: str = Field(
        default="open", sa_column_kwargs={"server_default": "open"}
    )  # open | label_sent | in_transit (the carrier has it: refunded)
    label_url: str | None = None  # the prepaid return label (PDF)
    tracker_ref: str | None = Field(default=None, index=True)  # the return parcel's tracker


class WaitlistEntry(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    variant_sku: str = Field(foreign_key="variant.sku", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    notified_at: datetime | None = None


class FaqEntry(SQLModel, table=True):
    key: str = Field(primary_key=True)
    question: str
    question_zh: str | None = None
    answer: str = Field(sa_column=Column(Text))
    answer_zh: str | None = Field(default=None, sa_column=Column(Text))
    examples: list[str] = Field(default_factory=list, sa_column=Column(JSON))


class StateRecord(SQLModel, table=True):
    """A botbuilder state document, with the eTag that guards concurrent writes."""

    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    __tablename__ = "bot_state"
    key: str = Field(primary_key=True)
    etag: str
    data: str = Field(sa_column=Column(Text))
    updated_at: datetime = Field(default_factory=utcnow)


class LinkToken(SQLModel, table=True):
    """A short-lived, single-use invitation to continue the conversation on another channel."""

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True)
    code: str = Field(index=True)  # six digits, for when a link cannot be tapped
    customer_id: str = Field(foreign_key="customer.id", index=True)
    target_channel: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None  # linked, declined, or spent by the same customer
    # The chat that asked for it, named (masked) in the confirmation question on the other side.
    origin_channel: str | None = None
    origin_address: str | None = None
    # Failed attempts naming this token (wrong channel, after use or expiry): a few and it is dead.
    failures: int = 0
    # The chat it arrived in, waiting for that chat's Yes or No; nothing is merged before the Yes.
    claimed_channel: str | None = None
    claimed_address: str | None = Field(default=None, index=True)
    claimed_customer_id: str | None = None
    claimed_at: datetime | None = None
    claimed_message_id: int | None = None  # the inbound message it arrived with
    outcome: str | None = None  # linked | declined | same
    confirmed_message_id: int | None = None  # the inbound Yes that merged, so a rerun of it merges once


class LinkAttempt(SQLModel, table=True):
    """A wrong link code or token from an address: too many in a while and that address must wait."""

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(index=True)
    address: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)


class ContactCheck(SQLModel, table=True):
    """A one-time code sent to an e-mail address or phone number the shopper typed: proving it
    theirs before anything of the platform's customer with that contact is shown."""

    __tablename__ = "contact_check"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    contact: str  # the e-mail address (lower case) or the phone number (E.164)
    code_hash: str  # sha256 of the check's salt and the code: the code itself is never stored
    salt: str
    attempts: int = 0  # wrong codes typed
    expires_at: datetime
    verified_at: datetime | None = None
    spent_at: datetime | None = None  # replaced by a newer code, used, or too many wrong ones
    created_at: datetime = Field(default_factory=utcnow)


class MergeRecord(SQLModel, table=True):
    """Two customers found to be one shopper: what moved from `merged_id` into `kept_id`."""

    id: int | None = Field(default=None, primary_key=True)
    kept_id: str = Field(index=True)
    merged_id: str
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Campaign(SQLModel, table=True):
    """A marketer's proactive message: who gets it (segment), what it says (per locale and
    per channel template), and when (once at `send_at`, or on a `cron` schedule)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    status: str = "draft"  # draft | scheduled | running | paused | done | cancelled
    segment: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    messages: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))  # locale -> text
    templates: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))  # channel -> template
    link: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))  # where {link} leads
    send_at: datetime | None = None
    cron: str | None = None
    runs: int = 0  # how many runs have started; a recurring campaign's run number keys its messages
    cursor: str | None = None  # the last customer id queued by the current run, to resume from
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Dispatch(SQLModel, table=True):
    """One proactive message to one shopper (a campaign run's, a cart reminder, a restock
    notice): sent through the outbox, or skipped with the reason. Unique per `key`, which is also
    the outbox record's idempotency key."""

    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    __table_args__ = (
        Index("ix_dispatch_customer_created", "customer_id", "created_at"),
        Index("ix_dispatch_source", "source", "source_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    source: str  # campaign | cart_reminder | restock
    source_id: int  # the campaign, cart or waitlist entry
    step: int = 0  # campaign run number, or reminder 1 / 2
    customer_id: str
    channel: str | None = None
    status: str = "queued"  # queued | skipped
    reason: str | None = None  # why it was skipped
    marketing: bool = True  # counts toward the frequency cap
    created_at: datetime = Field(default_factory=utcnow)
    clicked_at: datetime | None = None


class HandoffTicket(SQLModel, table=True):
    """A conversation handed to a person: queued -> assigned -> resolved (and back to queued
    when the agent goes silent or transfers it to the queue)."""

    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True)
    # The customer id while the ticket is open, None once resolved: one open ticket per customer.
    open_key: str | None = Field(default=None, unique=True)
    status: str = Field(default="queued", index=True)  # queued | assigned | resolved
    priority: int = 0  # higher first
    topic: str = "general"
    language: str = "en"
    trigger: str = "asked"  # asked | fallback | rule:<name> | frustration
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    agent_id: int | None = Field(default=None, foreign_key="agent.id", index=True)
    agent_name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    assigned_at: datetime | None = None
    last_agent_activity_at: datetime | None = None
    last_customer_activity_at: datetime | None = None
    awaiting_agent_since: datetime | None = None  # the shopper wrote and no person answered yet
    resolved_at: datetime | None = None
    agent_replies: int = 0
    csat_pending: bool = False  # the satisfaction question is out and not answered yet


class HandoffEvent(SQLModel, table=True):
    """What happened to a ticket: opened, claimed, reply, note, transfer, requeued, resolved."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="handoffticket.id", index=True)
    kind: str
    actor: str  # "bot", "admin" or the agent's name
    text: str | None = Field(default=None, sa_column=Column(Text))
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Agent(SQLModel, table=True):
    """A person who answers handed-off conversations; the token is stored only as a hash."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    token_hash: str = Field(unique=True)
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    topics: list[str] = Field(default_factory=list, sa_column=Column(JSON))  # empty = any topic
    capacity: int = 3  # open tickets at once
    active: bool = True
    available: bool = False  # takes new tickets; set from the agent page
    last_seen_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class CsatAnswer(SQLModel, table=True):
    """A shopper's 1-5 answer to the satisfaction question: after a handoff (source "handoff",
    with its ticket), or after a conversation the bot handled alone (source "bot", bot/csat.py)."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="handoffticket.id", unique=True)
    customer_id: str = Field(index=True)
    agent_id: int | None = None
    score: int
    created_at: datetime = Field(default_factory=utcnow)
    # Last, as migration 0011 added it: a column added to a table goes after the others.
    source: str = Field(default="handoff", sa_column_kwargs={"server_default": "handoff"})


class AnalyticsEvent(SQLModel, table=True):
    """What the retailer's dashboard counts (`bot/analytics.py`), written with the turn it belongs to.

    `kind` is "turn" (one per inbound message: its intent, outcome and reply times) or a product
    shown, tapped or added: "rec_shown", "rec_clicked", "rec_added" (a bot recommendation) and
    "cart_add" (any add to the cart); `subject` is then the product's SKU. The tracked links of
    campaigns and reminders (`bot/delivery/clicks.py`) write "campaign_shown" / "offer_shown" when a
    message is queued with its link and "campaign_clicked" / "offer_clicked" when it is first
    opened; `subject` is then the message's dispatch key."""

    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    __tablename__ = "analytics_event"
    __table_args__ = (Index("ix_analytics_event_kind_at", "kind", "received_at"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    customer_id: str = Field(index=True)
    channel: str
    language: str = "en"
    message_id: int | None = Field(default=None, index=True)  # the inbound message of the turn
    intent: str | None = None
    outcome: str | None = None  # understood | fallback | handed_off | rated | rate_limited | link | failed
    handoff: bool = False  # a person has the conversation, or this turn handed it over
    subject: str | None = None
    received_at: datetime = Field(default_factory=utcnow)  # the inbound message stored
    replied_at: datetime | None = None  # the turn's first reply accepted by the provider
    demo: bool = False  # the demo history's (played by simulated shoppers, service/demo_history.py)


class TaughtExample(SQLModel, table=True):
    """A message the retailer taught the recogniser from the dashboard's "not understood" list:
    an example of `intent` (and, for an FAQ question, a phrasing of the entry `faq_key`). The
    text is the masked text the dashboard showed; texts with masked parts are never stored."""

    if TYPE_CHECKING:  # set by SQLModel for table models, not declared in its types
        __table__: ClassVar[Table]
    __tablename__ = "nlu_example"
    id: int | None = Field(default=None, primary_key=True)
    text: str
    intent: str
    faq_key: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
