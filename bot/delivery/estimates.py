"""Delivery estimates: business days counted in the shop's time zone, and the date as a shopper
reads it ("Thu 10 Dec", "12月10日（週四）")."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS_ZH = "一二三四五六日"


def add_business_days(start: date, days: int) -> date:
    """The date `days` business days (Monday to Friday) after `start`."""
    day = start
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


@dataclass(frozen=True)
class DeliveryEstimate:
    """Packing takes `processing_days`, the carrier `transit_days`, both in business days."""

    processing_days: int
    transit_days: int
    zone: ZoneInfo

    def arrives_by(self, now: datetime) -> date:
        """For an order placed at `now`."""
        return add_business_days(now.astimezone(self.zone).date(), self.processing_days + self.transit_days)

    def arrives_after_shipping(self, now: datetime) -> date:
        """For a parcel handed to the carrier at `now`."""
        return add_business_days(now.astimezone(self.zone).date(), self.transit_days)


def date_text(language: str, day: date) -> str:
    """A delivery date in the shopper's language, without relying on the system's locales."""
    if language.startswith("zh"):
        return f"{day.month}月{day.day}日（週{WEEKDAYS_ZH[day.weekday()]}）"
    return f"{WEEKDAYS_EN[day.weekday()]} {day.day} {MONTHS_EN[day.month - 1]}"
