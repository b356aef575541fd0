"""The commerce platform's customers, for shoppers who proved who they are: a shopper is
matched to the platform's customer by a phone its channel vouches for (WhatsApp, SMS) or by an
e-mail address or phone number proved with a one-time code; then "where is my order?" lists the
customer's website orders too, and checkout offers the customer's saved address.

No order of the platform's customer is read before the match, and the match needs the proof."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import phonenumbers
from sqlmodel import Session, col, select

from bot.conversation import verification
from bot.delivery.mail import MAIL_LANE, is_email
from bot.delivery.outbox import queue_to_customer
from bot.i18n import language_of, text_in
from bot.messages import OutboundMessage
from bot.store.database import Database
from bot.store.models import ChannelIdentity, CommerceProduct, CommerceVariant, ContactCheck, Customer, Order

log = logging.getLogger(__name__)

PHONE_SPACE = "phone"  # the identity space of the channels that reach phones (WhatsApp, SMS)


class PlatformUnavailable(Exception):
    """The platform did not answer usably: the shopper is told to try again later."""


GUEST = "guest:"  # a platform customer id for an e-mail address known only from guest orders


@dataclass(frozen=True)
class PlatformCustomer:
    """`id` is the platform's customer id, or `GUEST` + the e-mail address for a shopper who only
    ever checked out as a guest (WooCommerce, Magento): found by a proved e-mail address alone."""

    id: str
    default_address: str | None = None


@dataclass(frozen=True)
class WebsiteOrder:
    """An order of the platform's customer, as "where is my order?" shows it."""

    id: str
    name: str  # the shop's order name ("#1001")
    created_at: str  # YYYY-MM-DD
    status: str  # pending_payment | paid | shipped | delivered | cancelled (our order statuses)
    items: list[tuple[int, str]] = field(default_factory=list)  # (quantity, name)
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    products: tuple[str, ...] = ()  # the platform's ids of the products (or variants) bought
    total_cents: int | None = None  # the order's total, in `currency`
    currency: str | None = None  # ISO 4217, as the platform gives it


def national_number(contact: str) -> str:
    """The digits of an E.164 number without its country code ("+15551234567" -> "5551234567"):
    what a number typed on a website without "+1" still contains."""
    try:
        return str(phonenumbers.parse(contact, None).national_number)
    except phonenumbers.NumberParseException:
        return "".join(c for c in contact if c.isdigit())


def same_phone(typed: object, contact: str) -> bool:
    """Whether a phone number as a website keeps it ("(555) 123-4567", "+1 555-123-4567") is
    `contact` (E.164): read in the contact's country when it has no "+" of its own."""
    if not isinstance(typed, str) or not typed.strip():
        return False
    try:
        # By its country code, not the number: a number not yet allocated has no region of its own.
        region = phonenumbers.region_code_for_country_code(phonenumbers.parse(contact, None).country_code)
        number = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == contact


class PlatformCustomers(Protocol):
    async def find(self, contact: str) -> PlatformCustomer | None:
        """The customer with this e-mail address (lower case) or phone number (E.164), if any.

        Raises:
            PlatformUnavailable: the platform did not answer usably.
        """

    async def orders(self, customer_id: str, limit: int = 5) -> list[WebsiteOrder]:
        """The customer's orders, newest first.

        Raises:
            PlatformUnavailable: the platform did not answer usably.
        """


@dataclass(frozen=True)
class Sent:
    status: str  # sent | no_way (no e-mail lane, or no SMS channel, for this contact) | too_many
    lane: str | None = None


def _match(session: Session, customer_id: str, found: PlatformCustomer) -> None:
    customer = session.get(Customer, customer_id)
    if customer is None:
        return
    customer.commerce_customer_id = found.id
    if customer.shipping_address is None and found.default_address:
        customer.shipping_address = found.default_address


class ShopperCustomers:
    """What dialogs may do with the platform's customers: send and check a contact code, match,
    read a matched shopper's website orders and saved address.

    `sms_channel`: the channel a code to a phone number is texted on (None: none is on);
    `mail`: whether the e-mail lane is on; `wake`: tells the outbox a message waits."""

    def __init__(
        self,
        db: Database,
        platform: PlatformCustomers,
        sms_channel: str | None,
        mail: bool,
        wake: Callable[[], None],
        ttl: timedelta = verification.CODE_TTL,
    ) -> None:
        self._db, self._platform = db, platform
        self._sms, self._mail, self._wake, self.ttl = sms_channel, mail, wake, ttl

    def can_send(self, contact: str) -> bool:
        return self._mail if is_email(contact) else self._sms is not None

    async def matched(self, customer_id: str) -> str | None:
        """The platform's customer of this shopper: the one matched before, else the one with
        a contact the shopper proved: the phone number a phone channel vouches for, or one proved
        with a code whose look-up did not happen (the platform was down then). Looked up once it
        is asked.

        Raises:
            PlatformUnavailable: the platform did not answer usably.
        """

        def read(session: Session) -> tuple[str | None, list[str]]:
            customer = session.get(Customer, customer_id)
            if customer is None:
                return None, []
            phones = session.exec(
                select(ChannelIdentity.address).where(
                    ChannelIdentity.customer_id == customer_id, ChannelIdentity.channel == PHONE_SPACE
                )
            ).all()
            proved = session.exec(
                select(ContactCheck.contact)
                .where(ContactCheck.customer_id == customer_id, col(ContactCheck.verified_at).is_not(None))
                .order_by(col(ContactCheck.id).desc())
            ).all()
            return customer.commerce_customer_id, list(dict.fromkeys([*phones, *proved]))

        known, contacts = await self._db.run(read)
        if known or not contacts:
            return known
        for contact in contacts:
            found = await self._platform.find(contact)
            if found is not None:
                await self._db.run(lambda s: _match(s, customer_id, found))
                log.info(
                    "shopper matched to the platform's customer by a proved contact", extra={"customer": customer_id}
                )
                return found.id
        return None

    async def send_code(self, customer_id: str, contact: str) -> Sent:
        """A one-time code to `contact`, by e-mail or text, through the outbox."""
        if not self.can_send(contact):
            return Sent("no_way")
        lane = MAIL_LANE if is_email(contact) else self._sms

        def queue(session: Session) -> bool:
            code = verification.start(session, customer_id, contact, self.ttl)
            if code is None:
                return False
            customer = session.get(Customer, customer_id)
            language = language_of(customer.language if customer is not None else "en")
            minutes = int(self.ttl.total_seconds() // 60)
            message = OutboundMessage(
                text=text_in(language, "customers.code_message", code=code, minutes=minutes),
                subject=text_in(language, "customers.code_subject"),
            )
            check_id = session.exec(
                select(verification.ContactCheck.id)
                .where(verification.ContactCheck.customer_id == customer_id)
                .order_by(col(verification.ContactCheck.id).desc())
            ).first()
            queue_to_customer(session, customer_id, f"contact-code:{check_id}", message, channel=lane, address=contact)
            return True

        if not await self._db.run(queue):
            return Sent("too_many")
        self._wake()
        log.info("contact code queued", extra={"customer": customer_id, "lane": lane})  # never the contact or code
        return Sent("sent", lane)

    async def verify(self, customer_id: str, code: str) -> tuple[verification.CheckResult, bool]:
        """The code the shopper typed; once right, the shopper is matched to the platform's
        customer with that contact (if there is one). (result, matched).

        Raises:
            PlatformUnavailable: the code was right, but the platform did not answer; the proved
                contact is kept, so the match is made when it is next asked (`matched`).
        """
        result = await self._db.run(lambda s: verification.check(s, customer_id, code))
        if result.status != "verified" or result.contact is None:
            return result, False
        found = await self._platform.find(result.contact)
        if found is None:
            return result, False
        await self._db.run(lambda s: _match(s, customer_id, found))
        log.info("shopper matched to the platform's customer by a proved contact", extra={"customer": customer_id})
        return result, True

    async def website_orders(self, customer_id: str, limit: int = 5) -> list[WebsiteOrder] | None:
        """The matched shopper's orders on the platform that were not placed in this chat,
        newest first; None for a shopper not matched.

        Raises:
            PlatformUnavailable: the platform did not answer usably.
        """
        platform_id = await self.matched(customer_id)
        if platform_id is None:
            return None
        orders = await self._platform.orders(platform_id, limit)
        ours = set(
            await self._db.run(
                lambda s: s.exec(
                    select(Order.external_order_id).where(
                        Order.customer_id == customer_id, col(Order.external_order_id).is_not(None)
                    )
                ).all()
            )
        )
        return [o for o in orders if o.id not in ours]

    async def saved_address(self, customer_id: str) -> str | None:
        """The matched shopper's default address on the platform (kept as their saved address)."""
        try:
            if await self.matched(customer_id) is None:
                return None
        except PlatformUnavailable:
            return None  # checkout goes on: the shopper types the address
        return await self._db.run(lambda s: getattr(s.get(Customer, customer_id), "shipping_address", None))

    async def purchased(self, customer_id: str) -> list[str]:
        """Our skus of the products a matched shopper bought on the website, newest first; none
        for a shopper not matched, or while the platform does not answer."""
        try:
            orders = await self.website_orders(customer_id)
        except PlatformUnavailable:
            return []
        ids = list(dict.fromkeys(product for order in orders or [] for product in order.products))
        if not ids:
            return []

        def ours(session: Session) -> list[str]:
            # A platform names what was bought by product (Shopify, WooCommerce) or by the
            # variant's SKU (Magento's order items): a variant is read as its product.
            product_of = dict(
                session.exec(
                    select(CommerceVariant.external_id, CommerceVariant.product_external_id).where(
                        col(CommerceVariant.external_id).in_(ids)
                    )
                ).all()
            )
            products = list(dict.fromkeys(product_of.get(i, i) for i in ids))
            sku = dict(
                session.exec(
                    select(CommerceProduct.external_id, CommerceProduct.product_sku).where(
                        col(CommerceProduct.external_id).in_(products)
                    )
                ).all()
            )
            return list(dict.fromkeys(sku[i] for i in products if i in sku))

        return await self._db.run(ours)
