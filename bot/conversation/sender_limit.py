"""The per-sender rate limit: a shopper who sends more than SENDER_RATE_LIMIT messages within
SENDER_RATE_WINDOW_SECONDS gets one polite notice and no turns for the excess, on every channel.

Every message is still stored (and deduplicated) first; the limit only decides whether its turn
runs. It counts from the store, so it holds across channels, web workers and restarts: a message
is over the limit when the shopper's inbound message `limit` places before it was stored within
the window before it. Those over it are marked processed with the reason `rate_limited`, so they
are never run again at start-up; the first of a flood gets the notice, the rest nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import Enum

from sqlalchemy import Connection, bindparam, select, update

from bot.store.models import MessageRecord

REASON = "rate_limited"
_MESSAGE = MessageRecord.__table__


class Verdict(Enum):
    NOTICE = "notice"  # the first message over the limit: tell the shopper once
    SILENT = "silent"  # more of the same flood: stored, not answered


class SenderLimit:
    """Decides, for a stored inbound message about to have its turn, whether it is over the limit."""

    def __init__(self, limit: int, window: timedelta, notice: Callable[[str], str]) -> None:
        self.limit = limit
        self.window = window
        self.notice = notice  # the notice's text in a language ("en", "zh-TW")
        inbound = (
            (_MESSAGE.c.customer_id == bindparam("customer"))
            & (_MESSAGE.c.direction == "in")
            & (_MESSAGE.c.id < bindparam("message"))
        )
        self._created = select(_MESSAGE.c.created_at).where(_MESSAGE.c.id == bindparam("message"))
        # The shopper's index on customer_id, walked back from this message: about `limit` rows.
        self._earlier = (
            select(_MESSAGE.c.created_at).where(inbound).order_by(_MESSAGE.c.id.desc()).limit(1).offset(limit - 1)
        )
        self._noticed = (
            select(_MESSAGE.c.id)
            .where(inbound, _MESSAGE.c.error_reason == REASON, _MESSAGE.c.created_at > bindparam("since"))
            .limit(1)
        )
        self._mark = update(_MESSAGE).where(_MESSAGE.c.id == bindparam("message")).values(error_reason=REASON)

    @classmethod
    def from_settings(cls, limit: int, window_seconds: float, notice: Callable[[str], str]) -> SenderLimit | None:
        """None when the limit is off (0)."""
        return cls(limit, timedelta(seconds=window_seconds), notice) if limit > 0 else None

    def check(self, connection: Connection, customer_id: str, message_id: int) -> Verdict | None:
        """None when this message is within the limit; else whether it gets the notice.

        Times are compared as the store returns them (it keeps them in UTC), from the message's
        own arrival, so a flood recovered at start-up is judged as it arrived."""
        params = {"customer": customer_id, "message": message_id}
        created = connection.execute(self._created, params).scalar()
        earlier = connection.execute(self._earlier, params).scalar()
        if created is None or earlier is None or earlier <= created - self.window:
            return None
        since = created - self.window
        already = connection.execute(self._noticed, {**params, "since": since}).first() is not None
        return Verdict.SILENT if already else Verdict.NOTICE

    def mark(self, connection: Connection, message_id: int) -> None:
        """Record why this message had no turn (it is marked processed with its replies)."""
        connection.execute(self._mark, {"message": message_id})
