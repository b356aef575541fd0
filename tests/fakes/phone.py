"""A shopper on WhatsApp, SMS or Messenger: sends signed webhooks, reads what the fakes got."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from sqlmodel import func, or_, select

from bot.store.models import MessageRecord
from service.app import DB
from tests.fakes.providers import (
    FakeGraph,
    FakeTwilio,
    FakeWhatsAppCloud,
    cloud_body,
    encode_form,
    messenger_body,
    twilio_form,
)

BASE = "https://shop.example.com"


async def wait_settled(client, address: str, quiet: float, timeout: float = 30) -> None:
    """Wait until every message from `address` has had its turn and every reply to it has left
    the outbox (sent, or failed for good), then `quiet` seconds more."""

    def busy(session) -> int:
        return session.exec(
            select(func.count())
            .select_from(MessageRecord)
            .where(
                MessageRecord.address == address,
                or_(
                    (MessageRecord.direction == "in") & (MessageRecord.status == "stored"),
                    (MessageRecord.direction == "out") & MessageRecord.status.in_(["pending", "sending"]),
                ),
            )
        ).one()

    for _ in range(int(timeout / 0.02)):
        if not await client.app[DB].run(busy):
            await asyncio.sleep(quiet)
            if not await client.app[DB].run(busy):
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"messages of {address} did not settle")


class TwilioShopper:
    def __init__(self, client, fake: FakeTwilio, channel: str, number: str) -> None:
        self.client, self.fake, self.channel, self.number = client, fake, channel, number
        self.seen = 0

    @property
    def path(self) -> str:
        return f"/webhooks/twilio/{self.channel}"

    async def post(self, form: dict[str, str], signature: str | None = None):
        body = encode_form(form)
        sig = self.fake.sign(BASE + self.path, form) if signature is None else signature
        return await self.client.post(
            self.path,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
        )

    async def say(self, text: str, sid: str | None = None, settle: float = 0.05) -> str:
        """Send a message and return the text of every reply the fake received for it."""
        resp = await self.post(twilio_form(self.channel, self.number, text, sid))
        assert resp.status == 200, await resp.text()
        assert "<Response" in await resp.text()
        return await self.replies(settle)

    async def replies(self, settle: float = 0.05) -> str:
        await wait_settled(self.client, ("whatsapp:" if self.channel == "whatsapp" else "") + self.number, settle)
        new = self.mine()[self.seen :]
        self.seen = len(self.mine())
        # A Content message (WhatsApp buttons, lists, cards, links) as the shopper sees it.
        return "\n---\n".join(r["body"] or r.get("shown") or "" for r in new)

    def mine(self) -> list[dict[str, Any]]:
        to = ("whatsapp:" if self.channel == "whatsapp" else "") + self.number
        return [r for r in self.fake.delivered() if r["to"] == to]


class MessengerShopper:
    def __init__(self, client, fake: FakeGraph, psid: str) -> None:
        self.client, self.fake, self.psid = client, fake, psid
        self.seen = 0

    async def post_events(self, *events: dict[str, Any], signature: str | None = None, entries: int = 1):
        body = messenger_body(*events, entries=entries)
        sig = self.fake.sign(body) if signature is None else signature
        return await self.client.post(
            "/webhooks/messenger",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
        )

    def text_event(self, text: str, mid: str | None = None, quick_reply: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"mid": mid or "m_" + uuid4().hex, "text": text}
        if quick_reply:
            message["quick_reply"] = {"payload": quick_reply}
        return {
            "sender": {"id": self.psid},
            "recipient": {"id": "PAGE"},
            "timestamp": 1764000000000,
            "message": message,
        }

    async def say(self, text: str, quick_reply: str | None = None, settle: float = 0.05) -> list[dict[str, Any]]:
        resp = await self.post_events(self.text_event(text, quick_reply=quick_reply))
        assert resp.status == 200, await resp.text()
        return await self.replies(settle)

    async def replies(self, settle: float = 0.05) -> list[dict[str, Any]]:
        await wait_settled(self.client, self.psid, settle)
        new = self.mine()[self.seen :]
        self.seen = len(self.mine())
        return new

    def mine(self) -> list[dict[str, Any]]:
        return [m for m in self.fake.messages() if m["recipient"]["id"] == self.psid]

    @staticmethod
    def texts(messages: list[dict[str, Any]]) -> str:
        out = []
        for m in messages:
            msg = m["message"]
            out.append(msg.get("text") or msg.get("attachment", {}).get("payload", {}).get("text", ""))
        return "\n".join(out)

    @staticmethod
    def quick_replies(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [q for m in messages for q in m["message"].get("quick_replies", [])]


class CloudShopper:
    """A shopper on WhatsApp through the Cloud API: with a phone number (`wa_id`, digits), or
    known only by a business-scoped user id (`user_id`) when their username hides the number."""

    def __init__(
        self, client, fake: FakeWhatsAppCloud, wa_id: str | None = None, user_id: str | None = None, name: str = "Ana"
    ) -> None:
        self.client, self.fake, self.wa_id, self.user_id, self.name = client, fake, wa_id, user_id, name
        self.seen = 0

    @property
    def address(self) -> str:
        return f"+{self.wa_id}" if self.wa_id else str(self.user_id)

    async def post(self, body: bytes, signature: str | None = None):
        sig = self.fake.sign(body) if signature is None else signature
        return await self.client.post(
            "/webhooks/whatsapp-cloud",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
        )

    def value(self, *messages: dict[str, Any]) -> dict[str, Any]:
        contact: dict[str, Any] = {"profile": {"name": self.name}}
        if self.wa_id:
            contact["wa_id"] = self.wa_id
        if self.user_id:
            contact["user_id"] = self.user_id
            if not self.wa_id:
                contact["profile"]["username"] = "@" + self.name.lower()
        return {"contacts": [contact], "messages": list(messages)}

    def message(self, kind: str, content: dict[str, Any], mid: str | None = None, **more: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": mid or "wamid." + uuid4().hex,
            "timestamp": "1764000000",
            "type": kind,
            kind: content,
            **more,
        }
        if self.wa_id:
            message["from"] = self.wa_id
        if self.user_id:
            message["from_user_id"] = self.user_id
        return message

    async def send(self, *messages: dict[str, Any], settle: float = 0.05) -> list[dict[str, Any]]:
        resp = await self.post(cloud_body(self.value(*messages)))
        assert resp.status == 200, await resp.text()
        assert await resp.text() == "EVENT_RECEIVED"
        return await self.replies(settle)

    async def say(self, text: str, settle: float = 0.05) -> list[dict[str, Any]]:
        return await self.send(self.message("text", {"body": text}), settle=settle)

    async def tap(self, reply_id: str, title: str = "", kind: str = "button_reply") -> list[dict[str, Any]]:
        """Tap a reply button (`button_reply`) or a list row (`list_reply`)."""
        return await self.send(self.message("interactive", {"type": kind, kind: {"id": reply_id, "title": title}}))

    async def replies(self, settle: float = 0.05) -> list[dict[str, Any]]:
        await wait_settled(self.client, self.address, settle)
        new = self.mine()[self.seen :]
        self.seen = len(self.mine())
        return new

    def mine(self) -> list[dict[str, Any]]:
        key = ("to", self.wa_id) if self.wa_id else ("recipient", self.user_id)
        return [m for m in self.fake.messages() if m.get(key[0]) == key[1]]

    @staticmethod
    def texts(messages: list[dict[str, Any]]) -> str:
        out = []
        for m in messages:
            if m["type"] == "text":
                out.append(m["text"]["body"])
            elif m["type"] == "interactive":
                out.append(m["interactive"]["body"]["text"])
            elif m["type"] == "image":
                out.append(m["image"].get("caption", ""))
        return "\n".join(out)

    @staticmethod
    def options(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Every reply button and list row offered, as {"id", "title"}."""
        found: list[dict[str, str]] = []
        for m in messages:
            if m["type"] != "interactive":
                continue
            action = m["interactive"]["action"]
            found += [b["reply"] for b in action.get("buttons", [])]
            found += [r for s in action.get("sections", []) for r in s["rows"]]
        return found
