"""Payments: the interface dialogs use, and a built-in sandbox provider with signed pay links.
Stripe and PayPal meet the same interface in `integrations/stripe_payments.py` and
`integrations/paypal_payments.py`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from integrations.orders import OrderView


@dataclass(frozen=True)
class PaymentLink:
    reference: str
    url: str


class PaymentUnavailable(Exception):
    """The payment provider did not answer, or refused: nothing to send the shopper yet."""


class Payments(Protocol):
    async def create_link(self, order: OrderView) -> PaymentLink:
        """The link where the shopper pays this order; `reference` identifies it with the provider.

        Raises:
            PaymentUnavailable: the provider is down or refused; asking again later is safe.
        """
        ...

    async def refund(
        self, order: OrderView, capture_ref: str, amount_cents: int | None = None, key: str | None = None
    ) -> None:
        """Give back what was paid (`capture_ref`: the provider's payment id): all of it for a
        cancelled order, or `amount_cents` for a returned item; `key` makes the refund once
        (by default one full refund per order).

        Raises:
            PaymentUnavailable: the provider is down or refused.
        """
        ...

    async def close_link(self, reference: str) -> None:
        """Stop the link of an order cancelled before it was paid from taking a payment.

        Raises:
            PaymentUnavailable: the provider is down or refused.
        """
        ...

    async def close(self) -> None: ...


class SandboxPayments:
    """A stand-in gateway: the pay link opens our own `/pay/{reference}` page.

    The link carries an HMAC of the reference, so a guessed or altered link is refused.
    """

    def __init__(self, base_url: str, secret: bytes) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret = secret

    def _sign(self, reference: str) -> str:
        return hmac.new(self._secret, reference.encode(), hashlib.sha256).hexdigest()[:32]

    async def create_link(self, order: OrderView) -> PaymentLink:
        reference = f"pay_{order.number}_{secrets.token_hex(6)}"
        return PaymentLink(reference, f"{self._base_url}/pay/{reference}?sig={self._sign(reference)}")

    async def refund(
        self, order: OrderView, capture_ref: str, amount_cents: int | None = None, key: str | None = None
    ) -> None:
        """Nothing moved in the sandbox, so nothing goes back."""

    async def close_link(self, reference: str) -> None:
        """The pay page itself refuses an order that is not awaiting payment."""

    async def close(self) -> None:
        pass

    def verify(self, reference: str, signature: str) -> bool:
        return hmac.compare_digest(self._sign(reference).encode(), (signature or "").encode("utf-8", "replace"))
