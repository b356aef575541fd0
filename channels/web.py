"""The web chat channel: signed anonymous sessions and rendering for the widget. The widget
fetches its messages (service/webchat.py), so there is nothing to send and no webhook."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from bot.channel import HOME_CHANNEL, NEVER, ORDER_UPDATE, REQUESTED, Acknowledgement, ChannelProfile, RawRequest, Rule
from bot.messages import ChannelAddress, InboundMessage, OutboundMessage, SendReceipt, StatusUpdate

SESSION_TTL_SECONDS = 30 * 24 * 3600

# The web chat reaches nobody who left, but a shopper who comes back sees what waits there:
# notices they asked for and order updates go there, promotions and reminders do not.
PROFILE = ChannelProfile(
    HOME_CHANNEL,
    pushable=False,
    pulled=True,
    aliases=r"\bweb\b|website|browser|computer|laptop|網頁|網站|瀏覽器|電腦",
    rules={
        REQUESTED: Rule(NEVER, quiet_hours=False),
        ORDER_UPDATE: Rule(NEVER, honours_opt_out=False, quiet_hours=False),
    },
)


class WebChannel:
    """Sessions are `id.issued.signature` tokens (HMAC-SHA256), so the server keeps no session table."""

    name: ClassVar[str] = HOME_CHANNEL
    profile: ClassVar[ChannelProfile] = PROFILE
    webhook_paths: ClassVar[tuple[str, ...]] = ()
    numbered_choices: ClassVar[bool] = False

    def __init__(self, secret: bytes, base_url: str = "", ttl_seconds: int = SESSION_TTL_SECONDS) -> None:
        self._secret = secret
        self._base_url = base_url
        self._ttl = ttl_seconds

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        return f"{self._base_url}/?link={token}"  # the widget sends it as if typed

    # No webhook and nothing to send: the widget posts and polls through the web chat's own API.
    def verify(self, req: RawRequest) -> bool:
        return False

    def parse(self, req: RawRequest) -> list[InboundMessage | StatusUpdate]:
        return []

    def acknowledge(self, req: RawRequest) -> Acknowledgement:
        return Acknowledgement(204)

    def subscription(self, query: Mapping[str, str]) -> str | None:
        return None

    def keyword(self, text: str) -> str | None:
        return None

    async def send(
        self, to: ChannelAddress, msg: OutboundMessage, resume_from: int = 0, in_doubt: datetime | None = None
    ) -> SendReceipt:
        return SendReceipt(None, "pending")  # it waits in the transcript for the widget

    async def close(self) -> None:
        return None

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def new_session(self, now: float | None = None) -> tuple[str, str]:
        """A fresh session id and its token."""
        session_id = secrets.token_hex(16)
        return session_id, self.token_for(session_id, now)

    def token_for(self, session_id: str, now: float | None = None) -> str:
        payload = f"{session_id}.{int(now if now is not None else time.time())}"
        return f"{payload}.{self._sign(payload)}"

    def session_of(self, token: str | None, now: float | None = None) -> str | None:
        """The session id of a valid, unexpired token, else None."""
        if not token or len(token) > 200 or token.count(".") != 2:
            return None
        session_id, issued, signature = token.split(".")
        if not hmac.compare_digest(self._sign(f"{session_id}.{issued}").encode(), signature.encode("utf-8", "replace")):
            return None
        if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > self._ttl:
            return None
        return session_id


def render(message_id: int, direction: str, text: str | None, payload: dict[str, Any] | None) -> dict[str, Any]:
    """One transcript entry as the widget's JSON."""
    if direction == "out" and payload:
        msg = OutboundMessage.from_dict(payload)
        return {
            "id": message_id,
            "direction": "out",
            "text": msg.text,
            "choices": [{"title": c.title, "value": c.value} for c in msg.choices],
            "cards": [
                {
                    "title": c.title,
                    "subtitle": c.subtitle,
                    "image_url": c.image_url,
                    "url": c.url,
                    "buttons": [{"title": b.title, "value": b.value} for b in c.buttons],
                }
                for c in msg.cards
            ],
            "links": [{"title": link.title, "url": link.url} for link in msg.links],
            "media": [{"url": m.url, "content_type": m.content_type} for m in msg.media],
        }
    return {
        "id": message_id,
        "direction": direction,
        "text": text,
        "choices": [],
        "cards": [],
        "links": [],
        "media": [],
    }
