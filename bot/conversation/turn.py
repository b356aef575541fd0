"""What the engine tells dialogs about the current turn: who the shopper is and what they said."""

from __future__ import annotations

import json
from dataclasses import dataclass

from botbuilder.core import TurnContext

from bot.nlu import Entities, Intent

TURN_INFO_KEY = "shop.turn_info"
# What the dialogs saw happen this turn, for the dashboard: (kind, subject) pairs the engine
# records with the turn's replies (see `AnalyticsEvent`).
EVENTS_KEY = "shop.events"
FELL_BACK = ("fell_back", None)  # noted when the bot did not understand: the turn's outcome, not an event
INT_FIELDS = {"quantity": (1, 20), "order_number": (1, 999_999_999)}
# The turn the engine runs in a chat that has just been linked: the dialog in progress (if any)
# asks its question again there, and nothing else is said.
RESUME = "resume"


@dataclass(frozen=True)
class TurnInfo:
    customer_id: str
    language: str
    shipping_address: str | None
    intent: Intent
    display_name: str | None = None
    returning: bool = False  # wrote to us before today's conversation


def turn_info(context: TurnContext) -> TurnInfo:
    return context.turn_state[TURN_INFO_KEY]


def note(context: TurnContext, kind: str, subject: str | None = None) -> None:
    """Record that `kind` happened this turn (a recommendation shown, tapped, added), with the turn."""
    context.turn_state.setdefault(EVENTS_KEY, []).append((kind, subject))


def parse_command(text: str) -> Intent | None:
    """A structured payload from a button: `/intent` or `/intent {"product": "SKU", ...}`."""
    if not text.startswith("/") or len(text) > 500:
        return None
    name, _, rest = text[1:].partition(" ")
    if not name.replace("_", "").isalpha():
        return None
    fields: dict = {}
    if rest.strip():
        try:
            fields = json.loads(rest)
        except ValueError:
            return None
        if not isinstance(fields, dict):
            return None
    known = {k: v for k, v in fields.items() if k in Entities.__dataclass_fields__}
    for key, value in known.items():
        if key in INT_FIELDS:
            low, high = INT_FIELDS[key]
            if type(value) is not int or not low <= value <= high:
                return None
        elif not isinstance(value, str) or len(value) > 100:
            return None
    return Intent(name, 1.0, Entities(**known))


def command(intent: str, **entities: object) -> str:
    """The payload string for a button that starts `intent` with these entities."""
    fields = {k: v for k, v in entities.items() if v is not None}
    return f"/{intent} {json.dumps(fields, separators=(',', ':'))}" if fields else f"/{intent}"
