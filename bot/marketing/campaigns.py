"""Marketer campaigns: who gets them (a segment), what they say (per locale, and per channel a
template), when (once, or on a cron schedule); preview, runs that survive a crash, statistics."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import and_, exists, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.channel import profiles
from bot.delivery.clicks import ClickLinks
from bot.delivery.policy import MARKETING, TEMPLATE, Policy
from bot.delivery.proactive import Planned, dispatch_key, queue, recipients
from bot.messages import OutboundMessage, Template
from bot.store.database import among
from bot.store.models import (
    Campaign,
    Cart,
    CartItem,
    Customer,
    Dispatch,
    MessageRecord,
    Order,
    OrderItem,
    Product,
    Variant,
    as_utc,
    utcnow,
)

SEGMENT_KEYS = {
    "channel",
    "language",
    "has_open_cart",
    "bought_category",
    "last_active_before",
    "last_active_after",
    "opted_in",
}
EDITABLE = {"draft", "scheduled", "paused"}
# A template is named as its provider knows it: a Twilio Content SID, or (Meta's Cloud API) the
# template's name and language, "name:language".
TEMPLATE_SID = re.compile(r"^(HX[0-9a-fA-F]{32}|[a-z0-9_]{1,512}:[A-Za-z]{2,3}(_[A-Za-z0-9]{2,4})?)$")
PRODUCT_SKU = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class CampaignError(ValueError):
    """A campaign that cannot be saved or changed as asked; the message says why."""


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    segment: dict[str, Any]
    messages: dict[str, str]
    templates: dict[str, Any]
    send_at: datetime | None
    cron: str | None
    link: dict[str, str] | None = None


def parse_spec(data: Any) -> CampaignSpec:
    """Check a campaign as a marketer sent it (JSON or CLI).

    Raises:
        CampaignError: what is wrong, in words a marketer understands.
    """
    if not isinstance(data, dict):
        raise CampaignError("a campaign is a JSON object")
    unknown = set(data) - {"name", "segment", "messages", "templates", "send_at", "cron", "link"}
    if unknown:
        raise CampaignError(f"unknown fields: {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise CampaignError("name is required (at most 200 characters)")
    segment = data.get("segment") or {}
    check_segment(segment)
    messages = data.get("messages")
    if (
        not isinstance(messages, dict)
        or not messages
        or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() and len(v) <= 1600 for k, v in messages.items()
        )
    ):
        raise CampaignError("messages maps a locale (en, zh-TW) to a non-empty text of at most 1600 characters")
    templates = data.get("templates") or {}
    templated = templated_channels()
    if not isinstance(templates, dict) or set(templates) - templated:
        raise CampaignError(
            "templates: only for channels that need one outside their window, "
            f"as templates.<channel> ({', '.join(sorted(templated))})"
        )
    for channel, template in templates.items():
        if not isinstance(template, dict) or not TEMPLATE_SID.match(str(template.get("content_sid", ""))):
            raise CampaignError(
                f"templates.{channel}.content_sid must be a Content SID (HX and 32 hex digits) "
                "or a template's name:language (order_update:en_US)"
            )
        variables = template.get("variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise CampaignError(f"templates.{channel}.variables maps numbers to texts")
    send_at, cron = parse_when(data.get("send_at"), data.get("cron"))
    return CampaignSpec(name.strip(), segment, messages, templates, send_at, cron, parse_link(data.get("link")))


def templated_channels() -> set[str]:
    """The channels on which a campaign outside the window may only go as an approved template."""
    return {p.name for p in profiles() if (rule := p.rules.get(MARKETING)) and rule.outside_window == TEMPLATE}


def parse_link(link: Any) -> dict[str, str] | None:
    """Where a campaign's {link} leads: `{"product": SKU}` (the product in the shop's chat) or
    `{"url": "https://..."}`; none = the shop's home page.

    Raises:
        CampaignError: anything else.
    """
    if link is None:
        return None
    if (
        isinstance(link, dict)
        and set(link) == {"product"}
        and isinstance(link["product"], str)
        and PRODUCT_SKU.match(link["product"])
    ):
        return {"product": link["product"]}
    if (
        isinstance(link, dict)
        and set(link) == {"url"}
        and isinstance(link["url"], str)
        and re.match(r"^https?://[^\s]{3,500}$", link["url"])
    ):
        return {"url": link["url"]}
    raise CampaignError('link is {"product": "SKU"} or {"url": "https://..."}')


def parse_when(send_at: Any, cron: Any) -> tuple[datetime | None, str | None]:
    """When a campaign goes: (send_at, None), (None, cron) or (None, None) for now.

    Raises:
        CampaignError: both given, or either malformed.
    """
    if send_at is not None and cron is not None:
        raise CampaignError("give send_at or cron, not both")
    if cron is not None:
        if not isinstance(cron, str):
            raise CampaignError("cron is a crontab expression such as '0 10 * * MON'")
        try:
            CronTrigger.from_crontab(cron)
        except ValueError as exc:
            raise CampaignError(f"cron: {exc}") from None
        return None, cron
    if send_at is not None:
        return parse_time(send_at, "send_at"), None
    return None, None


def parse_time(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise CampaignError(f"{name} must be an ISO 8601 time, e.g. 2026-12-01T10:00:00Z") from None
    return as_utc(moment)


def check_segment(segment: Any) -> None:
    if not isinstance(segment, dict):
        raise CampaignError("segment is an object of filters")
    unknown = set(segment) - SEGMENT_KEYS
    if unknown:
        raise CampaignError(
            f"unknown segment filters: {', '.join(sorted(unknown))} (known: {', '.join(sorted(SEGMENT_KEYS))})"
        )
    channels, known = segment.get("channel"), {p.name for p in profiles()}
    if channels is not None and not set(_as_list(channels)) <= known:
        raise CampaignError(f"segment.channel: one or more of {', '.join(sorted(known))}")
    for key in ("has_open_cart", "opted_in"):
        if key in segment and not isinstance(segment[key], bool):
            raise CampaignError(f"segment.{key} is true or false")
    for key in ("last_active_before", "last_active_after"):
        if key in segment:
            parse_time(segment[key], f"segment.{key}")


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def audience(segment: dict[str, Any]) -> SelectOfScalar[str]:
    """The segment as a query of customer ids (streamed by the caller in id order)."""
    query = select(Customer.id).where(col(Customer.erased_at).is_(None))
    if "channel" in segment:
        query = query.where(
            func.coalesce(Customer.preferred_channel, Customer.last_channel).in_(_as_list(segment["channel"]))
        )
    if "language" in segment:
        query = query.where(col(Customer.language).in_(_as_list(segment["language"])))
    if "opted_in" in segment:
        query = query.where(
            col(Customer.marketing_consent).is_(True)
            if segment["opted_in"]
            else or_(col(Customer.marketing_consent).is_(None), col(Customer.marketing_consent).is_(False))
        )
    if "last_active_before" in segment:
        query = query.where(Customer.last_active_at < parse_time(segment["last_active_before"], ""))
    if "last_active_after" in segment:
        query = query.where(Customer.last_active_at >= parse_time(segment["last_active_after"], ""))
    if "has_open_cart" in segment:
        open_cart = exists().where(
            col(Cart.customer_id) == Customer.id,
            col(Cart.status) == "open",
            exists().where(col(CartItem.cart_id) == Cart.id),
        )
        query = query.where(open_cart if segment["has_open_cart"] else ~open_cart)
    if "bought_category" in segment:
        query = query.where(
            exists().where(
                col(Order.customer_id) == Customer.id,
                col(Order.status) != "cancelled",
                col(OrderItem.order_id) == Order.id,
                col(Variant.sku) == OrderItem.variant_sku,
                col(Product.sku) == Variant.product_sku,
                col(Product.category).in_(_as_list(segment["bought_category"])),
            )
        )
    return query


class Addressee(Protocol):
    """What `render` reads of a shopper: a `Customer`, or a row with these columns."""

    @property
    def language(self) -> str: ...

    @property
    def display_name(self) -> str | None: ...


def render(
    campaign: Campaign, customer: Addressee, link: str | None = None
) -> tuple[OutboundMessage, OutboundMessage | None]:
    """The message in the shopper's language (else English, else the first given), and the
    WhatsApp template version when the campaign has one."""
    texts = campaign.messages
    body = texts.get(customer.language) or texts.get("en") or next(iter(texts.values()))
    values = {"name": customer.display_name or "", "link": link or ""}
    text = fill(body, values)
    message = OutboundMessage(text=text, kind="marketing")
    template = None
    for spec in campaign.templates.values():  # the channels that take one (see `templated_channels`)
        variables = {k: fill(v, values) for k, v in (spec.get("variables") or {}).items()}
        template = OutboundMessage(text=text, kind="marketing", template=Template(spec["content_sid"], variables))
    return message, template


def fill(body: str, values: dict[str, str]) -> str:
    """The text with {name} and {link} filled in; a shopper without a name reads "Hi, ..." rather
    than "Hi , ..." (the placeholder goes with the space before it, and a comma left leading)."""
    for key, value in values.items():
        if not value:
            body = re.sub(r"[ \t]*\{" + key + r"\}", "", body)
    text = re.sub(r"\{(name|link)\}", lambda m: values[m.group(1)], body)
    return re.sub(r"^[\s,;:]+", "", text).strip()


def create(session: Session, spec: CampaignSpec) -> Campaign:
    campaign = Campaign(
        name=spec.name,
        segment=spec.segment,
        messages=spec.messages,
        templates=spec.templates,
        send_at=spec.send_at,
        cron=spec.cron,
        link=spec.link,
    )
    session.add(campaign)
    session.flush()
    return campaign


PREVIEW_BATCH = 1000


def preview(
    session: Session, campaign: Campaign, policy: Policy, now: datetime, sample_size: int = 1
) -> dict[str, Any]:
    """Who would really get the campaign now: the segment's size, how many the policy gate lets
    through and why it would skip the others (consent, window, cap...), the split of those who
    get it by channel and language, and rendered samples."""
    skipped: dict[str | None, int] = {}  # by the policy's reason
    split: dict[tuple[str | None, str], int] = {}  # by (channel, language)
    size, receiving = 0, 0
    receivers: list[str] = []
    ids = [row for row in session.exec(audience(campaign.segment).order_by(Customer.id)).all()]
    for start in range(0, len(ids), PREVIEW_BATCH):
        batch = ids[start : start + PREVIEW_BATCH]
        size += len(batch)
        facts = recipients(session, batch, now)
        for customer_id in batch:
            who = facts.get(customer_id)
            if who is None:
                continue
            verdict = policy.check(who, MARKETING, who.channel in campaign.templates, now)
            if not verdict.send:
                skipped[verdict.reason] = skipped.get(verdict.reason, 0) + 1
                continue
            receiving += 1
            split[(who.channel, who.language)] = split.get((who.channel, who.language), 0) + 1
            if len(receivers) < sample_size:
                receivers.append(customer_id)
    samples = []
    for customer in session.exec(select(Customer).where(col(Customer.id).in_(receivers)).order_by(Customer.id)).all():
        message, template = render(campaign, customer, "https://…")
        samples.append(
            {
                "language": customer.language,
                "channel": customer.preferred_channel or customer.last_channel,
                "text": message.text,
                "template": template.template.content_sid if template and template.template else None,
            }
        )
    if not samples:  # nobody would get it: still show what the message looks like
        message, _ = render(campaign, Customer(display_name="Alex"), "https://…")
        samples.append({"language": "en", "channel": None, "text": message.text, "template": None})
    return {
        "audience": size,
        "receiving": receiving,
        "skipped": skipped,
        "by_channel_language": [
            {"channel": c, "language": lang, "count": n}
            for (c, lang), n in sorted(split.items(), key=lambda kv: (-kv[1], str(kv[0])))
        ],
        "samples": samples,
    }


def view(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "segment": campaign.segment,
        "messages": campaign.messages,
        "templates": campaign.templates,
        "send_at": as_utc(campaign.send_at).isoformat() if campaign.send_at else None,
        "cron": campaign.cron,
        "link": campaign.link,
        "runs": campaign.runs,
        "created_at": as_utc(campaign.created_at).isoformat(),
    }


@dataclass
class RunContext:
    """What a campaign run needs: the store, the gate, and how to build click links."""

    policy: Policy
    links: ClickLinks  # the tracked link each message carries
    batch_size: int = 500
    on_batch: Callable[[], None] = lambda: None  # wake the outbox


def start_run(session: Session, campaign_id: int, new_run: bool) -> tuple[int, str | None] | None:
    """Mark the campaign running. Returns (run number, cursor to resume from) or None if the
    campaign may not run now (paused, cancelled, done, or gone)."""
    campaign = session.get(Campaign, campaign_id, with_for_update=session.get_bind().dialect.name != "sqlite")
    if campaign is None or campaign.status in ("cancelled", "done", "paused", "draft"):
        return None
    if campaign.status == "running" or not new_run:
        # Resuming after a crash or a pause, or a recurring fire while the last run still goes.
        return campaign.runs, campaign.cursor
    campaign.runs += 1
    campaign.status, campaign.cursor, campaign.updated_at = "running", None, utcnow()
    return campaign.runs, None


def run_batch(
    session: Session, ctx: RunContext, campaign_id: int, run: int, cursor: str | None, now: datetime
) -> tuple[str | None, dict[str, int]] | None:
    """Queue the next batch of one run. Returns (new cursor, counts); cursor None when the run
    is finished. None if the campaign was paused or cancelled meanwhile."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != "running":
        return None
    query = audience(campaign.segment).order_by(Customer.id).limit(ctx.batch_size)
    if cursor:
        query = query.where(Customer.id > cursor)
    ids = list(session.exec(query).all())
    table = Customer.__table__  # rows, not models: a batch is hundreds of shoppers
    customers = {
        c.id: c
        for c in session.connection().execute(
            sa_select(table.c.id, table.c.language, table.c.display_name).where(among(session, table.c.id, ids))
        )
    }
    plans = []
    for customer_id in ids:
        key = dispatch_key("campaign", campaign_id, run, customer_id)
        message, template = render(campaign, customers[customer_id], ctx.links.url(key))
        plans.append(Planned(customer_id, message, template))
    counts = queue(session, ctx.policy, "campaign", campaign_id, run, plans, MARKETING, now)
    new_cursor = ids[-1] if len(ids) == ctx.batch_size else None
    campaign.cursor = new_cursor
    if new_cursor is None:
        campaign.status = "scheduled" if campaign.cron else "done"
        campaign.updated_at = utcnow()
    return new_cursor, counts


def stats(session: Session, campaign_id: int, conversion_window: timedelta) -> dict[str, Any]:
    """Targeted, sent, delivered, read, failed, skipped by reason, clicked, converted."""
    base = (Dispatch.source == "campaign", Dispatch.source_id == campaign_id)
    skipped = dict(
        session.exec(
            select(Dispatch.reason, func.count()).where(*base, Dispatch.status == "skipped").group_by(Dispatch.reason)
        ).all()
    )
    status_counts = dict(
        session.exec(
            select(MessageRecord.status, func.count())
            .join(Dispatch, col(Dispatch.key) == MessageRecord.idempotency_key)
            .where(*base)
            .group_by(MessageRecord.status)
        ).all()
    )
    targeted = session.exec(select(func.count()).where(*base)).one()
    clicked = session.exec(select(func.count()).where(*base, col(Dispatch.clicked_at).is_not(None))).one()
    converted = _converted(session, campaign_id, conversion_window)

    def at_least(*statuses: str) -> int:
        return sum(n for s, n in status_counts.items() if s in statuses)

    return {
        "targeted": targeted,
        "queued": sum(status_counts.values()),
        "waiting": at_least("pending", "sending"),
        "sent": at_least("sent", "delivered", "read", "accepted", "queued", "scheduled"),
        "delivered": at_least("delivered", "read"),
        "read": at_least("read"),
        "failed": at_least("failed", "undelivered", "canceled", "skipped"),
        "skipped": skipped,
        "clicked": clicked,
        "converted": converted,
    }


def _converted(session: Session, campaign_id: int, window: timedelta) -> int:
    """Recipients who ordered within `window` after their campaign message."""
    rows = session.exec(
        select(Dispatch.id, Dispatch.created_at, Order.created_at)
        .join(
            Order,
            and_(
                col(Order.customer_id) == Dispatch.customer_id,
                col(Order.status) != "cancelled",
                col(Order.created_at) >= Dispatch.created_at,
            ),
        )
        .where(Dispatch.source == "campaign", Dispatch.source_id == campaign_id, Dispatch.status == "queued")
    ).all()
    return len(
        {dispatch_id for dispatch_id, sent_at, ordered_at in rows if as_utc(ordered_at) - as_utc(sent_at) <= window}
    )
