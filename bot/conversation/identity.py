"""Channel address -> Customer: find or create the shopper behind a message."""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlmodel import Session, select

from bot.channel import identity_key
from bot.conversation import timezones
from bot.store.database import Database
from bot.store.models import ChannelIdentity, Customer, utcnow

__all__ = ["StoreProfiles", "identity_key", "resolve", "resolve_id", "set_consent", "set_language", "set_timezone"]


_IDENTITY = ChannelIdentity.__table__
_CUSTOMER = Customer.__table__
# Built once: every inbound message runs these, and a prepared Core statement costs a tenth of
# an ORM query.
_FIND_ID = select(_IDENTITY.c.customer_id).where(
    _IDENTITY.c.channel == bindparam("space"), _IDENTITY.c.address == bindparam("key")
)
_TOUCH = (
    update(_CUSTOMER)
    .where(_CUSTOMER.c.id == bindparam("customer"))
    .values(last_channel=bindparam("channel_"), last_active_at=bindparam("now"))
)
_SET_LANGUAGE = (
    update(_CUSTOMER)
    .where(_CUSTOMER.c.id == bindparam("customer"), _CUSTOMER.c.language != bindparam("language_"))
    .values(language=bindparam("language_"))
)


def resolve_id(
    session: Session, channel: str, address: str, profile_name: str | None = None, aliases: tuple[str, ...] = ()
) -> str:
    """The id of the customer behind `address` on `channel` (created on first contact), marked
    active now. The same as `resolve`, without loading the customer.

    `aliases`: other addresses the provider gives for the same sender on this channel (WhatsApp's
    business-scoped user id beside the phone number). The customer is the one any of them finds;
    those not yet known, the address included, are attached to it. One already another
    customer's stays theirs (joining two customers is the link dialog's, with the shopper's yes).
    """
    space, key = identity_key(channel, address)
    connection = session.connection()
    found = connection.execute(_FIND_ID, {"space": space, "key": key}).scalar()
    if aliases:
        return _resolve_aliases(session, channel, address, found, aliases, profile_name)
    if found is None:
        return resolve(session, channel, address, profile_name).id
    connection.execute(_TOUCH, {"customer": found, "channel_": channel, "now": utcnow()})
    return found


def _resolve_aliases(
    session: Session, channel: str, address: str, found: str | None, aliases: tuple[str, ...], profile_name: str | None
) -> str:
    connection = session.connection()
    own = identity_key(channel, address)
    known: dict[tuple[str, str], str | None] = {own: found}
    for space, key in (identity_key(channel, a) for a in aliases):
        known.setdefault((space, key), connection.execute(_FIND_ID, {"space": space, "key": key}).scalar())
    customer_id = found or next((owner for owner in known.values() if owner), None)
    if customer_id is None:  # first contact by every address: made as without aliases
        customer_id = resolve(session, channel, address, profile_name).id
        known[own] = customer_id
    for (space, key), owner in known.items():
        if owner is not None:
            continue
        # A free address joins the customer (a concurrent attach fails the unique constraint,
        # and the engine's retry finds it).
        session.add(ChannelIdentity(channel=space, address=key, customer_id=customer_id))
        customer = session.get(Customer, customer_id) if space == "phone" else None
        if customer is not None and customer.phone is None:
            customer.phone = key
            customer.timezone = customer.timezone or timezones.from_phone(key)
    session.flush()
    connection.execute(_TOUCH, {"customer": customer_id, "channel_": channel, "now": utcnow()})
    return customer_id


def resolve(session: Session, channel: str, address: str, profile_name: str | None = None) -> Customer:
    """The customer behind `address` on `channel`, created on first contact."""
    space, key = identity_key(channel, address)
    identity = session.exec(
        select(ChannelIdentity).where(ChannelIdentity.channel == space, ChannelIdentity.address == key)
    ).first()
    if identity is not None:
        customer = session.get(Customer, identity.customer_id)
    else:
        phone = key if space == "phone" else None
        # A phone number that lies in one time zone tells us the shopper's, until they say otherwise.
        customer = Customer(
            display_name=profile_name, phone=phone, timezone=timezones.from_phone(phone) if phone else None
        )
        session.add(customer)
        session.flush()
        session.add(ChannelIdentity(channel=space, address=key, customer_id=customer.id))
        session.flush()
    assert customer is not None  # an identity's customer is a foreign key
    customer.last_channel = channel
    customer.last_active_at = utcnow()
    return customer


def set_consent(session: Session, customer_id: str, consent: bool, source: str = "chat") -> None:
    """Record a shopper's yes or no to marketing, with where and when they said it."""
    customer = session.get(Customer, customer_id)
    if customer is not None:
        customer.marketing_consent = consent
        customer.consent_updated_at = utcnow()
        customer.consent_source = source


def set_timezone(session: Session, customer_id: str, zone: str) -> None:
    """The time zone the shopper told us they are in."""
    customer = session.get(Customer, customer_id)
    if customer is not None:
        customer.timezone = zone


def set_language(session: Session, customer_id: str, language: str) -> None:
    session.connection().execute(_SET_LANGUAGE, {"customer": customer_id, "language_": language})


class StoreProfiles:
    """What dialogs may read and change of a shopper's profile: marketing consent, the receipt
    contact they gave last time, their time zone."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def receipt_contact(self, customer_id: str) -> str | None:
        def read(session: Session) -> str | None:
            customer = session.get(Customer, customer_id)
            return customer.receipt_contact if customer is not None else None

        return await self._db.run(read)

    async def set_consent(self, customer_id: str, consent: bool) -> None:
        await self._db.run(lambda s: set_consent(s, customer_id, consent))

    async def set_timezone(self, customer_id: str, zone: str) -> None:
        await self._db.run(lambda s: set_timezone(s, customer_id, zone))
