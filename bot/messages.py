"""Channel-neutral messages: what channels hand to the engine and what dialogs hand back.

Dialogs build replies only with the helpers here (`reply`, `choices`, `product_card`, `link`);
they place everything in standard Activity fields, and `to_outbound` turns such an Activity into
the one `OutboundMessage` a channel renders.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    CardImage,
    HeroCard,
    SuggestedActions,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

LINK_CONTENT_TYPE = "application/vnd.shop.link"
# What no store can hold, or a transcript should not: NUL (PostgreSQL text refuses it) and the
# other C0 controls but tab and newline, and halves of surrogate pairs (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
HERO_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.hero"


@dataclass(frozen=True)
class Choice:
    """A quick reply: `title` is shown, `value` is what comes back when it is chosen."""

    title: str
    value: str


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str


@dataclass(frozen=True)
class ProductCard:
    title: str
    subtitle: str
    image_url: str | None = None
    url: str | None = None
    buttons: tuple[Choice, ...] = ()


@dataclass(frozen=True)
class Template:
    """A pre-approved message template and its variables: a Twilio Content template (`HX…`) or,
    for Meta's Cloud API, the template's name and language as "name:language"."""

    content_sid: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    """One reply, before a channel renders it."""

    text: str | None = None
    choices: tuple[Choice, ...] = ()
    cards: tuple[ProductCard, ...] = ()
    media: tuple[Media, ...] = ()
    links: tuple[Link, ...] = ()
    kind: str = "reply"  # reply | update | post_purchase | marketing | human_agent: why the shop is writing
    option_offset: int = 0  # where this message's options continue the numbering of its turn
    template: Template | None = None  # an approved template, for channels that need one outside their window
    language: str = "en"  # the shopper's language: a channel's own words around the message follow it
    subject: str | None = None  # a heading shown apart, where the medium has one (an e-mail's subject)
    # Until when the platform's customer service window is open for this message (the shopper's
    # last message there plus the window), if the one who queued it knew; a channel that shows
    # choices as tappable buttons only inside the window falls back to numbered text without it.
    session_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        # The same as `asdict(self)`, without its deep walk over fields that are plain values.
        return {
            "text": self.text,
            "choices": tuple(asdict(c) for c in self.choices),
            "cards": tuple(asdict(c) for c in self.cards),
            "media": tuple(asdict(m) for m in self.media),
            "links": tuple(asdict(link) for link in self.links),
            "kind": self.kind,
            "option_offset": self.option_offset,
            "template": asdict(self.template) if self.template is not None else None,
            "language": self.language,
            "subject": self.subject,
            "session_until": self.session_until.isoformat() if self.session_until is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboundMessage:
        return cls(
            text=data.get("text"),
            choices=tuple(Choice(**c) for c in data.get("choices", ())),
            cards=tuple(
                ProductCard(**{**c, "buttons": tuple(Choice(**b) for b in c.get("buttons", ()))})
                for c in data.get("cards", ())
            ),
            media=tuple(Media(**m) for m in data.get("media", ())),
            links=tuple(Link(**link) for link in data.get("links", ())),
            kind=data.get("kind", "reply"),
            option_offset=int(data.get("option_offset", 0)),
            template=Template(**data["template"]) if data.get("template") else None,
            language=str(data.get("language") or "en"),
            subject=data.get("subject"),
            session_until=datetime.fromisoformat(data["session_until"]) if data.get("session_until") else None,
        )


@dataclass(frozen=True)
class ChannelAddress:
    channel: str
    address: str


def storable(text: str) -> str:
    """`text` without characters a store cannot hold: NUL and C0 controls are dropped (a carriage
    return becomes a newline), a lone surrogate becomes U+FFFD; emoji and CJK are kept."""
    if not _UNSTORABLE.search(text):  # nearly always: nothing to copy
        return text
    text = _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _SURROGATES.sub("\ufffd", text)


def _clean_fields(obj: DataclassInstance) -> None:
    """Clean every text field of a frozen message in place (see `storable`)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        cleaned: object
        if isinstance(value, str):
            cleaned = storable(value)
        elif isinstance(value, dict):
            cleaned = {storable(str(k)): storable(v) if isinstance(v, str) else v for k, v in value.items()}
        elif isinstance(value, tuple) and value and isinstance(value[0], str):
            cleaned = tuple(storable(v) for v in value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Media):
            cleaned = tuple(Media(storable(m.url), storable(m.content_type)) for m in value)
        else:
            continue
        if cleaned != value:
            object.__setattr__(obj, f.name, cleaned)


@dataclass(frozen=True)
class InboundMessage:
    """One message from a shopper, as a channel parsed it. Every text in it is cleaned on the way
    in (`storable`), whichever channel made it: this is where each one passes."""

    channel: str
    address: str
    provider_message_id: str
    text: str = ""
    media: tuple[Media, ...] = ()
    received_at: datetime | None = None
    profile_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Other addresses the provider gives for the same sender on this channel (WhatsApp's
    # business-scoped user id beside the phone number): they find the same customer.
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _clean_fields(self)


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's delivery report on a message we sent; its texts cleaned as an inbound message's."""

    channel: str
    provider_message_id: str | None
    status: str  # queued, sent, delivered, read, failed, undelivered ...
    error_code: str | None = None
    address: str | None = None
    watermark_ms: int | None = None  # Messenger: everything sent before this time
    error_reason: str | None = None  # what the channel reads in its error code ("outside_window")

    def __post_init__(self) -> None:
        _clean_fields(self)


@dataclass(frozen=True)
class SendReceipt:
    provider_message_id: str | None
    status: str = "sent"


def numbered_options(msg: OutboundMessage) -> list[Choice]:
    """The buttons of a message in the order channels without buttons number them:
    each card's buttons, then the quick replies."""
    return [b for card in msg.cards for b in card.buttons] + list(msg.choices)


def choices(*items: tuple[str, str] | str) -> list[Choice]:
    """Build quick replies from `(title, value)` pairs or plain strings (title = value)."""
    return [Choice(i, i) if isinstance(i, str) else Choice(*i) for i in items]


def product_card(
    title: str, subtitle: str, image_url: str | None, url: str | None, buttons: list[Choice]
) -> ProductCard:
    return ProductCard(title, subtitle, image_url, url, tuple(buttons))


def link(title: str, url: str) -> Link:
    return Link(title, url)


def reply(
    text: str | None = None,
    quick: list[Choice] | None = None,
    cards: list[ProductCard] | None = None,
    links: list[Link] | None = None,
    media: list[Media] | None = None,
) -> Activity:
    """A reply Activity with quick replies as suggested actions and cards/links as attachments."""
    attachments: list[Attachment] = []
    for card in cards or ():
        hero = HeroCard(
            title=card.title,
            subtitle=card.subtitle,
            images=[CardImage(url=card.image_url)] if card.image_url else None,
            tap=CardAction(type="openUrl", value=card.url) if card.url else None,
            buttons=[CardAction(type="imBack", title=b.title, value=b.value) for b in card.buttons],
        )
        attachments.append(Attachment(content_type=HERO_CARD_CONTENT_TYPE, content=hero))
    for item in links or ():
        attachments.append(Attachment(content_type=LINK_CONTENT_TYPE, content_url=item.url, name=item.title))
    for medium in media or ():
        attachments.append(Attachment(content_type=medium.content_type, content_url=medium.url))
    return Activity(
        type=ActivityTypes.message,
        text=text,
        suggested_actions=SuggestedActions(
            actions=[CardAction(type="imBack", title=c.title, value=c.value) for c in quick]
        )
        if quick
        else None,
        attachments=attachments or None,
    )


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def to_outbound(activity: Activity) -> OutboundMessage:
    """Convert a message Activity (ours or a botbuilder prompt's) into an `OutboundMessage`."""
    quick: list[Choice] = []
    if activity.suggested_actions and activity.suggested_actions.actions:
        for action in activity.suggested_actions.actions:
            title = str(action.title or action.value)
            quick.append(Choice(title, str(action.value if action.value is not None else title)))
    cards: list[ProductCard] = []
    media: list[Media] = []
    links: list[Link] = []
    for att in activity.attachments or ():
        if att.content_type == HERO_CARD_CONTENT_TYPE:
            hero = att.content
            images = _field(hero, "images") or []
            tap = _field(hero, "tap")
            cards.append(
                ProductCard(
                    title=_field(hero, "title") or "",
                    subtitle=_field(hero, "subtitle") or "",
                    image_url=_field(images[0], "url") if images else None,
                    url=_field(tap, "value") if tap else None,
                    buttons=tuple(
                        Choice(str(_field(b, "title")), str(_field(b, "value"))) for b in _field(hero, "buttons") or ()
                    ),
                )
            )
        elif att.content_type == LINK_CONTENT_TYPE:
            links.append(Link(att.name or att.content_url, att.content_url))
        elif att.content_url:
            media.append(Media(att.content_url, att.content_type or "application/octet-stream"))
    return OutboundMessage(
        text=activity.text or None,
        choices=tuple(quick),
        cards=tuple(cards),
        media=tuple(media),
        links=tuple(links),
    )
