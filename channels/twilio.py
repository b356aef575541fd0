"""Twilio webhook verification, parsing and sending for WhatsApp and SMS."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channel import (
    ALWAYS,
    CART_REMINDER,
    MARKETING,
    NEVER,
    ORDER_UPDATE,
    OUTSIDE_WINDOW,
    REQUESTED,
    TEMPLATE,
    Acknowledgement,
    ChannelProfile,
    RawRequest,
    Rule,
    SendError,
)
from bot.config import Settings
from bot.i18n import text_in
from bot.messages import (
    ChannelAddress,
    InboundMessage,
    Media,
    OutboundMessage,
    SendReceipt,
    StatusUpdate,
    numbered_options,
)
from bot.store.content import ContentStore
from bot.store.database import Database
from channels.twilio_content import Content, render_content

log = logging.getLogger(__name__)

BODY_LIMIT = 1600  # Twilio refuses longer bodies
MEDIA_LIMIT = 10
# US carriers' and Twilio's single-word keywords (PLATFORMS.md §5); only the whole message counts.
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_WORDS = {"START", "UNSTOP", "YES"}
HELP_WORDS = {"HELP", "INFO"}
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")
TRANSIENT_CODES = {20429, 21611, 30001}
OPTED_OUT_CODE = 21610
STATUS_PATH = "/webhooks/twilio/status"
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# What each purpose of a message the shop sends first needs (PLATFORMS.md sections 4, 5, 9):
# - WhatsApp: any free-form message inside the 24-hour window, which is a service conversation;
#   outside it only an approved template. Business-initiated marketing needs an explicit opt-in,
#   and marketing templates to US (+1) numbers are blocked since 1 April 2025; Meta files
#   abandoned-cart reminders as marketing templates, so outside the window a cart reminder needs
#   the opt-in, a template and a number outside the US. Restock notices and order updates go as
#   utility templates (they carry no offer).
# - SMS (US, TCPA): marketing, cart reminders included, needs prior express consent and keeps to
#   quiet hours; a notice the shopper asked for and order updates are informational. A STOP to our
#   number blocks every text to it, whatever the purpose.
WHATSAPP = ChannelProfile(
    "whatsapp",
    pushable=True,
    window=timedelta(hours=24),
    address_space="phone",
    address_prefix="whatsapp:",
    aliases=r"whats\s*app|\bwa\b",
    rules={
        MARKETING: Rule(ALWAYS, TEMPLATE, "marketing"),
        CART_REMINDER: Rule(OUTSIDE_WINDOW, TEMPLATE, "marketing"),
        REQUESTED: Rule(NEVER, TEMPLATE, "utility"),
        ORDER_UPDATE: Rule(NEVER, TEMPLATE, "utility", honours_opt_out=False),
    },
)
SMS = ChannelProfile(
    "sms",
    pushable=True,
    address_space="phone",
    consent_keywords=True,
    texts_any_number=True,
    aliases=r"\bsms\b|\btext\b|my phone|\bphone\b|簡訊|手機",
    rules={
        MARKETING: Rule(ALWAYS),
        CART_REMINDER: Rule(ALWAYS),
        REQUESTED: Rule(NEVER),
        ORDER_UPDATE: Rule(NEVER, honours_opt_out=False),
    },
)


def sms_keyword(text: str) -> str | None:
    """ "opt_out", "opt_in" or "help" when the whole message is a carrier keyword."""
    word = text.strip().upper()
    if word in OPT_OUT_WORDS:
        return "opt_out"
    if word in OPT_IN_WORDS:
        return "opt_in"
    if word in HELP_WORDS:
        return "help"
    return None


def sms_units(text: str) -> tuple[int, int]:
    """(length in encoding units, units per 10-segment message) for GSM-7 or UCS-2 text."""
    if all(c in GSM7 or c in GSM7_EXTENDED for c in text):
        return sum(2 if c in GSM7_EXTENDED else 1 for c in text), 153 * 10
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text), 67 * 10


def fits(text: str, limit: int = BODY_LIMIT) -> bool:
    units, capacity = sms_units(text)
    return len(text) <= limit and units <= capacity


def split_text(text: str, limit: int = BODY_LIMIT) -> list[str]:
    """Split at whitespace so that each part fits one message: `limit` characters and at most
    ten segments in its encoding (one emoji makes a text UCS-2, with 67 characters a segment)."""
    if fits(text, limit):  # the usual case, without measuring it word by word
        return [text.strip()]
    parts: list[str] = []
    current = ""
    for token in re.split(r"(\s+)", text):
        candidate = current + token
        if current.strip() and not fits(candidate, limit):
            parts.append(current.rstrip())
            current = token.lstrip()
        else:
            current = candidate
        while not fits(current, limit):  # a single word longer than a message
            cut = min(len(current), limit)
            while not fits(current[:cut], limit):
                cut -= 1
            parts.append(current[:cut])
            current = current[cut:]
    if current.strip() or not parts:
        parts.append(current.strip())
    return parts


@dataclass(frozen=True)
class TwilioPart:
    body: str
    media_urls: tuple[str, ...] = ()
    content: Content | None = None  # sent by its resource's SID with its variables, without body


def tappable_parts(msg: OutboundMessage, cards: bool = True) -> list[TwilioPart]:
    """A WhatsApp message inside the window: Content where it fits (`render_content`), its
    texts split to fit a message each."""
    parts: list[TwilioPart] = []
    for piece in render_content(msg, cards):
        if piece.content is not None:
            parts.append(TwilioPart("", (), piece.content))
        elif not piece.body:
            parts.append(TwilioPart("", piece.media_urls))
        else:
            for i, chunk in enumerate(split_text(piece.body)):
                parts.append(TwilioPart(chunk, piece.media_urls if i == 0 else ()))
    return parts


def render(msg: OutboundMessage, channel: str) -> list[TwilioPart]:
    """Numbered text: on SMS always, on WhatsApp outside the 24-hour window (or when its
    Content cannot be made); WhatsApp gets a picture with a caption per product card. The
    shopper's "2" is mapped back to the choice before the dialog sees it (inside the window
    WhatsApp's buttons and list rows carry the same numbers: `channels/twilio_content.py`)."""
    options = numbered_options(msg)
    number = iter(range(msg.option_offset + 1, msg.option_offset + len(options) + 1))
    parts: list[TwilioPart] = []
    lines: list[str] = [msg.text] if msg.text else []
    for card in msg.cards[:10]:
        card_lines = [f"*{card.title}*" if channel == "whatsapp" else card.title, card.subtitle]
        card_lines += [f"{next(number)}. {b.title}" for b in card.buttons]
        if channel == "whatsapp" and card.image_url:
            if lines:
                parts.append(TwilioPart("\n".join(lines)))
                lines = []
            parts.append(TwilioPart("\n".join(card_lines), (card.image_url,)))
        else:
            lines.append("\n".join(card_lines))
    for item in msg.links:
        lines.append(f"{item.title}: {item.url}")
    if msg.choices:
        lines.append("\n".join(f"{next(number)}. {c.title}" for c in msg.choices))
    if options:
        lines.append(text_in(msg.language, "render.reply_with_number"))
    media = tuple(m.url for m in msg.media[:MEDIA_LIMIT])
    if lines or media:
        for i, chunk in enumerate(split_text("\n\n".join(lines))):
            parts.append(TwilioPart(chunk, media if i == 0 else ()))
    return parts


class TwilioHttpClient(AsyncHttpClient):
    """The HTTP client twilio-python's REST client sends through (its interface for custom
    clients). Its own `AsyncTwilioHttpClient` turns every form into aiohttp's FormData, builds
    the Basic credentials and log lines anew and keeps a copy of each request: about a sixth of
    the CPU a send costs, which a large campaign spends 100,000 times. This one encodes the form
    once and reuses the credentials; it logs nothing (requests carry phone numbers and bodies)."""

    def __init__(self) -> None:
        super().__init__(log, True)
        self._session = aiohttp.ClientSession()  # 100 pooled connections, aiohttp's default
        self._credentials: dict[tuple[str, str], str] = {}

    async def request(
        self,
        method: str,
        url: str,
        params: dict | None = None,
        data: dict | None = None,
        headers: dict | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            if (credentials := self._credentials.get(auth)) is None:
                credentials = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
                self._credentials[auth] = credentials
            headers["Authorization"] = credentials
        body = None
        if data and headers.get("Content-Type") == "application/json":  # the Content API takes JSON
            body = json.dumps(data, ensure_ascii=False).encode()
        elif data:
            body = urlencode(data, doseq=True).encode()  # a list (MediaUrl) becomes repeated fields
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with self._session.request(
            method, url, params=params, data=body, headers=headers, allow_redirects=allow_redirects
        ) as response:
            return Response(response.status, await response.text(), response.headers)

    async def close(self) -> None:
        await self._session.close()


class TwilioChannel:
    """WhatsApp or SMS through Twilio (`WhatsAppChannel`, `SmsChannel`): one account, validator
    and HTTP client; the delivery reports of both arrive on one status path."""

    name: ClassVar[str]
    profile: ClassVar[ChannelProfile]
    webhook_paths: ClassVar[tuple[str, ...]]
    numbered_choices: ClassVar[bool] = True

    @staticmethod
    def missing(settings: Settings, sender: str | None, sender_setting: str) -> str | None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            return "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN"
        if sender or settings.twilio_messaging_service_sid:
            return None
        return f"{sender_setting} (or TWILIO_MESSAGING_SERVICE_SID)"

    def __init__(self, settings: Settings, sender: str | None) -> None:
        if settings.twilio_auth_token is None:
            raise ValueError("the Twilio channels need TWILIO_AUTH_TOKEN")
        token = settings.twilio_auth_token.get_secret_value()
        self._validator = RequestValidator(token)
        self._sender = sender
        # A Messaging Service sends from its own pool of senders, in place of `from_`.
        self._service = settings.twilio_messaging_service_sid
        self._status_callback = f"{settings.base_url}{STATUS_PATH}"
        # Each request to Twilio is bounded by SEND_TIMEOUT_SECONDS (`send` and `_already_sent`).
        self._timeout = settings.send_timeout_seconds
        self._credentials = (settings.twilio_account_sid or "", token)
        self._api_base = settings.twilio_api_base.rstrip("/")
        self._content_url = settings.twilio_content_api_base.rstrip("/") + "/v1/Content"
        self._tappable = settings.twilio_whatsapp_tappable and self.name == "whatsapp"
        self._cards = settings.twilio_whatsapp_cards
        self._contents = ContentStore(None, "twilio")  # in memory until `attach_store`
        self._making: dict[str, asyncio.Lock] = {}
        self._http: TwilioHttpClient | None = None
        self._client: Client | None = None

    def attach_store(self, db: Database) -> None:
        """Keep the Content resources made for WhatsApp in the store, for every process."""
        self._contents = ContentStore(db, "twilio")

    def _rest(self) -> Client:
        """The REST client, made on first use: its HTTP session needs the running event loop."""
        if self._client is None:
            self._http = TwilioHttpClient()
            self._client = Client(*self._credentials, http_client=self._http)
            self._client.api.base_url = self._api_base
        return self._client

    def verify(self, req: RawRequest) -> bool:
        signature = req.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        return self._validator.validate(
            req.url, dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)), signature
        )

    def acknowledge(self, req: RawRequest) -> Acknowledgement:
        if req.path == STATUS_PATH:
            return Acknowledgement(204)
        return Acknowledgement(200, TWIML_EMPTY, "text/xml")  # we reply through the REST API

    def subscription(self, query) -> str | None:
        return None

    def keyword(self, text: str) -> str | None:
        return sms_keyword(text) if self.profile.consent_keywords else None

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        return None

    def parse(self, req: RawRequest) -> list[InboundMessage | StatusUpdate]:
        """Raises: ValueError for a form that is not a Twilio message for this channel."""
        if req.path == STATUS_PATH:
            return [self.parse_status(req)]
        form = dict(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        sid, sender = form.get("MessageSid") or form.get("SmsSid"), form.get("From", "")
        if not sid or not sender:
            raise ValueError("MessageSid and From are required")
        if sender.startswith("whatsapp:") != (self.name == "whatsapp"):
            raise ValueError(f"From {('is not' if self.name == 'whatsapp' else 'is')} a WhatsApp address")
        media = []
        count = form.get("NumMedia", "0") or "0"
        if not (count.isascii() and count.isdigit() and len(count) <= 3):
            raise ValueError("NumMedia must be a small number")
        for i in range(min(int(count), MEDIA_LIMIT)):
            if url := form.get(f"MediaUrl{i}"):
                media.append(Media(url, form.get(f"MediaContentType{i}", "application/octet-stream")))
        extra = {
            k: form[k] for k in ("Latitude", "Longitude", "Address", "Label", "ButtonText", "ListTitle") if form.get(k)
        }
        # A tapped button (quick reply, card) or list row carries the option's number, as typed.
        text = form.get("ButtonPayload") or form.get("ListId") or form.get("Body", "")
        place = extra.get("Address") or ",".join(extra[k] for k in ("Latitude", "Longitude") if k in extra)
        if not text and place:  # a shared location; a careless sender may leave out half of it
            text = f"my location: {place}"
        return [
            InboundMessage(
                self.name, sender, sid, text, tuple(media), profile_name=form.get("ProfileName"), extra=extra
            )
        ]

    @staticmethod
    def parse_status(req: RawRequest) -> StatusUpdate:
        """Raises: ValueError when the callback lacks a message id or status."""
        form = dict(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True))
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not status:
            raise ValueError("MessageSid and MessageStatus are required")
        channel = (
            "whatsapp"
            if form.get("From", "").startswith("whatsapp:") or form.get("To", "").startswith("whatsapp:")
            else "sms"
        )
        return StatusUpdate(channel, sid, status.lower(), form.get("ErrorCode") or None, form.get("To"))

    async def send(
        self, to: ChannelAddress, msg: OutboundMessage, resume_from: int = 0, in_doubt: datetime | None = None
    ) -> SendReceipt:
        """Raises: SendError, permanent for refusals such as 21610 (opted out)."""
        address = to.address
        if self.name == "whatsapp" and not address.startswith("whatsapp:"):
            address = f"whatsapp:{address}"
        sid = None
        if msg.template is not None and self.name == "whatsapp":
            # An approved template goes by its Content SID; body and media must be left out.
            parts = [TwilioPart("")]
            template = {
                "content_sid": msg.template.content_sid,
                "content_variables": json.dumps(msg.template.variables, ensure_ascii=False),
            }
        elif self._tappable and self._in_session(msg):
            parts, template = await self._tappable_parts(msg, create=resume_from == 0), {}
        else:
            parts, template = render(msg, self.name), {}
        for index, part in enumerate(parts):
            if index < resume_from:
                continue
            if (
                in_doubt
                and index == resume_from
                and part.body
                and (found := await self._already_sent(address, part, in_doubt))
            ):
                sid = found  # the try that died had sent it: do not send it twice
                continue
            sender = {"messaging_service_sid": self._service} if self._service else {"from_": self._sender}
            kwargs: dict[str, Any] = {"to": address, **sender, "status_callback": self._status_callback, **template}
            if part.content is not None:
                kwargs["content_sid"] = self._contents.cached(part.content.key())
                kwargs["content_variables"] = json.dumps(part.content.variables, ensure_ascii=False)
            if part.body:
                kwargs["body"] = part.body
            if part.media_urls:
                kwargs["media_url"] = list(part.media_urls)
            try:
                async with asyncio.timeout(self._timeout):
                    created = await self._rest().messages.create_async(**kwargs)
            except TwilioRestException as exc:
                transient = exc.status == 429 or exc.status >= 500 or exc.code in TRANSIENT_CODES
                raise SendError(
                    str(exc.msg)[:200], str(exc.code or exc.status), permanent=not transient, parts_sent=index
                ) from exc
            except Exception as exc:  # timeouts, refused connections: try again later
                raise SendError(f"{type(exc).__name__}: {exc}"[:200], "network", parts_sent=index) from exc
            sid = created.sid
        return SendReceipt(sid, "sent")

    @staticmethod
    def _in_session(msg: OutboundMessage) -> bool:
        """Whether the shopper's 24-hour window is known to be open for this message now."""
        until = msg.session_until
        if until is None:
            return False
        return datetime.now(UTC) < (until if until.tzinfo else until.replace(tzinfo=UTC))

    async def _tappable_parts(self, msg: OutboundMessage, create: bool) -> list[TwilioPart]:
        """The message as WhatsApp Content (`tappable_parts`), each shape's resource found or
        made; numbered text (`render`) when one cannot be made, so the message still goes. A
        message resumed after some of its parts went (`create` false) keeps to resources made
        already: numbered text if its first try had to fall back to it."""
        parts = tappable_parts(msg, self._cards)
        for part in parts:
            if part.content is None:
                continue
            shape = part.content.key()
            if await self._contents.find(shape) is not None:
                continue
            if not create:
                return render(msg, self.name)
            # Sends of one new shape at once make it once: the others wait and find it.
            async with self._making.setdefault(shape, asyncio.Lock()):
                if await self._contents.find(shape) is not None:
                    continue
                try:
                    sid = await self._create_content(part.content)
                except Exception as exc:  # a refusal or an outage: the message goes as numbered text
                    log.warning(
                        "could not create WhatsApp content; sending numbered text",
                        extra={"kind": part.content.kind, "error": f"{type(exc).__name__}: {exc}"[:200]},
                    )
                    return render(msg, self.name)
                await self._contents.keep(shape, sid)
        return parts

    async def _create_content(self, content: Content) -> str:
        """Raises: RuntimeError when the Content API refuses it; timeouts and network errors."""
        self._rest()  # the HTTP client needs the running loop
        assert self._http is not None
        async with asyncio.timeout(self._timeout):
            response = await self._http.request(
                "POST",
                self._content_url,
                data=content.create_request(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                auth=self._credentials,
            )
        if response.status_code >= 300:
            raise RuntimeError(f"Content API {response.status_code}: {response.text[:150]}")
        sid = json.loads(response.text).get("sid")
        if not isinstance(sid, str) or not sid:
            raise RuntimeError("Content API answered without a sid")
        log.info("created WhatsApp content", extra={"kind": content.kind, "content_sid": sid})
        return sid

    async def _already_sent(self, address: str, part: TwilioPart, since: datetime) -> str | None:
        """The SID of a message from our sender to `address` with this body created after `since`
        (less a minute, for clock skew), if Twilio has one."""
        try:
            async with asyncio.timeout(self._timeout):
                # A Messaging Service may have sent it from any number of its pool.
                sender = {} if self._service else {"from_": self._sender}
                recent = await self._rest().messages.list_async(to=address, limit=50, **sender)
        except Exception as exc:  # cannot tell: sending again is better than not at all
            log.warning("could not check for an earlier send", extra={"error": type(exc).__name__})
            return None
        earliest = since - timedelta(minutes=1)
        return next(
            (m.sid for m in recent if m.body == part.body and m.date_created and m.date_created >= earliest), None
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class WhatsAppChannel(TwilioChannel):
    name: ClassVar[str] = "whatsapp"
    profile: ClassVar[ChannelProfile] = WHATSAPP
    webhook_paths: ClassVar[tuple[str, ...]] = ("/webhooks/twilio/whatsapp", STATUS_PATH)

    @classmethod
    def missing_settings(cls, settings: Settings) -> str | None:
        return cls.missing(settings, settings.twilio_whatsapp_from, "TWILIO_WHATSAPP_FROM")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.twilio_whatsapp_from)

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        digits = re.sub(r"\D", "", self._sender or "")
        return f"https://wa.me/{digits}?text={quote(text)}" if digits else None  # a service alone has no number


class SmsChannel(TwilioChannel):
    name: ClassVar[str] = "sms"
    profile: ClassVar[ChannelProfile] = SMS
    webhook_paths: ClassVar[tuple[str, ...]] = ("/webhooks/twilio/sms", STATUS_PATH)

    @classmethod
    def missing_settings(cls, settings: Settings) -> str | None:
        return cls.missing(settings, settings.twilio_sms_from, "TWILIO_SMS_FROM")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.twilio_sms_from)

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        if not self._sender:  # a Messaging Service alone: no one number to open
            return None
        return f"sms:{self._sender}?&body={quote(text)}"  # "?&" is read by both iOS and Android
