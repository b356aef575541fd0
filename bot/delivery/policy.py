"""The policy gate every proactive message passes: what each purpose of message needs on each
channel (consent, the platform's window and template rules), the frequency cap and quiet hours
in the shopper's time zone (see PLATFORMS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.channel import (  # noqa: F401  (re-exported: the gate's vocabulary)
    ALWAYS,
    CART_REMINDER,
    HOME_CHANNEL,
    MARKETING,
    NEVER,
    ORDER_UPDATE,
    OUTSIDE_WINDOW,
    REFUSED,
    REQUESTED,
    TAGGED,
    TEMPLATE,
    Rule,
    profile,
    profiles,
    pushable,
)
from bot.config import Settings

CAP_PERIOD = timedelta(days=7)

# Reasons that depend on the window: a notice that may also go to the web chat goes there instead.
WINDOW_REASONS = {"outside_window", "outside_window_no_template", "marketing_template_us"}


@dataclass(frozen=True)
class Purpose:
    key: str
    kind: str  # the outbound message's kind: Messenger's messaging type and tag follow it
    capped: bool  # counts toward MARKETING_WEEKLY_CAP

    @property
    def channels(self) -> dict[str, Rule]:
        """What this purpose needs on each channel, as the channels declare it; a channel missing
        here is not used."""
        return {p.name: p.rules[self.key] for p in profiles() if self.key in p.rules}


# The platforms' rules per purpose live with each channel (`ChannelProfile.rules` in channels/).
POLICY: dict[str, Purpose] = {
    MARKETING: Purpose(MARKETING, "marketing", True),
    CART_REMINDER: Purpose(CART_REMINDER, "marketing", True),
    REQUESTED: Purpose(REQUESTED, "update", False),
    ORDER_UPDATE: Purpose(ORDER_UPDATE, "post_purchase", False),
}


def reaches_web(purpose: str) -> bool:
    """May this purpose wait in the web chat for a shopper to come back?"""
    return HOME_CHANNEL in POLICY[purpose].channels


def choose_channel(purpose: str, chosen: str | None, push_used: list[str], has_web: bool) -> str | None:
    """The channel for one message: the shopper's chosen one for updates, else the one they used
    last (`chosen`). A purpose that may wait in the web chat prefers a phone channel the shopper
    wrote on (`push_used`, latest first) over the web chat, and the web chat over nothing."""
    if not reaches_web(purpose) or chosen in pushable():
        return chosen
    if push_used:
        return push_used[0]
    return HOME_CHANNEL if has_web else chosen


def agent_reply_kind(channel: str, since_last_inbound: timedelta | None) -> str | None:
    """What a person's message to a shopper may be on `channel`, given the time since the
    shopper's last message there (None: never wrote): a plain "reply" inside the window (or on a
    channel without one), "human_agent" after it while the channel allows a person to answer
    (Messenger's HUMAN_AGENT tag), or None when the platform allows no message now."""
    declared = profile(channel)
    if declared is None or declared.window is None:
        return "reply"
    if since_last_inbound is not None and since_last_inbound <= declared.window:
        return "reply"
    if since_last_inbound is not None and declared.agent_window and since_last_inbound <= declared.agent_window:
        return "human_agent"
    return None


def window_name(channel: str) -> str:
    """How the window a person's reply must keep to is called, for an error message."""
    declared = profile(channel)
    if declared is not None and declared.agent_window:
        return f"{declared.agent_window.days}-day human agent"
    hours = int(declared.window.total_seconds() // 3600) if declared is not None and declared.window else 24
    return f"{hours}-hour"


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
        channel = profile(who.channel)
        if channel is not None and channel.consent_keywords and who.sms_opted_out:
            return Verdict(False, "opted_out")  # the carrier blocks every text after a STOP
        if rule.honours_opt_out and who.consent is False:
            return Verdict(False, "opted_out")
        window = channel.window if channel is not None else None
        inside = window is None or (who.last_inbound_at is not None and now - who.last_inbound_at <= window)
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
