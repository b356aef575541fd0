"""Learning from conversations: the retailer turns a group of messages the bot did not understand
into examples of an intent (or phrasings of an FAQ entry). The examples are stored
(`nlu_example`), and each process's `Learner` refits its recogniser on the shipped examples plus
the taught ones when the store's set of taught examples changes: at once in the process that was
taught, within `NLU_SYNC_SECONDS` in the others (web workers, a second server), without a restart.

Only the masked text the dashboard shows can be taught, and a message with masked parts (an
e-mail address, a long number) is left out: a placeholder is no shopper's phrasing, and the
original is personal data that must not become training text."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.nlu import INTENTS, MAX_MODEL_CHARS, Recognizer, normalise
from bot.store.database import Database
from bot.store.models import TaughtExample

log = logging.getLogger(__name__)

MASKED = re.compile(r"\[(?:email|number)\]")
MAX_TEXT = 300  # a longer message is no example of one request
TEACH_LIMIT = 50  # messages taken from one group
TEACHABLE_INTENTS = tuple(i for i in INTENTS if i != "faq")  # an FAQ question is taught with its entry

Taught = tuple[str, str, str | None]  # text, intent, FAQ key


class TeachError(ValueError):
    """What the retailer asked to teach cannot be taught (the message says why)."""


class NothingToTeach(TeachError):
    """Every message of the group has masked parts (or is too long)."""


def teachable(texts: Iterable[str]) -> list[str]:
    """The distinct texts (case and spacing aside) that may become examples: without masked
    parts, not empty, not too long."""
    seen: dict[str, str] = {}
    for text in texts:
        clean = " ".join(text.split())
        if clean and len(clean) <= MAX_TEXT and not MASKED.search(clean):
            seen.setdefault(clean.lower(), clean)
    return list(seen.values())[:TEACH_LIMIT]


def teach(
    session: Session,
    texts: Iterable[str],
    intent: str | None = None,
    faq: str | None = None,
    faq_keys: Iterable[str] = (),
) -> int:
    """Store `texts` as examples of `intent`, or of the FAQ entry `faq` (intent "faq"); the
    number of new examples (one already taught the same way is not stored twice).

    Raises:
        TeachError: neither or both of intent and faq, an unknown intent or entry, or no text
            that may be taught.
    """
    if (intent is None) == (faq is None):
        raise TeachError("give either an intent or an FAQ entry")
    if intent is not None and intent not in TEACHABLE_INTENTS:
        raise TeachError(f"unknown intent {intent[:40]!r}; one of {', '.join(TEACHABLE_INTENTS)}")
    if faq is not None and faq not in set(faq_keys):
        raise TeachError(f"unknown FAQ entry {faq[:40]!r}")
    chosen = teachable(texts)
    if not chosen:
        raise NothingToTeach("nothing to teach: every message of the group has masked parts (or none is left)")
    label = intent or "faq"
    known = {(text.lower(), i, k) for text, i, k in taught(session)}
    added = 0
    for text in chosen:
        if (text.lower(), label, faq) not in known:
            session.add(TaughtExample(text=text, intent=label, faq_key=faq))
            added += 1
    return added


def taught(session: Session) -> list[Taught]:
    rows = session.exec(select(TaughtExample).order_by(col(TaughtExample.id))).all()
    return [(r.text, r.intent, r.faq_key) for r in rows]


def version(session: Session) -> tuple[int, int]:
    """What identifies the set of taught examples: their count and newest id."""
    count, newest = session.exec(select(func.count(), func.max(col(TaughtExample.id)))).one()
    return int(count or 0), int(newest or 0)


def _snapshot(session: Session) -> tuple[tuple[int, int], list[Taught]]:
    return version(session), taught(session)


def _model_text(text: str) -> str:
    return normalise(text).lower()[:MAX_MODEL_CHARS]


class Learner:
    """Keeps one process's recogniser fitted on the taught examples in the store."""

    def __init__(self, db: Database, recognizer: Recognizer) -> None:
        self.db = db
        self.recognizer = recognizer
        self.version = (0, 0)  # a fresh recogniser knows no taught example
        self._lock = asyncio.Lock()

    def apply_now(self) -> None:
        """At start (blocking): fit on what the store holds."""
        found, rows = self.db.transaction(_snapshot)
        if found == self.version:
            return
        vectors = self.recognizer.encode_now([_model_text(t) for t, _, _ in rows]) if rows else np.zeros((0, 1))
        self.recognizer.learn(rows, vectors)
        self.version = found

    async def refresh(self) -> bool:
        """Refit if the store's taught examples changed since the last fit; whether it did. The
        new texts go through the recogniser's batcher with the turns' texts, and the classifiers
        are fitted on a thread of their own: turns keep being answered meanwhile, on the old fit
        until the new one is swapped in."""
        async with self._lock:
            found, rows = await self.db.run(_snapshot)
            if found == self.version:
                return False
            batcher = self.recognizer.batcher
            analyses = await asyncio.gather(*(batcher.submit(_model_text(t)) for t, _, _ in rows))
            vectors = np.array([a.vector for a in analyses]) if analyses else np.zeros((0, 1))
            await asyncio.to_thread(self.recognizer.learn, rows, vectors)
            self.version = found
            log.info("taught examples in use", extra={"examples": found[0]})
            return True

    async def watch(self, interval: float) -> None:
        """Refresh every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception as exc:  # the store away for a moment: try again next time
                log.warning("taught examples not refreshed", extra={"error": repr(exc)})
