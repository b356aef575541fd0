"""Human handoff end to end: shoppers on WhatsApp, SMS, Messenger and the web reach a person
through real webhooks; agents work the ticket through /api/handoffs; replies reach the fake
providers; the bot stays silent meanwhile and takes over again with a rating question."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import select

from bot.handoff.service import DAYS, Rules, StaffedHours, Trigger, load_rules, match
from bot.nlu import FALLBACK, Entities, Intent
from bot.store.models import Agent, CsatAnswer, MessageRecord, utcnow
from service.app import DB, create_app
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.web_shopper import WebShopper

NUMBER = "+14155550177"
ADMIN_TOKEN = "admin-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PSID = "PSID-HANDOFF-1"


@pytest.fixture
def handoff_settings(channel_settings):
    return channel_settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN), "handoff_check_seconds": 0.1})


@pytest.fixture
async def app_client(aiohttp_client, handoff_settings, recognizer):
    return await aiohttp_client(create_app(handoff_settings, recognizer))


async def new_agent(client, name: str, languages=("en",), topics=(), capacity: int = 3) -> tuple[int, dict]:
    resp = await client.post(
        "/api/handoffs/agents",
        headers=ADMIN,
        json={"name": name, "languages": list(languages), "topics": list(topics), "capacity": capacity},
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


async def tickets(client, status: str = "open", headers=ADMIN) -> list[dict]:
    resp = await client.get(f"/api/handoffs?status={status}", headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["tickets"]


async def ticket(client, ticket_id: int, headers=ADMIN) -> dict:
    resp = await client.get(f"/api/handoffs/{ticket_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def act(client, ticket_id: int, action: str, headers=ADMIN, status: int = 200, **body) -> dict:
    resp = await client.post(f"/api/handoffs/{ticket_id}/{action}", headers=headers, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_whatsapp_shopper_reaches_a_person_and_rates_the_help(app_client, fake_twilio):
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    assert "order" in (await wa.say("Where is my order?")).lower()
    out = await wa.say("I want to talk to a real person")
    assert "passing you to a member of our team" in out

    [queued] = await tickets(app_client, "queued")
    assert queued["trigger"] == "asked" and queued["channel"] == "whatsapp" and queued["topic"] == "orders"
    detail = await ticket(app_client, queued["id"])
    summary = detail["summary"]
    assert summary["customer"]["channels"] == ["whatsapp"]
    assert summary["customer"]["addresses"][0]["address"] != NUMBER  # masked
    assert NUMBER not in str(detail["summary"])
    assert "order_status" in summary["recent_intents"]
    assert [m["text"] for m in summary["last_messages"]][-2:] == [
        "Where is my order?",
        "I want to talk to a real person",
    ]
    assert summary["bot_answers"] and summary["faq"]["key"] == "shipping"

    agent_id, dana = await new_agent(app_client, "Dana")
    claimed = await act(app_client, queued["id"], "claim", dana)
    assert claimed["status"] == "assigned" and claimed["agent_id"] == agent_id
    await act(app_client, queued["id"], "reply", dana, 201, text="Hi, I'm Dana. Let me look into your order.")
    assert await wa.replies() == "Hi, I'm Dana. Let me look into your order."

    # While Dana has the conversation the bot says nothing; the agent sees the message.
    assert await wa.say("It's order 1002, thanks") == ""
    assert await wa.say("show me running shoes") == ""
    detail = await ticket(app_client, queued["id"], dana)
    assert [e["author"] for e in detail["transcript"][-3:]] == ["agent", "shopper", "shopper"]
    assert detail["transcript"][-1]["text"] == "show me running shoes"
    await act(app_client, queued["id"], "note", dana, 201, text="Parcel delayed at the depot")

    await act(app_client, queued["id"], "resolve", dana)
    out = await wa.replies()
    assert (
        "marked your request as solved" in out
        and "How did we do?" in out
        and "<Choose one>" in out
        and "★★★★★: ★★★★★" in out
    )
    assert "Thank you for your feedback" in await wa.say("4")
    scores = await app_client.app[DB].run(lambda s: s.exec(select(CsatAnswer.score, CsatAnswer.agent_id)).all())
    assert scores == [(4, agent_id)]
    detail = await ticket(app_client, queued["id"])
    assert detail["status"] == "resolved" and detail["csat"] == 4
    assert [e["kind"] for e in detail["events"]] == ["opened", "claimed", "reply", "note", "resolved", "csat"]
    # The bot is back.
    assert "[Add to cart]" in await wa.say("show me running shoes")  # product cards with buttons
    resp = await app_client.post(f"/api/handoffs/{queued['id']}/reply", headers=dana, json={"text": "one more thing"})
    assert resp.status == 409 and "resolved" in (await resp.json())["error"]


async def test_messenger_reply_after_the_24h_window_uses_the_human_agent_tag(app_client, fake_graph):
    shopper = MessengerShopper(app_client, fake_graph, PSID)
    assert "passing you" in MessengerShopper.texts(await shopper.say("agent"))
    [queued] = await tickets(app_client)
    await act(app_client, queued["id"], "claim")
    await act(app_client, queued["id"], "reply", status=201, text="Hello from the team")
    [inside] = await shopper.replies()
    assert inside["messaging_type"] == "RESPONSE" and "tag" not in inside

    def age(hours: float):
        return lambda s: s.execute(
            update(MessageRecord)
            .where(MessageRecord.channel == "messenger", MessageRecord.direction == "in")
            .values(created_at=utcnow() - timedelta(hours=hours))
        )

    await app_client.app[DB].run(age(25))  # the shopper's last message was 25 hours ago
    await act(app_client, queued["id"], "reply", status=201, text="Your refund went through")
    [outside] = await shopper.replies()
    assert outside["messaging_type"] == "MESSAGE_TAG" and outside["tag"] == "HUMAN_AGENT"
    assert outside["message"]["text"] == "Your refund went through"

    await app_client.app[DB].run(age(8 * 24))  # past the tag's 7 days: nothing may be sent
    resp = await app_client.post(f"/api/handoffs/{queued['id']}/reply", headers=ADMIN, json={"text": "late"})
    assert resp.status == 409 and "7-day" in (await resp.json())["error"]


async def test_two_agents_claiming_at_once_one_wins(app_client, fake_twilio):
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("human")
    [queued] = await tickets(app_client)
    (a_id, a), (b_id, b) = await new_agent(app_client, "Ann"), await new_agent(app_client, "Ben")
    responses = await asyncio.gather(
        *(app_client.post(f"/api/handoffs/{queued['id']}/claim", headers=h) for h in (a, b, a, b))
    )
    statuses = [r.status for r in responses]
    winner = (await ticket(app_client, queued["id"]))["agent_id"]
    assert winner in (a_id, b_id)
    # The winner's own repeated claim is fine; every claim of the loser is refused.
    expected = [200 if agent == winner else 409 for agent in (a_id, b_id, a_id, b_id)]
    assert statuses == expected
    claims = [e for e in (await ticket(app_client, queued["id"]))["events"] if e["kind"] == "claimed"]
    assert len(claims) == 1


async def test_ticket_follows_the_shopper_to_sms_in_chinese(app_client, fake_twilio):
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    sms = TwilioShopper(app_client, fake_twilio, "sms", NUMBER)
    assert "我幫您轉接給我們的專人" in await wa.say("我要找真人客服")
    [queued] = await tickets(app_client)
    assert queued["language"] == "zh-TW"
    await act(app_client, queued["id"], "claim")
    assert await sms.say("我的訂單還沒到") == ""  # same phone, other channel: still with the agent
    await act(app_client, queued["id"], "reply", status=201, text="您好，我來幫您查詢。")
    assert await sms.replies() == "您好，我來幫您查詢。"  # on the channel they used last
    assert await wa.replies() == ""
    detail = await ticket(app_client, queued["id"])
    assert {e["channel"] for e in detail["transcript"] if e["author"] == "shopper"} == {"whatsapp", "sms"}
    await act(app_client, queued["id"], "resolve")
    out = await sms.replies()
    assert "客服人員已將您的問題標示為已解決" in out and "請選擇 1 到 5 顆星" in out
    assert "謝謝您的回饋" in await sms.say("5")


async def test_a_restart_during_a_handoff_loses_nothing(aiohttp_client, handoff_settings, recognizer, fake_twilio):
    first = await aiohttp_client(create_app(handoff_settings, recognizer))
    wa = TwilioShopper(first, fake_twilio, "whatsapp", NUMBER)
    await wa.say("can I speak to someone please")
    _, dana = await new_agent(first, "Dana")
    [queued] = await tickets(first)
    await act(first, queued["id"], "claim", dana)
    await act(first, queued["id"], "note", dana, 201, text="checking with the warehouse")
    await first.close()

    second = await aiohttp_client(create_app(handoff_settings, recognizer))
    wa.client = second
    detail = await ticket(second, queued["id"], dana)  # the agent's token works after the restart
    assert detail["status"] == "assigned" and detail["agent_name"] == "Dana"
    assert [e["kind"] for e in detail["events"]] == ["opened", "claimed", "note"]
    assert await wa.say("any news?") == ""
    await act(second, queued["id"], "reply", dana, 201, text="Yes: it ships today.")
    assert await wa.replies() == "Yes: it ships today."


async def test_unsure_twice_in_a_row_hands_over(app_client, fake_twilio):
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    out = await wa.say("purple monkey dishwasher")
    # the fallback's answer: a guess to pick from ("not sure ..."), or the menu when nothing comes close
    assert ("not sure" in out.lower() or "didn't understand" in out.lower()) and not await tickets(app_client)
    out = await wa.say("blorp zanzibar quux")
    assert "passing you to a member of our team" in out
    [opened] = await tickets(app_client)
    assert opened["trigger"] == "fallback"


async def test_frustration_hands_over_and_the_web_chat_goes_quiet(app_client):
    web = await WebShopper.start(app_client)
    await web.say("hello")
    await web.say("this is useless")
    assert "passing you to a member of our team" in web.texts()
    [opened] = await tickets(app_client)
    assert opened["trigger"] == "frustration" and opened["priority"] == 2
    assert await web.say("hello?") == []
    await act(app_client, opened["id"], "claim")
    await act(app_client, opened["id"], "reply", status=201, text="Sorry about that! How can I help?")
    history = await web.history()
    assert history[-1]["text"] == "Sorry about that! How can I help?" and history[-1]["direction"] == "out"


async def test_rules_priority_and_routing_to_a_free_agent(app_client, fake_twilio):
    ann_id, ann = await new_agent(app_client, "Ann", topics=["fraud"], capacity=1)
    wa_first = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    wa_second = TwilioShopper(app_client, fake_twilio, "whatsapp", "+14155550188")
    await wa_first.say("I'd like to speak to a human")
    await wa_second.say("There's an unauthorized charge on my card, I think it's fraud")
    queue = await tickets(app_client, "queued")
    assert [(t["trigger"], t["priority"]) for t in queue] == [("rule:fraud", 3), ("asked", 1)]
    # Ann says she takes chats: the fraud ticket goes to her; her capacity of one keeps the other queued.
    resp = await app_client.post("/api/handoffs/me", headers=ann, json={"available": True})
    assert resp.status == 200
    mine = await tickets(app_client, "mine", ann)
    assert [t["trigger"] for t in mine] == ["rule:fraud"] and mine[0]["agent_id"] == ann_id
    assert [t["trigger"] for t in await tickets(app_client, "queued")] == ["asked"]
    resp = await app_client.post(f"/api/handoffs/{queue[1]['id']}/claim", headers=ann)
    assert resp.status == 409 and "capacity" in (await resp.json())["error"]


async def test_silent_agent_loses_the_ticket_and_the_shopper_is_told(
    aiohttp_client, handoff_settings, recognizer, fake_twilio
):
    settings = handoff_settings.model_copy(update={"handoff_agent_timeout": "1s"})
    client = await aiohttp_client(create_app(settings, recognizer))
    ann_id, ann = await new_agent(client, "Ann")
    await client.post("/api/handoffs/me", headers=ann, json={"available": True})
    wa = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("agent please")
    [routed] = await tickets(client)
    assert routed["status"] == "assigned" and routed["agent_id"] == ann_id  # routed to the free agent
    await fake_twilio.wait_for(2, timeout=10)  # the "passing you" answer, then the apology
    assert "Sorry for the wait" in wa.mine()[-1]["body"]
    detail = await ticket(client, routed["id"])
    assert detail["status"] == "queued" and detail["agent_id"] is None, detail["events"]
    assert [e["kind"] for e in detail["events"]] == ["opened", "routed", "requeued"]
    agent = await client.app[DB].run(lambda s: s.get(Agent, ann_id))
    assert agent.available is False  # marked away, so the ticket is not routed back to her


async def test_outside_staffed_hours_the_shopper_learns_when_someone_answers(
    aiohttp_client, handoff_settings, recognizer, fake_twilio
):
    tomorrow = DAYS[(datetime.now(UTC).weekday() + 2) % 7]
    settings = handoff_settings.model_copy(
        update={"handoff_hours": f"{tomorrow} 09:00-17:00", "default_timezone": "UTC"}
    )
    client = await aiohttp_client(create_app(settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    out = await wa.say("customer service please")
    # The opening in the shopper's zone (their number's), since 09:00 UTC is night in California.
    opens = datetime.combine((datetime.now(UTC) + timedelta(days=2)).date(), time(9), UTC)
    assert "offline right now" in out
    assert f"{opens.astimezone(ZoneInfo('America/Los_Angeles')):%H:%M} (America/Los_Angeles)" in out
    [opened] = await tickets(client)
    assert opened["status"] == "queued"
    assert await wa.say("hello?") == ""


async def test_tokens_are_required(app_client, aiohttp_client, settings, recognizer):
    assert (await app_client.get("/api/handoffs")).status == 401
    assert (await app_client.get("/api/handoffs", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await app_client.post("/api/handoffs/1/claim")).status == 401
    _, agent = await new_agent(app_client, "Ann")
    assert (await app_client.get("/api/handoffs", headers=agent)).status == 200
    assert (await app_client.post("/api/handoffs/agents", headers=agent, json={"name": "Eve"})).status == 403
    assert (await app_client.get("/api/handoffs/999", headers=agent)).status == 404
    bad = await app_client.post("/api/handoffs/agents", headers=ADMIN, json={"name": "Eve", "role": "boss"})
    assert bad.status == 400
    page = await app_client.get("/admin/agents")
    assert page.status == 200 and "agents.js" in await page.text()
    off = await aiohttp_client(create_app(settings, recognizer))  # no ADMIN_TOKEN: the console is off
    assert (await off.get("/api/handoffs", headers=ADMIN)).status == 403


@pytest.mark.parametrize(
    "text, intent, expected",
    [
        ("I want to report a fraud", "faq", "rule:fraud"),
        ("I'll file a chargeback", FALLBACK, "rule:chargeback"),
        ("can I get a special discount for 40 jackets?", "product_search", "rule:discount_approval"),
        ("talk to a human", "human_agent", "asked"),
        ("我要找真人客服", "human_agent", "asked"),
        ("this is useless", FALLBACK, "frustration"),
        ("I like agents of shield", "product_search", None),
        ("show me dresses", "product_search", None),
    ],
)
def test_rules_match(text, intent, expected):
    found = match(load_rules(), text, Intent(intent, 0.9), fallbacks=0, repeats=1)
    assert (found.reason if found else None) == expected


def test_order_value_and_repeat_rules():
    rules = load_rules()
    cancel = Intent("cancel_order", 0.9, Entities(order_number=1002))
    assert match(rules, "cancel it", cancel, 0, 1, lambda: 60_000) == Trigger("rule:high_value_order", "orders", 2)
    assert match(rules, "cancel it", cancel, 0, 1, lambda: 4_000) is None
    assert match(rules, "where is it", Intent("order_status", 0.9), 0, 3).reason == "frustration"
    assert match(rules, "huh", Intent(FALLBACK, 0.1), 2, 1).reason == "fallback"
    assert match(Rules(fallbacks=0, repeats=0), "huh", Intent(FALLBACK, 0.1), 2, 3) is None  # turned off


def test_staffed_hours():
    hours = StaffedHours.parse("mon-fri 09:00-18:00, sat 10:00-14:00", "Asia/Taipei")
    wednesday_noon = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 12:00 in Taipei
    assert hours.is_open(wednesday_noon)
    saturday_evening = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # 20:00 in Taipei
    assert not hours.is_open(saturday_evening)
    opens = hours.next_open(saturday_evening)
    assert (opens.weekday(), opens.hour) == (0, 9)
    assert hours.describe(opens, "zh-TW") == "週一 09:00 (Asia/Taipei)"
    assert StaffedHours.parse("", "UTC").is_open(saturday_evening)
    with pytest.raises(ValueError):
        StaffedHours.parse("weekdays 9-5", "UTC")


async def test_linking_channels_mid_handoff_keeps_one_ticket(app_client, fake_twilio):
    web = await WebShopper.start(app_client)
    await web.say("I want to speak to a human")
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("agent")  # the same shopper, not yet known to be: a second ticket
    first, second = sorted(t["id"] for t in await tickets(app_client))
    await act(app_client, first, "claim")
    resp = await app_client.post("/api/web/link", json={"channel": "whatsapp"}, headers=web.headers)
    code = (await resp.json())["code"]
    assert "Link this chat with the web chat" in await wa.say(code)  # asked even while a person has it
    assert "linked" in await wa.say("yes")  # the two customers become one
    [still_open] = await tickets(app_client)
    assert still_open["id"] == first and still_open["status"] == "assigned"
    assert (await ticket(app_client, second))["status"] == "resolved"
    assert await wa.say("so, about my parcel") == ""  # the person still has the conversation
    detail = await ticket(app_client, first)
    assert {e["channel"] for e in detail["transcript"] if e["author"] == "shopper"} == {"web", "whatsapp"}
    await act(app_client, first, "reply", status=201, text="Found it!")
    assert await wa.replies() == "Found it!"


async def test_transfer_between_agents_and_back_to_the_queue(app_client, fake_twilio):
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("I need a human")
    [opened] = await tickets(app_client)
    (_, ann), (ben_id, ben) = await new_agent(app_client, "Ann"), await new_agent(app_client, "Ben")
    await act(app_client, opened["id"], "claim", ann)
    moved = await act(app_client, opened["id"], "transfer", ann, agent_id=ben_id)
    assert moved["agent_name"] == "Ben" and moved["status"] == "assigned"
    resp = await app_client.post(f"/api/handoffs/{opened['id']}/reply", headers=ann, json={"text": "hi"})
    assert resp.status == 409 and "Ben" in (await resp.json())["error"]
    back = await act(app_client, opened["id"], "transfer", ben, agent_id=None, topic="returns")
    assert back["status"] == "queued" and back["agent_id"] is None and back["topic"] == "returns"
    assert [e["kind"] for e in back["events"]] == ["opened", "claimed", "transfer", "transfer"]
    # WhatsApp allows no free-form message 24 hours after the shopper's last one.
    await act(app_client, opened["id"], "claim", ben)
    await app_client.app[DB].run(
        lambda s: s.execute(
            update(MessageRecord)
            .where(MessageRecord.direction == "in")
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    )
    resp = await app_client.post(f"/api/handoffs/{opened['id']}/reply", headers=ben, json={"text": "late"})
    assert resp.status == 409 and "24-hour" in (await resp.json())["error"]
    resp = await app_client.post(f"/api/handoffs/{opened['id']}/reply", headers=ben, json={"text": " "})
    assert resp.status == 400


async def test_forget_me_after_a_handoff_keeps_only_the_figures(app_client, fake_twilio):
    wa = TwilioShopper(app_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("I want to talk to a real person about my address")
    [opened] = await tickets(app_client)
    await act(app_client, opened["id"], "claim")
    await act(app_client, opened["id"], "reply", status=201, text="Your address is 1 Main St, right?")
    await act(app_client, opened["id"], "note", status=201, text="lives at 1 Main St")
    await act(app_client, opened["id"], "resolve")
    await wa.say("5")
    assert "Delete everything?" in await wa.say("delete my data")
    assert "deleted" in await wa.say("yes")
    detail = await ticket(app_client, opened["id"])
    assert detail["summary"] == {}
    assert [e["author"] for e in detail["transcript"]] == ["bot"]  # only the "deleted" confirmation
    assert all(e["text"] is None for e in detail["events"]) and detail["csat"] == 5
    assert "Main St" not in str(detail)


async def test_agents_created_on_the_command_line_sign_in_to_the_console(
    database_url, aiohttp_client, settings, recognizer
):
    """`python app.py agent add` prints a token once; that token signs in; bad details are refused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "app.py", "agent", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )

    added = cli("add", "Mei Chen", "--languages", "zh-TW,en", "--topics", "returns", "--capacity", "4")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    refused = cli("add", "Someone", "--capacity", "0")
    assert refused.returncode == 2 and "capacity" in refused.stderr
    listed = cli("list")
    assert "Mei Chen" in listed.stdout and token not in listed.stdout  # the token is shown once only

    client = await aiohttp_client(create_app(settings, recognizer))
    me = await client.get("/api/handoffs/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200, await me.text()
    body = await me.json()
    assert body["name"] == "Mei Chen"
    wrong = await client.get("/api/handoffs/me", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status in (401, 403)
