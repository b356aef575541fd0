"""Stripe behind the payments interface: a Checkout Session per order (for the shopper's own
Stripe Customer, so a returning shopper's saved card is offered), refunds, Radar's risk of a
payment, and the verification of Stripe's webhook events."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlmodel import Session

from bot.delivery.mail import is_email
from bot.store.database import Database
from bot.store.models import Customer
from integrations.orders import OrderView, PaymentRisk
from integrations.payments import PaymentLink, PaymentUnavailable
from integrations.webhook_auth import WebhookRefused

log = logging.getLogger(__name__)

WEBHOOK_TOLERANCE_SECONDS = 300  # Stripe's default: an older signed event is a replay
SESSION_LIFETIME = timedelta(hours=1)  # Stripe accepts 30 minutes to 24 hours
SESSION_MIN_LIFETIME = timedelta(minutes=31)
REQUEST_TIMEOUT_SECONDS = 10.0


def checkout_key(number: int) -> str:
    """The Idempotency-Key of an order's Checkout Session: asking again returns the same session."""
    return f"order-{number}-checkout"


def session_expiry(order: OrderView, now: datetime) -> int:
    """When the session ends: an hour after the order was placed, so a retry sends the same
    parameters under the same idempotency key; a retry that late gets an hour from now."""
    placed = order.placed_at or now
    expires = placed + SESSION_LIFETIME
    if expires < now + SESSION_MIN_LIFETIME:
        expires = now + SESSION_LIFETIME
    return int(expires.timestamp())


def customer_key(customer_id: str) -> str:
    """The Idempotency-Key of a shopper's Stripe Customer: two checkouts at once make one."""
    return f"customer-{customer_id}-create"


def checkout_params(
    order: OrderView,
    currency: str,
    base_url: str,
    now: datetime,
    coupon: str | None = None,
    customer: str | None = None,
) -> dict[str, Any]:
    """The Checkout Session for `order`: its lines at their unit prices, shipping as a fixed
    rate, the discount as a coupon (Stripe takes it off the goods, as we do), the order number
    in the metadata of the session and of its payment intent.

    With the shopper's Stripe `customer`, Checkout offers to save the card (a box the shopper
    ticks: their consent) and shows a card saved that way at their next checkout. Cards saved
    with `payment_intent_data.setup_future_usage` alone are not shown again (Stripe saves them
    as `allow_redisplay: limited`), so that is not used: we never charge a card off-session."""
    currency = currency.lower()
    number = str(order.number)
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": number,
        "metadata": {"order_number": number},
        "payment_intent_data": {"metadata": {"order_number": number}},
        "line_items": [
            {
                "quantity": line.quantity,
                "price_data": {
                    "currency": currency,
                    "unit_amount": line.unit_price_cents,
                    "product_data": {"name": f"{line.name} ({line.size}, {line.colour})"},
                },
            }
            for line in order.lines
        ],
        "shipping_options": [
            {
                "shipping_rate_data": {
                    "type": "fixed_amount",
                    "display_name": "Shipping",
                    "fixed_amount": {"amount": order.shipping_cents, "currency": currency},
                }
            }
        ],
        "success_url": f"{base_url}/payments/done?order={number}",
        "cancel_url": f"{base_url}/payments/cancelled?order={number}",
        "expires_at": session_expiry(order, now),
    }
    if coupon:
        params["discounts"] = [{"coupon": coupon}]
    if customer:
        params["customer"] = customer
        params["saved_payment_method_options"] = {"payment_method_save": "enabled"}
    return params


class StripePayments:
    """Stripe Checkout: the pay link is the session's `url`, its id the order's payment reference.

    Uses the `stripe` package's async methods over its aiohttp HTTP client (aiohttp is ours
    already), with `STRIPE_API_BASE` as the API's address.
    """

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        base_url: str,
        currency: str,
        api_base: str = "https://api.stripe.com",
        retries: int = 1,
        db: Database | None = None,
    ) -> None:
        self._http = stripe.AIOHTTPClient(timeout=REQUEST_TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=retries,
        )
        self._webhook_secret = webhook_secret
        self._base_url = base_url.rstrip("/")
        self.currency = currency
        self._db = db  # where each shopper's Stripe Customer id is kept; None: no Customers

    @classmethod
    def from_settings(cls, settings, db: Database | None = None) -> StripePayments:
        return cls(
            settings.stripe_secret_key.get_secret_value(),
            settings.stripe_webhook_secret.get_secret_value(),
            settings.base_url,
            settings.currency,
            settings.stripe_api_base,
            db=db,
        )

    async def create_link(self, order: OrderView) -> PaymentLink:
        """Create (or, for an order asked about before, find again) the order's Checkout Session.

        Raises:
            PaymentUnavailable: Stripe is down or refused the request.
        """
        try:
            customer = await self._customer(order)
            coupon = await self._coupon(order) if order.discount_cents else None
            session = await self._client.v1.checkout.sessions.create_async(
                checkout_params(order, self.currency, self._base_url, datetime.now(UTC), coupon, customer),  # type: ignore[arg-type]
                {"idempotency_key": checkout_key(order.number)},
            )
        except stripe.StripeError as exc:
            raise PaymentUnavailable(f"{type(exc).__name__}: {exc.http_status}") from exc
        if not session.url:
            raise PaymentUnavailable("the checkout session has no url")
        return PaymentLink(session.id, session.url)

    async def _customer(self, order: OrderView) -> str | None:
        """The shopper's Stripe Customer: the one kept on our customer, or one made now (once: an
        idempotency key per shopper) and kept. Only an id and the receipt e-mail go to Stripe;
        card details stay between the shopper and Stripe's page."""
        db, customer_id = self._db, order.customer_id
        if db is None or not customer_id:
            return None
        known = await db.run(lambda s: (c := s.get(Customer, customer_id)) and c.stripe_customer_id)
        if known:
            return known
        params: dict[str, Any] = {"metadata": {"customer_id": customer_id}}
        if is_email(order.receipt_contact):
            params["email"] = order.receipt_contact
        made = await self._client.v1.customers.create_async(params, {"idempotency_key": customer_key(customer_id)})  # type: ignore[arg-type]

        def keep(session: Session) -> str:
            row = session.get(Customer, customer_id, with_for_update=not db.is_sqlite)
            if row is None:
                return made.id
            if not row.stripe_customer_id:  # a checkout at the same moment may have kept it first
                row.stripe_customer_id = made.id
            return row.stripe_customer_id

        return await db.run(keep)

    async def risk(self, payment_intent: str) -> PaymentRisk:
        """Radar's outcome on the payment intent's latest charge (`expand[]=latest_charge`).

        Raises:
            PaymentUnavailable: Stripe is down (a 4xx answer, such as an unknown intent, gives no
                risk rather than an error that a retry would meet again).
        """
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(payment_intent, {"expand": ["latest_charge"]})
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            if 400 <= status < 500 and status != 429:  # asking again would get the same answer
                log.warning("stripe refused the payment intent's risk", extra={"status": status})
                return PaymentRisk(None)
            raise PaymentUnavailable(f"{type(exc).__name__}: {exc.http_status}") from exc
        charge = intent.to_dict().get("latest_charge")  # an object when expanded, else its id
        outcome = charge.get("outcome") if isinstance(charge, dict) else None
        if not isinstance(outcome, dict):
            return PaymentRisk(None)
        level, score = outcome.get("risk_level"), outcome.get("risk_score")
        return PaymentRisk(str(level)[:20] if level is not None else None, score if isinstance(score, int) else None)

    async def _coupon(self, order: OrderView) -> str:
        # A one-off coupon for exactly this order's discount, so Stripe's total is ours to the cent.
        coupon = await self._client.v1.coupons.create_async(
            {
                "amount_off": order.discount_cents,
                "currency": self.currency.lower(),
                "duration": "once",
                "max_redemptions": 1,
                "name": order.discount_code or "Discount",
                "metadata": {"order_number": str(order.number)},
            },
            {"idempotency_key": f"order-{order.number}-coupon"},
        )
        return coupon.id

    async def refund(
        self, order: OrderView, capture_ref: str, amount_cents: int | None = None, key: str | None = None
    ) -> None:
        """Refund the order's payment intent: in full once per order, or `amount_cents` once per `key`.

        Raises:
            PaymentUnavailable: Stripe is down or refused the request.
        """
        params: dict[str, Any] = {"payment_intent": capture_ref, "metadata": {"order_number": str(order.number)}}
        if amount_cents is not None:
            params["amount"] = amount_cents
        try:
            await self._client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": key or f"order-{order.number}-refund"},
            )
        except stripe.StripeError as exc:
            raise PaymentUnavailable(f"{type(exc).__name__}: {exc.http_status}") from exc

    async def close_link(self, reference: str) -> None:
        """Expire the order's Checkout Session, so nobody pays a cancelled order.

        Raises:
            PaymentUnavailable: Stripe is down or refused the request.
        """
        try:
            await self._client.v1.checkout.sessions.expire_async(reference)
        except stripe.StripeError as exc:
            raise PaymentUnavailable(f"{type(exc).__name__}: {exc.http_status}") from exc

    def verified_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        """The event of a webhook body signed by Stripe within the last five minutes. The
        signature is checked first, so nothing about an unsigned body is looked at.

        Raises:
            WebhookRefused: a bad, missing or stale signature (Stripe signs UTF-8 text only).
            ValueError: a signed body that is not JSON or not an event.
        """
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature, self._webhook_secret, WEBHOOK_TOLERANCE_SECONDS)
        except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
            raise WebhookRefused("bad, missing or stale Stripe-Signature") from exc
        try:
            event = json.loads(text)
        except ValueError as exc:
            raise ValueError("the body is not JSON") from exc
        data = event.get("data") if isinstance(event, dict) else None
        if not (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
            and isinstance(data, dict)
            and isinstance(data.get("object"), dict)
        ):
            raise ValueError("not a Stripe event")
        return event

    async def close(self) -> None:
        await self._http.close_async()
