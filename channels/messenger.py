"""Facebook Messenger: webhook verification and parsing, rendering and the Send API (aiohttp)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar

import aiohttp

from bot.channel import (
    CART_REMINDER,
    MARKETING,
    NEVER,
    ORDER_UPDATE,
    REFUSED,
    REQUESTED,
    TAGGED,
    Acknowledgement,
    ChannelProfile,
    RawRequest,
    Rule,
    SendError,
    load_json,
)
from bot.config import Settings
from bot.i18n import text_in
from bot.messages import ChannelAddress, InboundMessage, Media, OutboundMessage, SendReceipt, StatusUpdate
from channels.meta_webhooks import challenge, signed_by

log = logging.getLogger(__name__)

TEXT_LIMIT = 2000
QUICK_REPLY_LIMIT = 13
TITLE_LIMIT = 20
CARD_LIMIT = 10
CARD_TEXT_LIMIT = 80
BUTTON_TEMPLATE_TEXT_LIMIT = 640
PAYLOAD_LIMIT = 1000
TRANSIENT_ERROR_CODES = {1, 2, 4, 17, 32, 613}  # temporary or rate limited: retry later
# How far back in the thread a send in doubt is looked for (the Conversations API pages by
# recency), and how much our clock and Meta's may disagree.
THREAD_LOOKBACK = 20
CLOCK_SKEW = timedelta(minutes=1)
# A person's reply after the 24 h window carries HUMAN_AGENT (allowed up to 7 days; the shop
# decides which kind applies, see bot/handoff.py).
MESSAGING_TYPE = {
    "reply": ("RESPONSE", None),
    "update": ("UPDATE", None),
    "post_purchase": ("MESSAGE_TAG", "POST_PURCHASE_UPDATE"),
    # Promotions may only go inside the 24-hour window; the policy gate sees to that.
    "marketing": ("UPDATE", None),
    "human_agent": ("MESSAGE_TAG", "HUMAN_AGENT"),
}


PATH = "/webhooks/messenger"
# Any content inside the 24-hour window; outside it only a tag that fits, and no tag may carry
# promotions or cart reminders (a restock notice fits none either); POST_PURCHASE_UPDATE fits an
# order the shopper placed. Recurring notifications (marketing outside the window) were retired
# on 10 February 2026 (PLATFORMS.md sections 7 and 9).
PROFILE = ChannelProfile(
    "messenger",
    pushable=True,
    window=timedelta(hours=24),
    agent_window=timedelta(days=7),
    aliases=r"messenger|facebook|\bfb\b|臉書",
    rules={
        MARKETING: Rule(NEVER, REFUSED),
        CART_REMINDER: Rule(NEVER, REFUSED),
        REQUESTED: Rule(NEVER, REFUSED),
        ORDER_UPDATE: Rule(NEVER, TAGGED, honours_opt_out=False),
    },
)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(msg: OutboundMessage) -> list[dict[str, Any]]:
    """Send API `message` objects: text or a button template for links, a generic template
    carousel for product cards; quick replies ride on the last one."""
    messages: list[dict[str, Any]] = []
    text = msg.text or ""
    if msg.links:
        messages.append(
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": _cut(text or text_in(msg.language, "render.links"), BUTTON_TEMPLATE_TEXT_LIMIT),
                        "buttons": [
                            {"type": "web_url", "url": link.url, "title": _cut(link.title, TITLE_LIMIT)}
                            for link in msg.links[:3]
                        ],
                    },
                }
            }
        )
    elif text:
        messages.extend({"text": text[i : i + TEXT_LIMIT]} for i in range(0, len(text), TEXT_LIMIT))
    if msg.cards:
        messages.append(
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "generic",
                        "elements": [
                            {
                                "title": _cut(card.title, CARD_TEXT_LIMIT),
                                "subtitle": _cut(card.subtitle, CARD_TEXT_LIMIT),
                                **({"image_url": card.image_url} if card.image_url else {}),
                                **(
                                    {
                                        "buttons": [
                                            {
                                                "type": "postback",
                                                "title": _cut(b.title, TITLE_LIMIT),
                                                "payload": b.value[:PAYLOAD_LIMIT],
                                            }
                                            for b in card.buttons[:3]
                                        ]
                                    }
                                    if card.buttons
                                    else {}
                                ),
                            }
                            for card in msg.cards[:CARD_LIMIT]
                        ],
                    },
                }
            }
        )
    for item in msg.media:
        kind = item.content_type.split("/")[0]
        messages.append(
            {
                "attachment": {
                    "type": kind if kind in ("image", "audio", "video") else "file",
                    "payload": {"url": item.url, "is_reusable": True},
                }
            }
        )
    if msg.choices:
        if not messages:
            messages.append({"text": text_in(msg.language, "render.choose")})
        messages[-1]["quick_replies"] = [
            {"content_type": "text", "title": _cut(c.title, TITLE_LIMIT), "payload": c.value[:PAYLOAD_LIMIT]}
            for c in msg.choices[:QUICK_REPLY_LIMIT]
        ]
    return messages


def parse_events(body: bytes) -> list[InboundMessage | StatusUpdate]:
    """Every event of every entry; a malformed event (or entry) is skipped, the rest are kept.

    Raises:
        ValueError: the body is not a JSON page webhook.
    """
    data = load_json(body)
    if not isinstance(data, dict) or data.get("object") != "page" or not isinstance(data.get("entry"), list):
        raise ValueError('expected {"object": "page", "entry": [...]}')
    events: list[InboundMessage | StatusUpdate] = []
    for entry in data["entry"]:
        messaging = entry.get("messaging") if isinstance(entry, dict) else None
        if not isinstance(messaging, list):
            if messaging is not None or not isinstance(entry, dict):
                log.warning("skipped a malformed Messenger entry")
            continue
        for event in messaging:
            try:
                parsed = _event(event)
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("skipped a malformed Messenger event")
                continue
            if parsed is not None:
                events.append(parsed)
    return events


# Meta's times are milliseconds since 1970; anything past the year 9999 is not one.
MAX_EPOCH_MS = 253_402_300_799_999


def _text(value: Any, what: str, default: str | None = None) -> str:
    """A string field; ids may come as numbers. Raises: ValueError for anything else."""
    if value is None and default is not None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**20:
        return str(value)
    raise ValueError(f"{what} must be a string")


def _words(value: Any, what: str) -> str:
    """A text field: a string, or absent. Raises: ValueError for anything else (a number too)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"{what} must be a string")


def _millis(value: Any, what: str) -> int:
    """Raises: ValueError unless `value` is a time in milliseconds that a date can hold."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCH_MS:
        raise ValueError(f"{what} must be milliseconds since 1970")
    return value


def _event(event: dict[str, Any]) -> InboundMessage | StatusUpdate | None:
    """Raises: KeyError, TypeError, ValueError or AttributeError for a malformed event."""
    sender = _text(event["sender"]["id"], "sender.id")
    stamp = _millis(event.get("timestamp") or 0, "timestamp")
    if "message" in event:
        message = event["message"]
        if message.get("is_echo"):
            return None  # our own message, echoed back
        media = tuple(
            Media(_words(a["payload"]["url"], "attachment url"), f"{_words(a.get('type'), 'type') or 'file'}/*")
            for a in message.get("attachments") or []
            if (a.get("payload") or {}).get("url")
        )
        reply = _words((message.get("quick_reply") or {}).get("payload"), "quick_reply.payload")
        text = reply or _words(message.get("text"), "text")
        return InboundMessage("messenger", sender, _text(message["mid"], "mid"), text, media)
    if "postback" in event:
        postback = event["postback"]
        ref = (postback.get("referral") or {}).get("ref")
        extra = {"ref": _text(ref, "referral.ref")} if ref else {}
        mid = _text(postback.get("mid"), "mid", f"postback-{sender}-{stamp}")
        text = _words(postback.get("payload"), "payload") or _words(postback.get("title"), "title")
        return InboundMessage("messenger", sender, mid, text, extra=extra)
    if "referral" in event:
        return InboundMessage(
            "messenger",
            sender,
            f"referral-{sender}-{stamp}",
            "",
            extra={"ref": _text(event["referral"].get("ref"), "referral.ref", "")},
        )
    if "delivery" in event:
        return StatusUpdate(
            "messenger",
            None,
            "delivered",
            address=sender,
            watermark_ms=_millis(event["delivery"]["watermark"], "watermark"),
        )
    if "read" in event:
        return StatusUpdate(
            "messenger", None, "read", address=sender, watermark_ms=_millis(event["read"]["watermark"], "watermark")
        )
    return None  # optins and other event types we do not act on


def shown_text(message: dict[str, Any]) -> str:
    """The text by which a Send API message is known in the thread's `message` field: a text
    message's. Templates and attachments have none there to compare (empty)."""
    return message.get("text", "")


def _graph_time(value: str) -> datetime:
    """A Graph API time, such as 2026-12-03T10:15:00+0000."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")


class MessengerChannel:
    name: ClassVar[str] = "messenger"
    profile: ClassVar[ChannelProfile] = PROFILE
    webhook_paths: ClassVar[tuple[str, ...]] = (PATH,)
    subscription_paths: ClassVar[tuple[str, ...]] = (PATH,)  # Meta's GET check of the callback URL
    numbered_choices: ClassVar[bool] = False

    @classmethod
    def missing_settings(cls, settings: Settings) -> str | None:
        if settings.messenger_page_access_token and settings.messenger_app_secret and settings.messenger_verify_token:
            return None
        return "MESSENGER_PAGE_ACCESS_TOKEN/MESSENGER_APP_SECRET/MESSENGER_VERIFY_TOKEN"

    def __init__(self, settings: Settings) -> None:
        if (
            settings.messenger_app_secret is None
            or settings.messenger_page_access_token is None
            or settings.messenger_verify_token is None
        ):
            raise ValueError(
                "Messenger needs MESSENGER_PAGE_ACCESS_TOKEN, MESSENGER_APP_SECRET and MESSENGER_VERIFY_TOKEN"
            )
        self._page_name = settings.messenger_page_name
        self._secret = settings.messenger_app_secret.get_secret_value().encode()
        self._token = settings.messenger_page_access_token.get_secret_value()
        self.verify_token = settings.messenger_verify_token.get_secret_value()
        graph = f"{settings.graph_api_base.rstrip('/')}/{settings.graph_api_version}"
        self._url = f"{graph}/me/messages"
        self._conversations_url = f"{graph}/me/conversations"
        self._proof = hmac.new(self._secret, self._token.encode(), hashlib.sha256).hexdigest()
        self._timeout = aiohttp.ClientTimeout(total=settings.send_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def verify(self, req: RawRequest) -> bool:
        return signed_by(self._secret, req)

    def acknowledge(self, req: RawRequest) -> Acknowledgement:
        return Acknowledgement(200, "EVENT_RECEIVED")

    def keyword(self, text: str) -> str | None:
        return None

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        """m.me with a `ref`: Meta sends it back in a referral (an open thread) or with Get Started."""
        return f"https://m.me/{self._page_name}?ref={ref}" if self._page_name else None

    def subscription(self, query) -> str | None:
        """The challenge to echo when Meta's subscription check carries our verify token."""
        return challenge(query, self.verify_token)

    def parse(self, req: RawRequest) -> list[InboundMessage | StatusUpdate]:
        return parse_events(req.body)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        params = {"access_token": self._token, "appsecret_proof": self._proof}
        try:
            async with self._http().post(self._url, params=params, json=body) as resp:
                data = await resp.json(content_type=None) if resp.content_length != 0 else {}
                status = resp.status
        except aiohttp.ClientConnectorError as exc:  # no connection, so nothing was sent: no doubt
            raise SendError(f"{type(exc).__name__}: {exc}"[:200], "unreachable") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:  # it may have arrived: see `_already_sent`
            raise SendError(f"{type(exc).__name__}: {exc}"[:200], "network") from exc
        except ValueError as exc:
            raise SendError("invalid response from the Send API", "bad_response") from exc
        if status == 200:
            return data or {}
        error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
        code = error.get("code")
        transient = status == 429 or status >= 500 or code in TRANSIENT_ERROR_CODES
        raise SendError(
            str(error.get("message") or f"HTTP {status}")[:200], str(code or status), permanent=not transient
        )

    async def send(
        self, to: ChannelAddress, msg: OutboundMessage, resume_from: int = 0, in_doubt: datetime | None = None
    ) -> SendReceipt:
        """Raises: SendError; permanent when Meta refuses (blocked, window closed, bad token).

        A part an earlier try may have sent (`in_doubt`) is looked up in the thread first and not
        sent again if it is there; if the thread cannot be checked it is not sent blind either:
        the SendError ("in_doubt") has the outbox check again later, and give up after its attempts.
        """
        recipient = {"id": to.address}
        messaging_type, tag = MESSAGING_TYPE.get(msg.kind, MESSAGING_TYPE["update"])
        try:
            await self._post({"recipient": recipient, "sender_action": "typing_on"})
        except SendError as exc:  # typing is a courtesy; the message itself decides
            log.info("typing indicator not sent", extra={"reason": exc.reason})
        message_id = None
        for index, message in enumerate(render(msg)):
            if index < resume_from:
                continue
            if in_doubt and index == resume_from:
                found = await self._already_sent(to.address, message, in_doubt, index)
                if found is not None:
                    message_id = found  # the try whose answer was lost had sent it
                    continue
            body = {"recipient": recipient, "messaging_type": messaging_type, "message": message}
            if tag:
                body["tag"] = tag
            try:
                message_id = (await self._post(body)).get("message_id")
            except SendError as exc:
                exc.parts_sent = index
                raise
        return SendReceipt(message_id, "sent")

    async def _already_sent(self, psid: str, message: dict[str, Any], since: datetime, index: int) -> str | None:
        """The id of a message from the Page to `psid` with this message's text, created after
        `since` (less the clock skew), in the Page's thread with them; None if there is none.

        Raises:
            SendError: "in_doubt", when the thread cannot tell: the Conversations API failed, or
                the part has no text to know it by (a template or an attachment; permanent).
        """
        text = shown_text(message)
        if not text:
            raise SendError(
                "not sent again: an earlier try may have reached the shopper, and a message "
                "without text cannot be found in the thread",
                "in_doubt",
                permanent=True,
                parts_sent=index,
            )
        params = {
            "platform": "messenger",
            "user_id": psid,
            "access_token": self._token,
            "appsecret_proof": self._proof,
            "fields": f"messages.limit({THREAD_LOOKBACK}){{message,created_time,from,id}}",
        }
        try:
            async with self._http().get(self._conversations_url, params=params) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
            if status != 200:
                error = data.get("error", {}) if isinstance(data, dict) else {}
                raise ValueError(f"HTTP {status} {error.get('code') or ''}".strip())
            thread = [m for c in data["data"] for m in (c.get("messages") or {}).get("data", [])]
            earliest = since - CLOCK_SKEW
            return next(
                (
                    str(m["id"])
                    for m in thread
                    if m.get("message") == text
                    and str((m.get("from") or {}).get("id")) != psid
                    and _graph_time(m["created_time"]) >= earliest
                ),
                None,
            )
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("could not check the thread for an earlier send", extra={"error": type(exc).__name__})
            raise SendError(
                f"not sent again: an earlier try may have reached the shopper, and the thread "
                f"could not be checked ({type(exc).__name__}: {exc})"[:200],
                "in_doubt",
                parts_sent=index,
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
