"""Delivery estimates: business days counted in the shop's time zone (`bot.i18n.date_text` writes
the date as a shopper reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


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
