"""Staffed hours: when people answer, parsed from `mon-fri 09:00-18:00, sat 10:00-14:00` in the
shop's zone, and the next opening as a shopper reads it. Settings validate HANDOFF_HOURS with it,
so it imports nothing of the project but `bot.i18n` (which imports none)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.i18n import weekday_name

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class StaffedHours:
    """When people answer: `mon-fri 09:00-18:00, sat 10:00-14:00` in the shop's zone; empty = always."""

    spans: tuple[tuple[int, time, time], ...]  # weekday (0 = Monday), start, end
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str) -> StaffedHours:
        """Raises: ValueError for text that is not a list of `DAYS HH:MM-HH:MM`."""
        spans: list[tuple[int, time, time]] = []
        for part in filter(None, (p.strip() for p in re.split(r"[,;]", text or ""))):
            found = re.fullmatch(
                r"([a-z]{3})(?:-([a-z]{3}))?\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", part.lower()
            )
            if not found or found.group(1) not in DAYS or (found.group(2) and found.group(2) not in DAYS):
                raise ValueError(f"staffed hours must look like 'mon-fri 09:00-18:00', not {part!r}")
            first = DAYS.index(found.group(1))
            last = DAYS.index(found.group(2)) if found.group(2) else first
            start = time(int(found.group(3)), int(found.group(4)))
            end = (
                time(23, 59, 59)
                if found.group(5, 6) == ("24", "00")
                else time(int(found.group(5)), int(found.group(6)))
            )
            days = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
            spans.extend((day, start, end) for day in days)
        return cls(tuple(spans), ZoneInfo(zone))

    def is_open(self, now: datetime) -> bool:
        if not self.spans:
            return True
        local = now.astimezone(self.zone)
        return any(day == local.weekday() and start <= local.time() < end for day, start, end in self.spans)

    def next_open(self, now: datetime) -> datetime | None:
        """The next time someone is in, in the shop's zone (None if always staffed)."""
        if not self.spans:
            return None
        local = now.astimezone(self.zone)
        for ahead in range(8):
            day = (local + timedelta(days=ahead)).date()
            starts = sorted(
                datetime.combine(day, start, self.zone) for weekday, start, _ in self.spans if weekday == day.weekday()
            )
            for start in starts:
                if start > local:
                    return start
        return None

    def describe(self, moment: datetime, language: str, zone: str | None = None) -> str:
        """`moment` as a shopper reads it: in their zone when known (a name the store holds may be
        one this system lacks: then the shop's)."""
        try:
            where = ZoneInfo(zone) if zone else self.zone
        except (ZoneInfoNotFoundError, ValueError):
            where = self.zone
        local = moment.astimezone(where)
        return f"{weekday_name(language, local.date())} {local:%H:%M} ({where.key})"
