"""Content resources a provider made for us, by shape (Twilio's `HX…` for WhatsApp buttons,
lists, cards and links): kept in memory and in the store, so that each shape is made once,
across restarts and across the processes that share the store."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.store.database import Database
from bot.store.models import ProviderContent


class ContentStore:
    def __init__(self, db: Database | None, provider: str) -> None:
        self._db = db
        self._provider = provider
        self._known: dict[str, str] = {}

    def cached(self, shape: str) -> str | None:
        """The resource made for `shape`, if this process knows it already."""
        return self._known.get(shape)

    async def find(self, shape: str) -> str | None:
        """The resource made for `shape` by this or any process, if any."""
        if (sid := self._known.get(shape)) is not None or self._db is None:
            return sid

        def read(session: Session) -> str | None:
            return session.exec(
                select(ProviderContent.content_sid).where(
                    ProviderContent.provider == self._provider, ProviderContent.shape == shape
                )
            ).first()

        sid = await self._db.run(read)
        if sid is not None:
            self._known[shape] = sid
        return sid

    async def keep(self, shape: str, sid: str) -> str:
        """Remember the resource made for `shape`. When another process kept one for the same
        shape first, that one is used from then on (both work; one is enough)."""
        if self._db is not None:

            def write(session: Session) -> None:
                session.add(ProviderContent(provider=self._provider, shape=shape, content_sid=sid))

            try:
                await self._db.run(write)
            except IntegrityError:
                self._known.pop(shape, None)
                if (first := await self.find(shape)) is not None:
                    sid = first
        self._known[shape] = sid
        return sid
