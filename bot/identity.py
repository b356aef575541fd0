"""Channel address -> Customer: find or create the shopper behind a message."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from bot.store.models import ChannelIdentity, Customer, utcnow

# WhatsApp and SMS reach the same phone: one E.164 number is one shopper on both.
ADDRESS_SPACE = {"whatsapp": "phone", "sms": "phone"}


@dataclass(frozen=True)
class CustomerView:
    id: str
    language: str
    shipping_address: str | None
    marketing_consent: bool | None
    last_channel: str | None


def view(customer: Customer) -> CustomerView:
    return CustomerView(
        customer.id, customer.language, customer.shipping_address,
        customer.marketing_consent, customer.last_channel,
    )


def identity_key(channel: str, address: str) -> tuple[str, str]:
    if channel in ADDRESS_SPACE:
        return ADDRESS_SPACE[channel], address.removeprefix("whatsapp:")
    return channel, address


def resolve(session: Session, channel: str, address: str, profile_name: str | None = None) -> Customer:
    """The customer behind `address` on `channel`, created on first contact."""
    space, key = identity_key(channel, address)
    identity = session.exec(
        select(ChannelIdentity).where(ChannelIdentity.channel == space, ChannelIdentity.address == key)
    ).first()
    if identity is not None:
        customer = session.get(Customer, identity.customer_id)
    else:
        customer = Customer(display_name=profile_name, phone=key if space == "phone" else None)
        session.add(customer)
        session.flush()
        session.add(ChannelIdentity(channel=space, address=key, customer_id=customer.id))
        session.flush()
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


def set_language(session: Session, customer_id: str, language: str) -> None:
    customer = session.get(Customer, customer_id)
    if customer is not None and customer.language != language:
        customer.language = language


class StoreProfiles:
    """Profile changes dialogs may make: marketing consent."""

    def __init__(self, db) -> None:
        self._db = db

    async def set_consent(self, customer_id: str, consent: bool) -> None:
        await self._db.run(lambda s: set_consent(s, customer_id, consent))
