"""WhatsApp messages through Twilio's Content API: tappable choices, product cards and links.

Inside the 24-hour customer service window a WhatsApp sender may send `twilio/quick-reply`
(up to 3 buttons), `twilio/list-picker` (up to 10 rows), `twilio/card` and
`twilio/call-to-action` without WhatsApp's approval, but each needs a Content resource (`HX…`).
One resource is made per *shape* (the content type, how many buttons or rows, the host of a
picture or link) with every changing text a variable ({{1}}, {{2}} ...), so a few resources
serve every message; `content_key` names a shape, and the channel keeps what was made by it
(in memory and in the store: `bot/store/content.py`).

A tap comes back as `ButtonPayload` (buttons) or `ListId` (list rows). The payload of every
button and row is the option's number, as the numbered text shows it (`numbered_options` from
`option_offset`), so a tap is answered by the engine's one mapping of numbers to choices.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.i18n import text_in
from bot.messages import Choice, OutboundMessage, numbered_options

# The Content API's limits (twilio.com/docs/content: twilio-quick-reply, twiliolist-picker,
# twiliocard, twilio-call-to-action, using-variables-with-content-api).
BODY_LIMIT = 1024  # quick-reply, list-picker and call-to-action body; card title
VARIABLE_LIMIT = 255  # one variable's value
BUTTON_LIMIT = 3  # quick-reply buttons, card and call-to-action buttons in session without approval
BUTTON_TITLE_LIMIT = 20
ROW_LIMIT = 10
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
ID_LIMIT = 200
LIST_BUTTON_LIMIT = 20
CARD_SUBTITLE_LIMIT = 60
CARD_LIMIT = 10  # product cards rendered per message, as in the numbered text


@dataclass
class Content:
    """One message as a Content resource's `types` (with placeholders) and its variables."""

    types: dict[str, Any]
    variables: dict[str, str] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)  # what the resource is created with
    language: str = "en"

    def slot(self, value: str, sample: str | None = None) -> str:
        """A new variable holding `value` (at most VARIABLE_LIMIT characters): its placeholder.
        The resource is created with `sample` (or a word of its own, as titles must differ)."""
        key = str(len(self.variables) + 1)
        self.variables[key] = value
        self.samples[key] = sample or f"text{key}"
        return "{{" + key + "}}"

    def text(self, value: str) -> str:
        """`value` as as many variables as it needs, side by side (one holds 255 characters)."""
        return "".join(self.slot(value[i : i + VARIABLE_LIMIT]) for i in range(0, len(value), VARIABLE_LIMIT))

    def url(self, value: str) -> str | None:
        """A URL with its scheme and host fixed and the rest variables (the Content API takes a
        variable only after a static host); None when it is no http(s) URL with a path."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        base = f"{parts.scheme}://{parts.netloc}/"
        rest = value[len(base) :]
        if not rest:
            return None
        placeholders = "".join(
            self.slot(rest[i : i + VARIABLE_LIMIT], "x" if i == 0 else "y") for i in range(0, len(rest), VARIABLE_LIMIT)
        )
        return base + placeholders

    @property
    def kind(self) -> str:
        return next(iter(self.types)).removeprefix("twilio/")

    def key(self) -> str:
        """The shape's name: the same for every message that differs only in its variables."""
        shape = json.dumps({"language": self.language, "types": self.types}, sort_keys=True, ensure_ascii=False)
        return f"{self.kind}:{hashlib.sha256(shape.encode()).hexdigest()[:32]}"

    def create_request(self) -> dict[str, Any]:
        return {
            "friendly_name": f"shop_{self.key().replace(':', '_').replace('-', '_')}",
            "language": self.language,
            "variables": self.samples,
            "types": self.types,
        }


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ids_fit(options: list[tuple[int, Choice]]) -> bool:
    return all(len(str(n)) <= ID_LIMIT for n, _ in options)


def _buttons_fit(options: list[tuple[int, Choice]]) -> bool:
    titles = [cut(c.title, BUTTON_TITLE_LIMIT) for _, c in options]
    # WhatsApp wants a button's title unique within its message.
    return 0 < len(options) <= BUTTON_LIMIT and len(set(titles)) == len(titles) and all(titles)


def quick_reply(body: str, options: list[tuple[int, Choice]], language: str) -> Content:
    content = Content({}, language=language)
    types = {
        "body": content.text(cut(body, BODY_LIMIT)),
        "actions": [
            {
                "type": "QUICK_REPLY",
                "title": content.slot(cut(c.title, BUTTON_TITLE_LIMIT)),
                "id": content.slot(str(n), str(n)),
            }
            for n, c in options
        ],
    }
    content.types = {"twilio/quick-reply": types}
    return content


def list_picker(body: str, options: list[tuple[int, Choice]], language: str) -> Content:
    content = Content({}, language=language)
    label = text_in(language, "render.choose").rstrip(":：")
    types = {
        "body": content.text(cut(body, BODY_LIMIT)),
        "button": content.slot(cut(label, LIST_BUTTON_LIMIT)),
        # The docs mark a row's description as required: it carries the whole title.
        "items": [
            {
                "item": content.slot(cut(c.title, ROW_TITLE_LIMIT)),
                "id": content.slot(str(n), str(n)),
                "description": content.slot(cut(c.title, ROW_DESCRIPTION_LIMIT)),
            }
            for n, c in options
        ],
    }
    content.types = {"twilio/list-picker": types}
    return content


def card(
    title: str, subtitle: str, image_url: str | None, options: list[tuple[int, Choice]], language: str
) -> Content | None:
    """A product card with its picture and up to three buttons; None if it cannot be one."""
    if not _buttons_fit(options):
        return None
    content = Content({}, language=language)
    types: dict[str, Any] = {"title": content.text(cut(title, BODY_LIMIT))}
    if subtitle:
        types["subtitle"] = content.text(cut(subtitle, CARD_SUBTITLE_LIMIT))
    if image_url:
        media = content.url(image_url)
        if media is None:
            return None
        types["media"] = [media]
    types["actions"] = [
        {
            "type": "QUICK_REPLY",
            "title": content.slot(cut(c.title, BUTTON_TITLE_LIMIT)),
            "id": content.slot(str(n), str(n)),
        }
        for n, c in options
    ]
    content.types = {"twilio/card": types}
    return content


def call_to_action(body: str, title: str, url: str, language: str) -> Content | None:
    content = Content({}, language=language)
    body_slot = content.text(cut(body, BODY_LIMIT))
    title_slot = content.slot(cut(title, BUTTON_TITLE_LIMIT))
    target = content.url(url)
    if target is None:
        return None
    content.types = {
        "twilio/call-to-action": {
            "body": body_slot,
            "actions": [{"type": "URL", "title": title_slot, "url": target}],
        }
    }
    return content


@dataclass(frozen=True)
class Piece:
    """One message of a rendering: plain text (with media) or a Content resource's shape."""

    body: str = ""
    media_urls: tuple[str, ...] = ()
    content: Content | None = None


def render_content(msg: OutboundMessage, cards_as_content: bool = True) -> list[Piece]:
    """A WhatsApp message inside the window, as Content where it fits and text where not:

    - choices: quick-reply buttons (up to 3), else a list picker (up to 10 rows), else numbered
      text answered by number; the text rides as their body when it fits and nothing comes between;
    - a product card: `twilio/card` with its picture and its buttons (up to 3), else the picture
      with a caption and its buttons numbered;
    - a link: a call-to-action button; the text is its body when it is the message's only link
      and there are no cards or choices;
    - media: a picture or file of its own.
    Numbers (button and row payloads, numbered lines) run through the cards' buttons and then the
    choices from `option_offset`, as `numbered_options` counts them, whether shown or not.
    """
    language = msg.language
    numbered = list(enumerate(numbered_options(msg), start=msg.option_offset + 1))
    card_options: list[list[tuple[int, Choice]]] = []
    taken = 0
    for c in msg.cards:
        card_options.append(numbered[taken : taken + len(c.buttons)])
        taken += len(c.buttons)
    choices = numbered[taken:]
    text = msg.text or ""
    pieces: list[Piece] = []
    links = list(msg.links)
    choice_kind = (
        "buttons"
        if _buttons_fit(choices) and _ids_fit(choices)
        else "list"
        if 0 < len(choices) <= ROW_LIMIT
        else ("numbered" if choices else None)
    )
    # The text rides with what follows it when nothing else comes between.
    fits = len(text) <= BODY_LIMIT
    carry_to_choices = fits and choice_kind in ("buttons", "list") and not msg.cards and not links and not msg.media
    carry_to_link = fits and len(links) == 1 and not msg.cards and not choices and not msg.media
    if text and not carry_to_choices and not carry_to_link and choice_kind != "numbered":
        pieces.append(Piece(text))
        text = ""
    elif text and choice_kind == "numbered" and (msg.cards or links or msg.media):
        pieces.append(Piece(text))
        text = ""
    for c, options in zip(msg.cards[:CARD_LIMIT], card_options, strict=False):
        made = card(c.title, c.subtitle, c.image_url, options, language) if cards_as_content else None
        if made is not None:
            pieces.append(Piece(content=made))
            continue
        hint = [text_in(language, "render.reply_with_number")] if options else []
        caption = "\n".join([f"*{c.title}*", c.subtitle, *(f"{n}. {b.title}" for n, b in options), *hint])
        pieces.append(Piece(caption, (c.image_url,) if c.image_url else ()))
    for item in links:
        cta = call_to_action(text or item.title, item.title, item.url, language)
        if cta is None:
            pieces.append(Piece("\n\n".join(filter(None, [text, f"{item.title}: {item.url}"]))))
        else:
            pieces.append(Piece(content=cta))
        text = ""
    if msg.media:
        pieces.append(Piece("", tuple(m.url for m in msg.media[:10])))
    body = text or text_in(language, "render.choose")
    if choice_kind == "buttons":
        pieces.append(Piece(content=quick_reply(body, choices, language)))
    elif choice_kind == "list":
        pieces.append(Piece(content=list_picker(body, choices, language)))
    elif choice_kind == "numbered":
        lines = "\n".join(f"{n}. {c.title}" for n, c in choices)
        pieces.append(Piece("\n\n".join(filter(None, [text, lines, text_in(language, "render.reply_with_number")]))))
    elif text:
        pieces.append(Piece(text))
    return pieces
