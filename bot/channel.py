"""The channel interface the core speaks to (channels/ implements it; channels/registry.py lists
them), the errors a send can end in, and the bounded JSON reading every body from outside goes
through."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from bot.messages import ChannelAddress, InboundMessage, OutboundMessage, SendReceipt, StatusUpdate

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


class SendError(Exception):
    """A send failed. `permanent` errors are recorded and never retried."""

    def __init__(self, reason: str, code: str | None = None, permanent: bool = False,
                 retry_after: float | None = None, parts_sent: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent
        self.retry_after = retry_after
        self.parts_sent = parts_sent  # provider messages of this one that did go out


class ChannelAdapter(Protocol):
    @property
    def name(self) -> str: ...  # a class's own, or given per instance (one Twilio class serves two channels)

    numbered_choices: ClassVar[bool]  # choices are sent as a numbered list and answered by number

    def verify(self, req: RawRequest) -> bool: ...
    def parse(self, req: RawRequest) -> list[InboundMessage | StatusUpdate]: ...
    async def send(self, to: ChannelAddress, msg: OutboundMessage, resume_from: int = 0,
                   in_doubt: datetime | None = None) -> SendReceipt:
        """Send `msg`, skipping the first `resume_from` provider messages (sent by an earlier try).
        `in_doubt`: an earlier try, after this time, may have sent the next part unrecorded (it
        died mid-send); a channel whose provider can list sent messages checks before sending it again."""
    async def close(self) -> None: ...
