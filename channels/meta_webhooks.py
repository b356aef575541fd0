"""What Meta's webhooks share (Messenger and the WhatsApp Cloud API): the `X-Hub-Signature-256`
check on the raw body and the GET subscription check of the callback URL."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from bot.channel import RawRequest


def signed_by(secret: bytes, req: RawRequest) -> bool:
    """True when `X-Hub-Signature-256` is the HMAC-SHA256 of the raw body under the app secret
    (compared in constant time; Meta signs the bytes it sent, so nothing is re-serialised)."""
    header = req.headers.get("X-Hub-Signature-256", "")
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, req.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").encode("utf-8", "replace"))


def challenge(query: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to echo when Meta's subscription check carries our verify token, else None."""
    if query.get("hub.mode") == "subscribe" and hmac.compare_digest(
        query.get("hub.verify_token", "").encode(), verify_token.encode()
    ):
        return query.get("hub.challenge", "")
    return None
