"""The policy gate every proactive message passes: what each purpose of message needs on each
channel (consent, the platform's window and template rules), the frequency cap and quiet hours
in the shopper's time zone (see PLATFORMS.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config import Settings

WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window, Messenger's standard window
CAP_PERIOD = timedelta(days=7)
PUSH_CHANNELS = {"whatsapp", "sms", "messenger"}  # the web chat cannot reach a shopper who left
WINDOWED = {"whatsapp", "messenger"}

# Why the shop writes first.
MARKETING = "marketing"  # campaigns: promotions
CART_REMINDER = "cart_reminder"  # about the shopper's own open cart (the second one may carry a code)
REQUESTED = "requested"  # a notice the shopper asked for (back in stock)
ORDER_UPDATE = "order_update"  # about an order they placed (it has shipped)

# When an explicit opt-in to marketing ("subscribe", START) is needed.
ALWAYS, OUTSIDE_WINDOW, NEVER = "always", "outside_window", "never"
# How a message may go once the channel's 24-hour window has closed.
REFUSED = "refused"  # not at all
TEMPLATE = "template"  # WhatsApp: only as an approved Content template
TAGGED = "tagged"  # Messenger: with the message tag that fits it (POST_PURCHASE_UPDATE)

# Reasons that depend on the window: a notice that may also go to the web chat goes there instead.
WINDOW_REASONS = {"outside_window", "outside_window_no_template", "marketing_template_us"}


@dataclass(frozen=True)
class Rule:
    """What one purpose needs on one channel."""

    opt_in: str = NEVER
    outside_window: str = REFUSED  # only read on channels with a window
    template_category: str | None = None  # WhatsApp: the category Meta approves the template under
    honours_opt_out: bool = True  # a marketing opt-out ("unsubscribe", STOP anywhere) stops it
    quiet_hours: bool = True  # postponed past the shopper's quiet hours


@dataclass(frozen=True)
class Purpose:
    kind: str  # the outbound message's kind: Messenger's messaging type and tag follow it
    capped: bool  # counts toward MARKETING_WEEKLY_CAP
    channels: dict[str, Rule] = field(default_factory=dict)  # a channel missing here is not used


# The platforms' rules, one row per purpose and channel (PLATFORMS.md sections 4, 5, 7, 9):
# - WhatsApp: any free-form message inside the 24-hour window, which is a service conversation;
#   outside it only an approved template. Business-initiated marketing needs an explicit opt-in,
#   and marketing templates to US (+1) numbers are blocked since 1 April 2025; Meta files
#   abandoned-cart reminders as marketing templates, so outside the window a cart reminder needs
#   the opt-in, a template and a number outside the US. Restock notices and order updates go as
#   utility templates (they carry no offer).
# - Messenger: any content inside the window; outside it only a tag that fits, and no tag may
#   carry promotions or cart reminders (a restock notice fits none either); POST_PURCHASE_UPDATE
#   fits an order the shopper placed.
# - SMS (US, TCPA): marketing, cart reminders included, needs prior express consent and keeps to
#   quiet hours; a notice the shopper asked for and order updates are informational. A STOP to our
#   number blocks every text to it, whatever the purpose.
# - The web chat reaches nobody who left, but a shopper who comes back sees what waits there:
#   notices they asked for and order updates go there, promotions and reminders do not.
POLICY: dict[str, Purpose] = {
    MARKETING: Purpose("marketing", True, {
        "whatsapp": Rule(ALWAYS, TEMPLATE, "marketing"),
        "messenger": Rule(NEVER, REFUSED),
        "sms": Rule(ALWAYS),
    }),
    CART_REMINDER: Purpose("marketing", True, {
        "whatsapp": Rule(OUTSIDE_WINDOW, TEMPLATE, "marketing"),
        "messenger": Rule(NEVER, REFUSED),
        "sms": Rule(ALWAYS),
    }),
    REQUESTED: Purpose("update", False, {
        "whatsapp": Rule(NEVER, TEMPLATE, "utility"),
        "messenger": Rule(NEVER, REFUSED),
        "sms": Rule(NEVER),
        "web": Rule(NEVER, quiet_hours=False),
    }),
    ORDER_UPDATE: Purpose("post_purchase", False, {
        "whatsapp": Rule(NEVER, TEMPLATE, "utility", honours_opt_out=False),
        "messenger": Rule(NEVER, TAGGED, honours_opt_out=False),
        "sms": Rule(NEVER, honours_opt_out=False),
        "web": Rule(NEVER, honours_opt_out=False, quiet_hours=False),
    }),
}


def reaches_web(purpose: str) -> bool:
    """May this purpose wait in the web chat for a shopper to come back?"""
    return "web" in POLICY[purpose].channels


def choose_channel(purpose: str, chosen: str | None, push_used: list[str], has_web: bool) -> str | None:
    """The channel for one message: the shopper's chosen one for updates, else the one they used
    last (`chosen`). A purpose that may wait in the web chat prefers a phone channel the shopper
    wrote on (`push_used`, latest first) over the web chat, and the web chat over nothing."""
    if not reaches_web(purpose) or chosen in PUSH_CHANNELS:
        return chosen
    if push_used:
        return push_used[0]
    return "web" if has_web else chosen


def is_us_number(address: str | None) -> bool:
    return (address or "").removeprefix("whatsapp:").startswith("+1")


@dataclass(frozen=True)
class Recipient:
    """What the gate needs to know of one shopper on the channel we would use."""

    customer_id: str
    channel: str | None
    address: str | None
    language: str = "en"
    timezone: str | None = None
    consent: bool | None = None
    sms_opted_out: bool = False
    erased: bool = False
    last_inbound_at: datetime | None = None  # on `channel`
    recent_marketing: int = 0  # marketing messages queued for them in the last 7 days
    fallback: Recipient | None = None  # the web chat, for a notice the phone channel cannot take


@dataclass(frozen=True)
class Verdict:
    send: bool
    reason: str | None = None  # why not
    not_before: datetime | None = None  # postponed past quiet hours
    use_template: bool = False  # outside the window: only an approved template may go


SEND = Verdict(True)


class Policy:
    def __init__(self, settings: Settings) -> None:
        self.quiet = settings.quiet
        self.default_zone = ZoneInfo(settings.default_timezone)
        self.weekly_cap = settings.marketing_weekly_cap

    def check(self, who: Recipient, purpose: str, has_template: bool, now: datetime) -> Verdict:
        """May this message go to `who` now, later, or not at all (with the reason)?"""
        if who.erased:
            return Verdict(False, "erased")
        rule = POLICY[purpose].channels.get(who.channel or "")
        if rule is None or not who.address:
            return Verdict(False, "no_reachable_channel")
        if who.channel == "sms" and who.sms_opted_out:
            return Verdict(False, "opted_out")  # the carrier blocks every text after a STOP
        if rule.honours_opt_out and who.consent is False:
            return Verdict(False, "opted_out")
        inside = who.channel not in WINDOWED or (
            who.last_inbound_at is not None and now - who.last_inbound_at <= WINDOW)
        if who.consent is not True and (rule.opt_in == ALWAYS or (rule.opt_in == OUTSIDE_WINDOW and not inside)):
            return Verdict(False, "no_opt_in")
        use_template = False
        if not inside:
            if rule.outside_window == REFUSED:
                return Verdict(False, "outside_window")
            if rule.outside_window == TEMPLATE:
                if not has_template:
                    return Verdict(False, "outside_window_no_template")
                if rule.template_category == "marketing" and is_us_number(who.address):
                    return Verdict(False, "marketing_template_us")
                use_template = True
        if POLICY[purpose].capped and who.recent_marketing >= self.weekly_cap:
            return Verdict(False, "frequency_cap")
        not_before = self.after_quiet_hours(who.timezone, now) if rule.quiet_hours else None
        return Verdict(True, None, not_before, use_template)

    def zone(self, name: str | None) -> ZoneInfo:
        try:
            return ZoneInfo(name) if name else self.default_zone
        except (ZoneInfoNotFoundError, ValueError):
            return self.default_zone

    def after_quiet_hours(self, zone_name: str | None, now: datetime) -> datetime | None:
        """None if `now` is outside the shopper's quiet hours, else the moment they end."""
        if self.quiet is None:
            return None
        start, end = self.quiet
        local = now.astimezone(self.zone(zone_name))
        if not _inside(local.time(), start, end):
            return None
        ends = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
        if ends <= local:
            ends += timedelta(days=1)
        return ends.astimezone(now.tzinfo)


def _inside(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # spans midnight: 21:00-08:00
