"""The policy gate every proactive message passes: consent, the platform's window and template
rules, the frequency cap and quiet hours in the shopper's time zone (see PLATFORMS.md)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config import Settings

WINDOW = timedelta(hours=24)
CAP_PERIOD = timedelta(days=7)
PUSH_CHANNELS = {"whatsapp", "sms", "messenger"}  # the web chat cannot reach a shopper who left
MARKETING = "marketing"  # campaigns and cart reminders
REQUESTED = "requested"  # a notice the shopper asked for (back in stock)


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
        if who.channel not in PUSH_CHANNELS or not who.address:
            return Verdict(False, "no_reachable_channel")
        if who.consent is False or (who.channel == "sms" and who.sms_opted_out):
            return Verdict(False, "opted_out")
        if purpose == MARKETING and who.channel in ("sms", "whatsapp") and who.consent is not True:
            return Verdict(False, "no_opt_in")  # both need an explicit opt-in for marketing
        use_template = False
        if who.last_inbound_at is None or now - who.last_inbound_at > WINDOW:
            if who.channel == "whatsapp":
                if not has_template:
                    return Verdict(False, "outside_window_no_template")
                use_template = True
            elif who.channel == "messenger":
                # No tag may carry promotions or cart reminders; a restock notice fits none either.
                return Verdict(False, "outside_window")
        if purpose == MARKETING and who.recent_marketing >= self.weekly_cap:
            return Verdict(False, "frequency_cap")
        return Verdict(True, None, self.after_quiet_hours(who.timezone, now), use_template)

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
