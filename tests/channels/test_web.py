"""The web chat API: sessions, bad input, duplicates, history, restarts."""

from __future__ import annotations

import time
from uuid import uuid4

from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import func, select

from bot.store.models import MessageRecord
from service.app import DB, WEB, create_app
from tests.fakes.web_shopper import WebShopper


async def test_widget_page_and_health(client):
    page = await client.get("/")
    assert page.status == 200 and "widget.js" in await page.text()
    assert (await client.get("/static/widget.js")).status == 200
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["store"] == "ok"
    image = await client.get("/static/products/RUN-AERO.png")
    assert image.status == 200 and (await image.read()).startswith(b"\x89PNG")
    assert (await client.get("/static/products/NOPE.png")).status == 404


async def test_forged_and_expired_sessions_are_refused(client, shopper):
    body = {"id": "m1", "text": "hi"}
    for token in ("", "garbage", shopper.token[:-2] + "xx", "a.b.c"):
        resp = await client.post("/api/web/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, token
        assert "session" in (await resp.json())["error"]
    old = client.app[WEB].token_for("abc123", now=time.time() - 31 * 24 * 3600)
    resp = await client.post("/api/web/messages", json=body, headers={"Authorization": f"Bearer {old}"})
    assert resp.status == 401
    assert (await client.get("/api/web/messages", headers={"Authorization": "Bearer nope"})).status == 401


async def test_bad_bodies_get_clear_400s_and_store_nothing(client, shopper):
    cases = [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"id": "x", "text": "hi", "admin": true}', "unknown field"),
        (b'{"id": "x y", "text": "hi"}', "id must be"),
        (b'{"id": "x", "text": 5}', "text must be"),
        (b'{"id": "x", "text": "   "}', "empty"),
        (('{"id": "x", "text": "' + "a" * 10_000 + '"}').encode(), "too long"),
    ]
    for raw, expected in cases:
        resp = await client.post(
            "/api/web/messages",
            data=raw,
            headers={**shopper.headers, "Content-Type": "application/json"},
        )
        assert resp.status == 400, raw[:40]
        assert expected in (await resp.json())["error"], raw[:40]
    huge = await client.post("/api/web/messages", data=b"x" * 200_000, headers=shopper.headers)
    assert huge.status == 413
    count = await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(MessageRecord)).one())
    assert count == 0


async def test_odd_text_gets_a_reply(shopper):
    for text in ("😀😀😀", "有沒有9號的跑鞋？", "\u200b\u200bhello\u200f", "مرحبا بكم", "a" * 3999, "ok 👍 谢谢"):
        replies = await shopper.say(text)
        assert replies and replies[0]["text"], text


async def test_a_retried_message_is_processed_once(client, shopper):
    first = await shopper.say("add the linen sundress size M in white", message_id="same-id")
    again = await shopper.say("add the linen sundress size M in white", message_id="same-id")
    assert [m["id"] for m in first] == [m["id"] for m in again]
    inbound = await client.app[DB].run(
        lambda s: s.exec(select(func.count()).select_from(MessageRecord).where(MessageRecord.direction == "in")).one()
    )
    assert inbound == 1


async def test_history_returns_both_directions_in_order(shopper):
    await shopper.say("hello")
    history = await shopper.history()
    assert [m["direction"] for m in history][:2] == ["in", "out"]
    assert history[0]["text"] == "hello"
    later = await shopper.history(after=history[-1]["id"])
    assert later == []


async def test_restart_keeps_cart_and_conversation(settings, recognizer):
    app = create_app(settings, recognizer)
    async with TestClient(TestServer(app)) as client:
        shopper = await WebShopper.start(client)
        await shopper.say("add the linen sundress size M")
        while "Added" not in shopper.texts():
            await shopper.tap(shopper.buttons()[0])
        await shopper.say("show me the midnight wrap dress")
        token = shopper.token
    restarted = create_app(settings, recognizer)
    async with TestClient(TestServer(restarted)) as client:
        shopper = WebShopper(client, token)
        await shopper.say("view my cart")
        assert "Linen Sundress" in shopper.texts()
        await shopper.say("is this dress available in other sizes?")  # remembers the product
        assert "Midnight Wrap Dress" in shopper.texts()


async def test_unprocessed_inbound_is_run_at_start_up(settings, recognizer):
    from bot.messages import InboundMessage
    from service.app import ENGINE

    app = create_app(settings, recognizer)
    engine = app[ENGINE]
    received = await engine.receive(InboundMessage("web", "crashy", uuid4().hex, "hello"))
    app2 = create_app(settings, recognizer)  # as if the process died before the turn
    async with TestClient(TestServer(app2)):
        replies = await app2[ENGINE].replies_to(received.message_id)
    assert replies and "Hi!" in replies[0].text


async def test_the_same_id_from_two_sessions_is_two_messages(client):
    alice, bob = await WebShopper.start(client), await WebShopper.start(client)
    await alice.say("view my cart", message_id="msg-1")
    replies = await bob.say("hello", message_id="msg-1")
    assert "Hi!" in replies[0]["text"]


async def test_forged_commands_and_odd_characters_are_harmless(client, shopper):
    for text in (
        '/order_status {"order_number":"abc"}',
        '/order_status {"order_number":100000000000000000000000}',
        '/add_to_cart {"product":"TEE-CLASSIC","quantity":"x"}',
        '/check_stock {"product":"NOPE"}',
        '/add_to_cart {"product":{"a":1}}',
        "view cart",
        "፩",
    ):
        assert await shopper.say(text), text
    for bad in ("hi \ud800", "nul \x00 byte"):
        resp = await client.post("/api/web/messages", json={"id": uuid4().hex, "text": bad}, headers=shopper.headers)
        assert resp.status == 400
    resp = await client.post(
        "/api/web/messages", json={"id": "x", "text": "hi"}, headers={"Authorization": "Bearer a.1.é"}
    )
    assert resp.status == 401
    assert (await client.get("/pay/pay_1_abc?sig=%C3%A9")).status == 403
