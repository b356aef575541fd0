"""FAQ answers (shipping, returns, payment methods, store hours ...) from the store's entries."""

from __future__ import annotations

from sqlmodel import select

from bot.i18n import ZH, language_of
from bot.store.database import Database
from bot.store.models import FaqEntry


class StoreFaq:
    """The FAQ entries, read once at start-up; they change with a deploy, not per message."""

    def __init__(self, db: Database) -> None:
        with db.session() as session:
            self._entries = {e.key: e for e in session.exec(select(FaqEntry).order_by(FaqEntry.key)).all()}

    def answer(self, key: str, language: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        return entry.answer_zh if language_of(language) == ZH and entry.answer_zh else entry.answer

    def topics(self, language: str = "en") -> list[tuple[str, str]]:
        zh = language_of(language) == ZH
        return [(k, e.question_zh if zh and e.question_zh else e.question) for k, e in self._entries.items()]

    def phrasings(self) -> dict[str, list[str]]:
        """Each entry's question and paraphrases, for the recogniser."""
        return {
            k: [e.question, *([e.question_zh] if e.question_zh else []), *(e.examples or [])]
            for k, e in self._entries.items()
        }
