"""Payments: the interface dialogs use, and a built-in sandbox provider with signed pay links."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PaymentLink:
    reference: str
    url: str


class Payments(Protocol):
    def create_link(self, order_number: int, amount_cents: int) -> PaymentLink: ...
    def verify(self, reference: str, signature: str) -> bool: ...


class SandboxPayments:
    """A stand-in gateway: the pay link opens our own `/pay/{reference}` page.

    The link carries an HMAC of the reference, so a guessed or altered link is refused.
    """

    def __init__(self, base_url: str, secret: bytes) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret = secret

    def _sign(self, reference: str) -> str:
        return hmac.new(self._secret, reference.encode(), hashlib.sha256).hexdigest()[:32]

    def create_link(self, order_number: int, amount_cents: int) -> PaymentLink:
        reference = f"pay_{order_number}_{secrets.token_hex(6)}"
        return PaymentLink(reference, f"{self._base_url}/pay/{reference}?sig={self._sign(reference)}")

    def verify(self, reference: str, signature: str) -> bool:
        return hmac.compare_digest(self._sign(reference).encode(), (signature or "").encode("utf-8", "replace"))
