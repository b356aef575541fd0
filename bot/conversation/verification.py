"""Proving a contact: a one-time code sent to an e-mail address or phone number the shopper
typed, typed back in the chat within its time and tries. Only its hash is kept; a newer code
spends the older. Runs in the caller's transaction."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from bot.store.models import ContactCheck, as_utc, utcnow

CODE_TTL = timedelta(minutes=10)
MAX_WRONG = 5  # wrong codes typed for one check: then it is spent and a new code must be asked for
MAX_SENT_PER_HOUR = 5  # codes sent for one shopper per hour (each is an e-mail or a text someone receives)


@dataclass(frozen=True)
class CheckResult:
    """verified | wrong | blocked (too many wrong codes) | expired | none (no code waiting)."""

    status: str
    contact: str | None = None
    tries_left: int = 0


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _open(session: Session, customer_id: str):
    return select(ContactCheck).where(
        ContactCheck.customer_id == customer_id,
        col(ContactCheck.spent_at).is_(None),
        col(ContactCheck.verified_at).is_(None),
    )


def start(session: Session, customer_id: str, contact: str, ttl: timedelta = CODE_TTL) -> str | None:
    """A new six-digit code for `contact` (any earlier open one spent), or None when this
    shopper had `MAX_SENT_PER_HOUR` codes sent within the hour."""
    now = utcnow()
    sent = session.exec(
        select(func.count())
        .select_from(ContactCheck)
        .where(ContactCheck.customer_id == customer_id, ContactCheck.created_at > now - timedelta(hours=1))
    ).one()
    if sent >= MAX_SENT_PER_HOUR:
        return None
    session.execute(
        update(ContactCheck)
        .where(
            col(ContactCheck.customer_id) == customer_id,
            col(ContactCheck.spent_at).is_(None),
            col(ContactCheck.verified_at).is_(None),
        )
        .values(spent_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    salt = secrets.token_hex(8)
    session.add(
        ContactCheck(
            customer_id=customer_id,
            contact=contact,
            code_hash=_hash(salt, code),
            salt=salt,
            expires_at=now + ttl,
            created_at=now,
        )
    )
    session.flush()
    return code


def waiting(session: Session, customer_id: str) -> bool:
    """Whether a code sent to this shopper waits to be typed (then six digits in the chat are
    that code, not a link code)."""
    check = session.exec(_open(session, customer_id).order_by(col(ContactCheck.id).desc())).first()
    return check is not None and as_utc(check.expires_at) > utcnow() and check.attempts < MAX_WRONG


def check(session: Session, customer_id: str, code: str) -> CheckResult:
    """The code the shopper typed, against the newest open check."""
    now = utcnow()
    found = session.exec(_open(session, customer_id).order_by(col(ContactCheck.id).desc()).with_for_update()).first()
    if found is None:
        return CheckResult("none")
    if as_utc(found.expires_at) <= now:
        found.spent_at = now
        return CheckResult("expired", found.contact)
    if hmac.compare_digest(found.code_hash, _hash(found.salt, code.strip())):
        found.verified_at = now
        return CheckResult("verified", found.contact)
    found.attempts += 1
    if found.attempts >= MAX_WRONG:
        found.spent_at = now
        return CheckResult("blocked", found.contact)
    return CheckResult("wrong", found.contact, MAX_WRONG - found.attempts)


def verified(session: Session, customer_id: str, contact: str) -> bool:
    """Whether this shopper proved `contact` with a code."""
    return (
        session.exec(
            select(ContactCheck.id).where(
                ContactCheck.customer_id == customer_id,
                ContactCheck.contact == contact,
                col(ContactCheck.verified_at).is_not(None),
            )
        ).first()
        is not None
    )
