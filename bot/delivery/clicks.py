"""Tracked links in the messages the shop sends first: campaigns, cart reminders and restock
notices. Each queued message carries a link of its own, `/r/{key}/{signature}`: the key is the
message's dispatch key (source, source id, step, shopper), signed with the store's "clicks"
secret, so a link cannot be made up or changed into another shopper's.

The dashboard's click-through (`bot/analytics.py`) counts analytics events: an impression
("campaign_shown", "offer_shown") when such a message is queued carrying its link
(`bot/delivery/proactive.py`), and a click ("campaign_clicked", "offer_clicked") the first time
its link is opened (`record_click`, from `GET /r/...` in `service/marketing_api.py`). A reminder
(abandoned cart, restock) is an offer; a campaign message is a campaign."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from bot.store.models import AnalyticsEvent, Customer, Dispatch

# The dispatch sources whose messages carry a tracked link, and what the dashboard calls them.
TRACKED = {"campaign": "campaign", "cart_reminder": "offer", "restock": "offer"}


def signature(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:16]


def path(key: str) -> str:
    """The part of a tracked link that names its key (how an impression finds its link)."""
    return f"/r/{key}/"


@dataclass(frozen=True)
class ClickLinks:
    """Makes and checks the tracked links of one shop."""

    base_url: str
    secret: bytes

    def url(self, key: str) -> str:
        return f"{self.base_url}{path(key)}{signature(self.secret, key)}"

    def valid(self, key: str, signed: str) -> bool:
        # Our keys and signatures are ASCII; compare_digest refuses other strings with a TypeError.
        return (
            key.isascii()
            and signed.isascii()
            and hmac.compare_digest(signature(self.secret, key).encode(), signed.encode())
        )


def impression(key: str, source: str, customer_id: str, channel: str, language: str, now: datetime) -> dict:
    """The "shown" event of a queued message carrying its tracked link (a row for a bulk insert)."""
    return {
        "kind": f"{TRACKED[source]}_shown",
        "customer_id": customer_id,
        "channel": channel,
        "language": language,
        "message_id": None,
        "intent": None,
        "outcome": None,
        "handoff": False,
        "subject": key,
        "received_at": now,
        "replied_at": None,
        "demo": False,
    }


def record_click(session: Session, key: str, now: datetime) -> Dispatch | None:
    """A tracked link was opened: the first time for its message, the dispatch is marked clicked
    and a "clicked" event recorded (once, even for two opened at the same moment). Returns the
    dispatch (None for a key that names none: a shopper erased since)."""
    dispatch = session.exec(select(Dispatch).where(Dispatch.key == key)).first()
    if dispatch is None:
        return None
    table = Dispatch.__table__
    first = (
        session.connection()
        .execute(update(table).where(table.c.id == dispatch.id, table.c.clicked_at.is_(None)).values(clicked_at=now))
        .rowcount
    )
    if first and dispatch.source in TRACKED:
        customer = session.get(Customer, dispatch.customer_id)
        session.add(
            AnalyticsEvent(
                kind=f"{TRACKED[dispatch.source]}_clicked",
                customer_id=dispatch.customer_id,
                channel=dispatch.channel or "",
                language=customer.language if customer is not None else "en",
                subject=key,
                received_at=now,
            )
        )
    return dispatch
