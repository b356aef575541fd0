"""WhatsApp through Meta's Cloud API (direct, no Twilio): webhook verification and parsing,
rendering to interactive messages and the `/{phone-number-id}/messages` endpoint (aiohttp)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp

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
    load_json,
)
from bot.config import Settings
from bot.i18n import text_in
from bot.messages import (
    ChannelAddress,
    Choice,
    InboundMessage,
    Media,
    OutboundMessage,
    SendReceipt,
    StatusUpdate,
    numbered_options,
)
from channels.meta_webhooks import challenge, signed_by

log = logging.getLogger(__name__)

NAME = "whatsapp_cloud"
PATH = "/webhooks/whatsapp-cloud"
PHONE_SPACE = "phone"

TEXT_LIMIT = 4096  # a text message's body
BODY_LIMIT = 1024  # an interactive message's body, a media caption
BUTTON_LIMIT = 3  # reply buttons in one interactive message (in-session)
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256
ROW_LIMIT = 10  # rows in one interactive list
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
ROW_ID_LIMIT = 200
LIST_BUTTON_LIMIT = 20  # the label of the button that opens the list
HEADER_LIMIT = 60
CARD_LIMIT = 10
MEDIA_LIMIT = 10

# Error codes (PLATFORMS.md section 9): what a failed send or a failed status means.
OUTSIDE_WINDOW_CODE = 131047  # more than 24 hours since the shopper wrote: only a template may go
UNDELIVERABLE_CODE = 131026  # not a WhatsApp user, an old app, or the shopper blocked us
RATE_LIMIT_CODE = 130429  # the number's throughput was exceeded
PAIR_RATE_CODE = 131056  # too many messages to the same shopper in a short time (about one per 6 s)
PAIR_RATE_SECONDS = 6.0
# Temporary on Meta's side or rate limited: try again later. Anything else is a refusal.
TRANSIENT_CODES = {1, 2, 4, 17, 32, 613, 80007, RATE_LIMIT_CODE, PAIR_RATE_CODE, 131000, 131016, 133004}
REASONS = {
    OUTSIDE_WINDOW_CODE: "outside_window",
    UNDELIVERABLE_CODE: "undeliverable",
    RATE_LIMIT_CODE: "rate_limited",
    PAIR_RATE_CODE: "rate_limited",
}
STATUSES = {"sent", "delivered", "read", "failed"}
# A template given as "name:language" (language as Meta spells it: en_US, zh_TW); a Twilio
# Content SID (HX...) names nothing on the Cloud API.
TEMPLATE_NAME = re.compile(r"^([a-z0-9_]{1,512}):([A-Za-z]{2,3}(?:_[A-Za-z0-9]{2,4})?)$")


class CloudProfile(ChannelProfile):
    """The Cloud API's identities: a shopper whose webhook carries a phone number (`wa_id`) is
    known by it, in the phone space that Twilio's WhatsApp and SMS share; one who hides it behind
    a username is known by their business-scoped user id (BSUID) in this channel's own space.
    `parse` reports the phone as "+digits" when there is one, else the BSUID (never "+...")."""

    def key(self, address: str) -> tuple[str, str]:
        if address.startswith("+"):
            return PHONE_SPACE, address
        return self.name, address


# The same rules as WhatsApp through Twilio (channels/twilio.py): free-form inside the 24-hour
# window, approved templates outside it; marketing needs an explicit opt-in and no marketing
# template goes to a US (+1) number.
PROFILE = CloudProfile(
    NAME,
    pushable=True,
    window=timedelta(hours=24),
    address_space=PHONE_SPACE,
    aliases=r"whats\s*app|\bwa\b",
    rules={
        MARKETING: Rule(ALWAYS, TEMPLATE, "marketing"),
        CART_REMINDER: Rule(OUTSIDE_WINDOW, TEMPLATE, "marketing"),
        REQUESTED: Rule(NEVER, TEMPLATE, "utility"),
        ORDER_UPDATE: Rule(NEVER, TEMPLATE, "utility", honours_opt_out=False),
    },
)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _texts(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": {"body": text[i : i + TEXT_LIMIT], "preview_url": False}}
        for i in range(0, len(text), TEXT_LIMIT)
    ]


def _fits_buttons(options: list[Choice]) -> bool:
    ids = [c.value for c in options]
    return (
        0 < len(options) <= BUTTON_LIMIT
        and len(set(ids)) == len(ids)
        and all(0 < len(i) <= BUTTON_ID_LIMIT for i in ids)
    )


def _fits_list(options: list[Choice]) -> bool:
    ids = [c.value for c in options]
    return 0 < len(options) <= ROW_LIMIT and len(set(ids)) == len(ids) and all(0 < len(i) <= ROW_ID_LIMIT for i in ids)


def _buttons(options: list[Choice]) -> list[dict[str, Any]]:
    return [{"type": "reply", "reply": {"id": c.value, "title": _cut(c.title, BUTTON_TITLE_LIMIT)}} for c in options]


def _template(msg: OutboundMessage) -> dict[str, Any]:
    """Raises: SendError (permanent) when the template is not given as "name:language"."""
    assert msg.template is not None
    match = TEMPLATE_NAME.match(msg.template.content_sid)
    if match is None:
        raise SendError(
            "the WhatsApp Cloud API needs a template as name:language", "template_unsupported", permanent=True
        )
    variables = msg.template.variables
    # Variables are numbered from 1, as in the template's body ({{1}}, {{2}}).
    ordered = [
        variables[k] for k in sorted(variables, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    ]
    template: dict[str, Any] = {"name": match.group(1), "language": {"code": match.group(2)}}
    if ordered:
        template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": v} for v in ordered]}]
    return {"type": "template", "template": template}


def render(msg: OutboundMessage) -> list[dict[str, Any]]:
    """Cloud API message objects (without `to` and `messaging_product`), in order.

    - a template (outside the window) is that alone;
    - choices: reply buttons (up to 3), else a list (up to 10 rows), else numbered lines answered
      by number (the engine maps them back: `numbered_choices`); the text rides as their body;
    - a product card: reply buttons under the picture when it has 1-3 buttons, else the picture
      with the card as its caption and its buttons numbered;
    - links are text lines, media go by link.
    Numbers run through the cards' buttons and then the choices, from `option_offset`, as
    `numbered_options` counts them, whether shown or not.

    Raises:
        SendError: a template that is not given as "name:language" (permanent).
    """
    if msg.template is not None:
        return [_template(msg)]
    counter = iter(range(msg.option_offset + 1, msg.option_offset + len(numbered_options(msg)) + 1))
    lines = [msg.text] if msg.text else []
    lines += [f"{link.title}: {link.url}" for link in msg.links]
    text = "\n\n".join(lines)
    choices = list(msg.choices)
    interactive = _fits_buttons(choices) or _fits_list(choices)
    numbered_tail = bool(choices) and not interactive
    messages: list[dict[str, Any]] = []
    # The text rides as the choices' body when nothing comes between them.
    carry = interactive and not msg.cards and not msg.media and len(text) <= BODY_LIMIT
    if text and not carry and not numbered_tail:
        messages += _texts(text)
    elif text and numbered_tail and (msg.cards or msg.media):
        messages += _texts(text)
        text = ""
    for card in msg.cards[:CARD_LIMIT]:
        numbers = [next(counter) for _ in card.buttons]
        body = _cut("\n".join(filter(None, [f"*{card.title}*", card.subtitle])), BODY_LIMIT)
        if _fits_buttons(list(card.buttons)):
            header = (
                {"type": "image", "image": {"link": card.image_url}}
                if card.image_url
                else {"type": "text", "text": _cut(card.title, HEADER_LIMIT)}
            )
            messages.append(
                {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "header": header,
                        "body": {"text": body},
                        "action": {"buttons": _buttons(list(card.buttons))},
                    },
                }
            )
            continue
        caption = "\n".join([body, *(f"{n}. {b.title}" for n, b in zip(numbers, card.buttons, strict=True))])
        if card.image_url:
            messages.append({"type": "image", "image": {"link": card.image_url, "caption": _cut(caption, BODY_LIMIT)}})
        else:
            messages += _texts(caption)
    for item in msg.media[:MEDIA_LIMIT]:
        kind = item.content_type.split("/")[0]
        kind = kind if kind in ("image", "video", "audio") else "document"
        messages.append({"type": kind, kind: {"link": item.url}})
    if not choices:
        return messages
    body = text if carry and text else text_in(msg.language, "render.choose")
    if _fits_buttons(choices):
        messages.append(
            {
                "type": "interactive",
                "interactive": {"type": "button", "body": {"text": body}, "action": {"buttons": _buttons(choices)}},
            }
        )
    elif _fits_list(choices):
        rows = []
        for c in choices:
            row = {"id": c.value, "title": _cut(c.title, ROW_TITLE_LIMIT)}
            if len(c.title) > ROW_TITLE_LIMIT:  # the whole title, where there is room for it
                row["description"] = _cut(c.title, ROW_DESCRIPTION_LIMIT)
            rows.append(row)
        label = text_in(msg.language, "render.choose").rstrip(":：")
        messages.append(
            {
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": {"text": body},
                    "action": {"button": _cut(label, LIST_BUTTON_LIMIT), "sections": [{"rows": rows}]},
                },
            }
        )
    else:
        numbered = "\n".join(f"{next(counter)}. {c.title}" for c in choices)
        messages += _texts(
            "\n\n".join(filter(None, [text, numbered, text_in(msg.language, "render.reply_with_number")]))
        )
    return messages


# --- parsing ---------------------------------------------------------------------------------


def _string(value: Any, what: str) -> str:
    """A string field (ids may come as numbers). Raises: ValueError for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**20:
        return str(value)
    raise ValueError(f"{what} must be a string")


def _optional(value: Any, what: str) -> str | None:
    return None if value is None or value == "" else _string(value, what)


def phone(wa_id: str) -> str:
    """A `wa_id` (the number's digits, no "+") as E.164. Raises: ValueError if it is not one."""
    digits = wa_id.removeprefix("+")
    if not (digits.isascii() and digits.isdigit() and 6 <= len(digits) <= 15):
        raise ValueError("wa_id must be a phone number's digits")
    return "+" + digits


def address_of(wa_id: str | None, user_id: str | None) -> str:
    """The address a shopper is known by: their phone number when the webhook carries it, else
    their business-scoped user id. Raises: ValueError when there is neither."""
    if wa_id:
        return phone(wa_id)
    if user_id and not user_id.startswith("+"):
        return user_id
    raise ValueError("a message without wa_id or user_id")


def parse_events(body: bytes, phone_number_id: str | None = None) -> list[InboundMessage | StatusUpdate]:
    """Every message and status of every change; a malformed one is skipped, the rest are kept.
    Changes for another of the business's numbers (another `phone_number_id`) are skipped.

    Raises:
        ValueError: the body is not a WhatsApp Business Account webhook.
    """
    data = load_json(body)
    if (
        not isinstance(data, dict)
        or data.get("object") != "whatsapp_business_account"
        or not isinstance(data.get("entry"), list)
    ):
        raise ValueError('expected {"object": "whatsapp_business_account", "entry": [...]}')
    events: list[InboundMessage | StatusUpdate] = []
    for entry in data["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            log.warning("skipped a malformed WhatsApp Cloud entry")
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict) or change.get("field", "messages") != "messages":
                continue  # other fields (templates, account updates) are not ours to act on
            number = (
                (value.get("metadata") or {}).get("phone_number_id")
                if isinstance(value.get("metadata"), dict)
                else None
            )
            if phone_number_id and number is not None and str(number) != phone_number_id:
                log.info("skipped a change for another phone number")
                continue
            events += _value_events(value)
    return events


def _value_events(value: dict[str, Any]) -> list[InboundMessage | StatusUpdate]:
    contacts: list[Any] = value["contacts"] if isinstance(value.get("contacts"), list) else []
    events: list[InboundMessage | StatusUpdate] = []
    for message in value.get("messages") or []:
        try:
            parsed = _message(message, contacts)
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("skipped a malformed WhatsApp Cloud message")
            continue
        if parsed is not None:
            events.append(parsed)
    for status in value.get("statuses") or []:
        try:
            update = _status(status)
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("skipped a malformed WhatsApp Cloud status")
            continue
        if update is not None:
            events.append(update)
    return events


def _contact(contacts: list[Any], wa_id: str | None, user_id: str | None) -> dict[str, Any]:
    """The contact of this message's sender (matched by wa_id or user id; the only one if alone)."""
    found = [c for c in contacts if isinstance(c, dict)]
    for c in found:
        if (wa_id and str(c.get("wa_id") or "") == wa_id) or (user_id and c.get("user_id") == user_id):
            return c
    return found[0] if len(found) == 1 and not (wa_id or user_id) else {}


def _message(message: dict[str, Any], contacts: list[Any]) -> InboundMessage | None:
    """Raises: KeyError, TypeError, ValueError or AttributeError for a malformed message."""
    mid = _string(message["id"], "id")
    wa_id = _optional(message.get("from"), "from")
    user_id = _optional(message.get("from_user_id"), "from_user_id")
    contact = _contact(contacts, wa_id, user_id)
    wa_id = wa_id or _optional(contact.get("wa_id"), "contacts.wa_id")
    user_id = user_id or _optional(contact.get("user_id"), "contacts.user_id")
    address = address_of(wa_id, user_id)
    profile: dict[str, Any] = contact["profile"] if isinstance(contact.get("profile"), dict) else {}
    name = _optional(profile.get("name"), "profile.name")
    extra: dict[str, str] = {}
    if user_id:
        extra["user_id"] = user_id
    if username := _optional(profile.get("username") or contact.get("username"), "username"):
        extra["username"] = username
    kind = message.get("type")
    text = ""
    media_: tuple[Media, ...] = ()
    if kind == "text":
        text = _string(message["text"]["body"], "text.body")
    elif kind == "interactive":
        interactive = message["interactive"]
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        text = _string(reply["id"], "reply id")  # the choice's value, as a tapped button's payload
        extra["ButtonText"] = _string(reply.get("title", ""), "reply title")
    elif kind == "button":  # a quick-reply button of a template
        button = message["button"]
        text = _string(button.get("payload") or button["text"], "button.payload")
    elif kind in ("image", "document", "video", "audio", "sticker"):
        item = message[kind]
        # Meta sends a media id; its URL is read from the Graph API with the token (GET /{id}).
        media_ = (
            Media(
                f"whatsapp-media:{_string(item['id'], 'media id')}",
                _string(item.get("mime_type") or f"{kind}/*", "mime_type"),
            ),
        )
        text = _string(item.get("caption") or "", "caption")
    elif kind == "location":
        place = message["location"]
        for key, field in (
            ("Latitude", "latitude"),
            ("Longitude", "longitude"),
            ("Address", "address"),
            ("Label", "name"),
        ):
            if place.get(field) not in (None, ""):
                extra[key] = (
                    str(place[field]) if isinstance(place[field], int | float) else _string(place[field], field)
                )
        where = extra.get("Address") or ",".join(extra[k] for k in ("Latitude", "Longitude") if k in extra)
        text = f"my location: {where}" if where else ""
    elif kind in ("system", "unsupported", "reaction", "ephemeral", "request_welcome"):
        return None  # nothing the shopper asked of us
    else:
        return None
    context = message.get("context")
    if isinstance(context, dict):
        product = context.get("referred_product")
        if isinstance(product, dict) and product.get("product_retailer_id"):
            extra["product"] = _string(product["product_retailer_id"], "product_retailer_id")
        if context.get("id"):
            extra["reply_to"] = _string(context["id"], "context.id")
    # With the phone number, the user id finds the same shopper once the number is hidden.
    aliases = (user_id,) if user_id and user_id != address and not user_id.startswith("+") else ()
    return InboundMessage(NAME, address, mid, text, media_, profile_name=name, extra=extra, aliases=aliases)


def _status(status: dict[str, Any]) -> StatusUpdate | None:
    """Raises: KeyError, TypeError or ValueError for a malformed status."""
    state = _string(status["status"], "status").lower()
    if state not in STATUSES:
        return None  # "deleted", "warning": nothing to record on the outbound message
    mid = _string(status["id"], "id")
    recipient = _optional(status.get("recipient_id"), "recipient_id")
    user_id = _optional(status.get("recipient_user_id"), "recipient_user_id")
    address = address_of(recipient, user_id) if (recipient or user_id) else None
    code: str | None = None
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("code") is not None:
        code = _string(errors[0]["code"], "errors.code")
    reason = REASONS.get(int(code)) if code and code.isascii() and code.isdigit() and len(code) < 12 else None
    return StatusUpdate(NAME, mid, state, code, address, error_reason=reason)


# --- sending ---------------------------------------------------------------------------------


class TokenBucket:
    """At most `rate` sends a second from one phone number, in bursts of up to `rate`."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if self._at is not None:
                self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.rate
                await asyncio.sleep(wait)
                self._at = loop.time()
                self._tokens = 1.0
            self._tokens -= 1


def send_error(status: int, data: Any, index: int = 0) -> SendError:
    """The SendError for a refused request: permanent unless Meta says to try again later."""
    error = data.get("error", {}) if isinstance(data, dict) else {}
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    transient = (status == 429 or status >= 500 or code in TRANSIENT_CODES) and status != 401 and code != 190
    reason = REASONS.get(code) if code is not None else None
    message = str(error.get("message") or f"HTTP {status}")
    return SendError(
        (reason or message)[:200],
        str(code if code is not None else status),
        permanent=not transient,
        retry_after=PAIR_RATE_SECONDS if code == PAIR_RATE_CODE else None,
        parts_sent=index,
    )


class WhatsAppCloudChannel:
    name: ClassVar[str] = NAME
    profile: ClassVar[ChannelProfile] = PROFILE
    webhook_paths: ClassVar[tuple[str, ...]] = (PATH,)
    subscription_paths: ClassVar[tuple[str, ...]] = (PATH,)  # Meta's GET check of the callback URL
    # Choices beyond a list's ten rows, and the buttons of a card beyond three, are numbered.
    numbered_choices: ClassVar[bool] = True

    @classmethod
    def missing_settings(cls, settings: Settings) -> str | None:
        if (
            settings.whatsapp_cloud_token
            and settings.whatsapp_cloud_phone_number_id
            and settings.whatsapp_cloud_app_secret
            and settings.whatsapp_cloud_verify_token
        ):
            return None
        return (
            "WHATSAPP_CLOUD_TOKEN/WHATSAPP_CLOUD_PHONE_NUMBER_ID/WHATSAPP_CLOUD_APP_SECRET/WHATSAPP_CLOUD_VERIFY_TOKEN"
        )

    def __init__(self, settings: Settings) -> None:
        if (
            settings.whatsapp_cloud_token is None
            or settings.whatsapp_cloud_app_secret is None
            or settings.whatsapp_cloud_verify_token is None
            or not settings.whatsapp_cloud_phone_number_id
        ):
            raise ValueError("WhatsApp Cloud needs " + (self.missing_settings(settings) or ""))
        self._token = settings.whatsapp_cloud_token.get_secret_value()
        self._secret = settings.whatsapp_cloud_app_secret.get_secret_value().encode()
        self.verify_token = settings.whatsapp_cloud_verify_token.get_secret_value()
        self.phone_number_id = settings.whatsapp_cloud_phone_number_id
        self._display = re.sub(r"\D", "", settings.whatsapp_cloud_display_number or "")
        graph = f"{settings.graph_api_base.rstrip('/')}/{settings.graph_api_version}"
        self._url = f"{graph}/{self.phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {self._token}"}
        self._bucket = TokenBucket(settings.whatsapp_cloud_rate)
        self._timeout = aiohttp.ClientTimeout(total=settings.send_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def verify(self, req: RawRequest) -> bool:
        return signed_by(self._secret, req)

    def acknowledge(self, req: RawRequest) -> Acknowledgement:
        return Acknowledgement(200, "EVENT_RECEIVED")

    def subscription(self, query: Mapping[str, str]) -> str | None:
        """The challenge to echo when Meta's subscription check carries our verify token."""
        return challenge(query, self.verify_token)

    def keyword(self, text: str) -> str | None:
        return None  # no carrier keywords on WhatsApp; opting out is a dialog

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        """wa.me with the text to send, when WHATSAPP_CLOUD_DISPLAY_NUMBER is set."""
        return f"https://wa.me/{self._display}?text={quote(text)}" if self._display else None

    def parse(self, req: RawRequest) -> list[InboundMessage | StatusUpdate]:
        return parse_events(req.body, self.phone_number_id)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _post(self, body: dict[str, Any], index: int) -> str | None:
        await self._bucket.take()
        try:
            async with self._http().post(self._url, json=body, headers=self._headers) as resp:
                data = await resp.json(content_type=None) if resp.content_length != 0 else {}
                status = resp.status
        except aiohttp.ClientConnectorError as exc:  # no connection, so nothing was sent
            raise SendError(f"{type(exc).__name__}: {exc}"[:200], "unreachable", parts_sent=index) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}"[:200], "network", parts_sent=index) from exc
        except ValueError as exc:
            raise SendError("invalid response from the Cloud API", "bad_response", parts_sent=index) from exc
        if status != 200:
            raise send_error(status, data, index)
        messages = data.get("messages") if isinstance(data, dict) else None
        return (
            str(messages[0].get("id"))
            if isinstance(messages, list) and messages and isinstance(messages[0], dict)
            else None
        )

    async def send(
        self, to: ChannelAddress, msg: OutboundMessage, resume_from: int = 0, in_doubt: datetime | None = None
    ) -> SendReceipt:
        """Raises: SendError; permanent when Meta refuses (window closed, undeliverable, bad token).

        The Cloud API cannot list what a number sent, so a part in doubt (`in_doubt`) is sent
        again: a shopper may, rarely, get it twice.
        """
        recipient = (
            {"to": to.address.removeprefix("+")} if to.address.startswith("+") else {"recipient": to.address}
        )  # a business-scoped user id
        message_id = None
        for index, message in enumerate(render(msg)):
            if index < resume_from:
                continue
            body = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient, **message}
            message_id = await self._post(body, index)
        return SendReceipt(message_id, "sent")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
