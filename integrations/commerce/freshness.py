"""When a commerce platform last confirmed the local copy's stock: a full sync, a reconcile, a
Magento poll or a stock webhook records the time, per platform, in one state record. A stock
answer from the local copy says how old it is when that is longer ago than `STOCK_FRESH_MINUTES`
(the platform down, slow or throttling: the copy is all the bot has)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.store.database import Database
from bot.store.models import StateRecord, as_utc, utcnow


def confirmed_key(platform: str) -> str:
    return f"commerce-confirmed/{platform}/stock"


def mark_confirmed(session: Session, platform: str, at: datetime | None = None) -> None:
    """The platform's stock was read (or pushed to us) now; runs in the caller's transaction."""
    moment = at or utcnow()
    key = confirmed_key(platform)
    row = session.get(StateRecord, key)
    if row is None:
        try:  # the first ever: two webhooks may make it at once, and one of them must not fail
            with session.begin_nested():
                session.add(StateRecord(key=key, etag="confirmed", data=moment.isoformat(), updated_at=moment))
            return
        except IntegrityError:
            row = session.get(StateRecord, key)
            if row is None:
                raise
    row.data, row.updated_at = moment.isoformat(), moment
    session.add(row)
    session.flush()


def confirmed_at(session: Session, platform: str) -> datetime | None:
    row = session.get(StateRecord, confirmed_key(platform))
    return as_utc(datetime.fromisoformat(row.data)) if row is not None and row.data else None


class StockFreshness:
    """How long ago the platform's stock was confirmed, when that is longer than `fresh`."""

    def __init__(self, db: Database, platform: str, fresh: timedelta) -> None:
        self.db, self.platform, self.fresh = db, platform, fresh

    async def stale_for(self) -> timedelta | None:
        """The age of the local copy's stock if older than `fresh` (or never confirmed: None
        then too, as there is no time to give), else None."""
        at = await self.db.run(lambda s: confirmed_at(s, self.platform))
        if at is None:
            return None
        age = utcnow() - at
        return age if age > self.fresh else None
