"""A shopper on the web chat API, as the widget would be: a session, messages, taps."""

from __future__ import annotations

from typing import Any
from uuid import uuid4


class WebShopper:
    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token
        self.last: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, client) -> WebShopper:
        resp = await client.post("/api/web/session", json={})
        assert resp.status == 200
        return cls(client, (await resp.json())["token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def say(self, text: str, message_id: str | None = None) -> list[dict[str, Any]]:
        resp = await self.client.post(
            "/api/web/messages", json={"id": message_id or uuid4().hex, "text": text}, headers=self.headers
        )
        assert resp.status == 200, await resp.text()
        self.last = (await resp.json())["messages"]
        return self.last

    async def tap(self, title: str) -> list[dict[str, Any]]:
        """Tap the quick reply or card button with this title in the last replies."""
        for msg in reversed(self.last):
            for button in msg["choices"] + [b for card in msg["cards"] for b in card["buttons"]]:
                if button["title"] == title:
                    return await self.say(button["value"])
        raise AssertionError(f"no button {title!r} in {self.texts()} / {self.buttons()}")

    async def history(self, after: int = 0) -> list[dict[str, Any]]:
        resp = await self.client.get(f"/api/web/messages?after={after}", headers=self.headers)
        assert resp.status == 200
        return (await resp.json())["messages"]

    def texts(self) -> str:
        return "\n".join(m["text"] or "" for m in self.last)

    def buttons(self) -> list[str]:
        return [c["title"] for m in self.last for c in m["choices"]]

    def cards(self) -> list[str]:
        return [c["title"] for m in self.last for c in m["cards"]]
