"""The channel interface the core speaks to (channels/ implements it; channels/registry.py lists
them), what each channel declares about itself (its profile), the errors a send can end in, and
the bounded JSON reading every body from outside goes through."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from bot.messages import ChannelAddress, InboundMessage, OutboundMessage, SendReceipt, StatusUpdate

# --- the policy gate's vocabulary: each channel declares what a purpose needs on it ---------
# Why the shop writes first.
MARKETING = "marketing"  # campaigns: promotions
CART_REMINDER = "cart_reminder"  # about the shopper's own open cart (the second one may carry a code)
REQUESTED = "requested"  # a notice the shopper asked for (back in stock)
ORDER_UPDATE = "order_update"  # about an order they placed (it has shipped)

# When an explicit opt-in to marketing ("subscribe", START) is needed.
ALWAYS, OUTSIDE_WINDOW, NEVER = "always", "outside_window", "never"
# How a message may go once the channel's 24-hour window has closed.
REFUSED = "refused"  # not at all
TEMPLATE = "template"  # WhatsApp: only as an approved Content template
TAGGED = "tagged"  # Messenger: with the message tag that fits it (POST_PURCHASE_UPDATE)


@dataclass(frozen=True)
class Rule:
    """What one purpose needs on one channel."""

    opt_in: str = NEVER
    outside_window: str = REFUSED  # only read on channels with a window
    template_category: str | None = None  # WhatsApp: the category Meta approves the template under
    honours_opt_out: bool = True  # a marketing opt-out ("unsubscribe", STOP anywhere) stops it
    quiet_hours: bool = True  # postponed past the shopper's quiet hours


# The chat every shopper has: the web chat on the shop's site. Messages for a shopper with no
# other way to be reached wait there until they come back.
HOME_CHANNEL = "web"

# Deeper than any provider's payload (a Messenger batch is about 7 levels); json's own limit is the
# interpreter's recursion limit, which 5,000 brackets in a 10 kB body exceed with a RecursionError.
MAX_JSON_DEPTH = 32


def load_json(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON body of at most `max_depth` nested arrays and objects.

    Raises:
        ValueError: not JSON (or not UTF-8), or nested too deeply.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError(f"JSON nested more than {max_depth} levels deep") from None
    except UnicodeDecodeError as exc:
        raise ValueError("JSON must be UTF-8") from exc
    # Walked without recursion, and only through arrays and objects.
    pending = [(data, 1)] if isinstance(data, dict | list) else []
    while pending:
        value, depth = pending.pop()
        if depth > max_depth:
            raise ValueError(f"JSON nested more than {max_depth} levels deep")
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return data


@dataclass(frozen=True)
class RawRequest:
    """A webhook as it arrived: the public URL it was sent to, its headers and raw body."""

    url: str
    headers: Mapping[str, str]  # case-insensitive names (a proxy may lowercase them)
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    path: str = ""  # the route it came in on (one channel may answer several)


class SendError(Exception):
    """A send failed. `permanent` errors are recorded and never retried."""

    def __init__(
        self,
        reason: str,
        code: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
        parts_sent: int = 0,
    ):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent
        self.retry_after = retry_after
        self.parts_sent = parts_sent  # provider messages of this one that did go out


@dataclass(frozen=True)
class Acknowledgement:
    """The answer a provider expects once its webhook is stored (Twilio: TwiML; Meta: a word)."""

    status: int = 200
    body: str = ""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class ChannelProfile:
    """What the core needs to know of a channel, declared by the channel's module; the core reads
    it through `profile(name)` and never names a channel itself."""

    name: str
    pushable: bool  # the shop can write first to a shopper who left (not the web chat)
    rules: Mapping[str, Rule] = field(default_factory=dict)  # purpose -> what it needs; missing = never
    window: timedelta | None = None  # the platform's customer-service window, if it has one
    # How long after the last message a person (not the bot) may still answer, if longer than the
    # window (Messenger's HUMAN_AGENT tag: 7 days).
    agent_window: timedelta | None = None
    # Channels in one address space reach one shopper by one address (WhatsApp and SMS: a phone
    # number); `address_prefix` is what the provider puts before it ("whatsapp:").
    address_space: str | None = None
    address_prefix: str = ""
    pulled: bool = False  # the shopper's client fetches its messages: nothing for the outbox to send
    consent_keywords: bool = False  # carrier keywords (STOP, START) change consent before any dialog
    aliases: str = ""  # a regular expression of the words shoppers call it by ("fb", "臉書")
    # The shop may text any phone number on it, not only a shopper who wrote first (SMS): where a
    # one-time code to a phone number the shopper typed goes.
    texts_any_number: bool = False

    def key(self, address: str) -> tuple[str, str]:
        """The identity this address is stored under: (address space or channel, address)."""
        if self.address_space:
            return self.address_space, address.removeprefix(self.address_prefix)
        return self.name, address


_PROFILES: dict[str, ChannelProfile] = {}


def register(*profiles: ChannelProfile) -> None:
    """Make channels known to the core (channels/registry.py does this for every channel class)."""
    for declared in profiles:
        _PROFILES[declared.name] = declared


def profile(name: str | None) -> ChannelProfile | None:
    return _PROFILES.get(name or "")


def profiles() -> list[ChannelProfile]:
    return list(_PROFILES.values())


def identity_key(channel: str, address: str) -> tuple[str, str]:
    """The identity `address` on `channel` is stored under (one phone number is one shopper on
    every channel that reaches phones)."""
    declared = _PROFILES.get(channel)
    return declared.key(address) if declared else (channel, address)


def pushable() -> list[str]:
    """The channels the shop can write first on."""
    return [p.name for p in _PROFILES.values() if p.pushable]


def named_in(text: str, among: list[str]) -> str | None:
    """The channel of `among` that a shopper's words name ("on WhatsApp", "my phone"), if any."""
    for declared in _PROFILES.values():
        if declared.name in among and declared.aliases and re.search(declared.aliases, text, re.IGNORECASE):
            return declared.name
    return None


class ChannelAdapter(Protocol):
    """One provider's channel. Besides its profile, a channel declares the webhook paths it answers
    (POST; GET too for a subscription check), how it acknowledges them, and the one-tap link that
    opens a chat with the shop carrying a text."""

    @property
    def name(self) -> str: ...

    profile: ClassVar[ChannelProfile]
    numbered_choices: ClassVar[bool]  # choices are sent as a numbered list and answered by number
    webhook_paths: ClassVar[tuple[str, ...]]  # POST; a `subscription_paths` tuple adds GET checks

    def verify(self, req: RawRequest) -> bool: ...
    def parse(self, req: RawRequest) -> list[InboundMessage | StatusUpdate]: ...
    def acknowledge(self, req: RawRequest) -> Acknowledgement: ...
    def subscription(self, query: Mapping[str, str]) -> str | None:
        """The challenge to echo to a provider's GET subscription check, None to refuse it."""

    def deep_link(self, token: str, text: str, ref: str) -> str | None:
        """A one-tap link that opens a chat with the shop carrying a link token: as the raw
        `token`, as `text` typed for the shopper to send, or as a `ref` the provider sends back."""

    def keyword(self, text: str) -> str | None:
        """ "opt_out", "opt_in" or "help" when the whole message is a consent keyword here."""

    async def send(
        self, to: ChannelAddress, msg: OutboundMessage, resume_from: int = 0, in_doubt: datetime | None = None
    ) -> SendReceipt:
        """Send `msg`, skipping the first `resume_from` provider messages (sent by an earlier try).
        `in_doubt`: an earlier try, after this time, may have sent the next part unrecorded (it
        died mid-send); a channel whose provider can list sent messages checks before sending it again."""

    async def close(self) -> None: ...
