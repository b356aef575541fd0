"""Messenger end to end: signed webhooks in, the fake Graph Send API out."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import replace

from sqlmodel import func, select

from bot.config import DEFAULT_GRAPH_API_VERSION
from bot.messages import Choice, Link, OutboundMessage, ProductCard
from bot.store.models import MessageRecord
from channels.messenger import render
from service.app import DB
from service.keys import SETTINGS
from tests.fakes.phone import MessengerShopper
from tests.fakes.providers import FakeGraph

PSID = "2400000000000001"


async def count(client, *where) -> int:
    return await client.app[DB].run(
        lambda s: s.exec(select(func.count()).select_from(MessageRecord).where(*where)).one()
    )


async def test_subscription_check(channel_client):
    ok = await channel_client.get(
        "/webhooks/messenger",
        params={"hub.mode": "subscribe", "hub.verify_token": FakeGraph.verify_token, "hub.challenge": "1158201444"},
    )
    assert ok.status == 200 and await ok.text() == "1158201444"
    bad = await channel_client.get(
        "/webhooks/messenger", params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "x"}
    )
    assert bad.status == 403


async def test_messenger_journey_with_quick_replies_and_carousel(channel_client, fake_graph):
    fb = MessengerShopper(channel_client, fake_graph, PSID)
    sent = await fb.say("show me running shoes")
    carousel = [
        m for m in sent if m["message"].get("attachment", {}).get("payload", {}).get("template_type") == "generic"
    ]
    assert carousel, sent
    elements = carousel[0]["message"]["attachment"]["payload"]["elements"]
    assert 1 <= len(elements) <= 10 and all(len(e["title"]) <= 80 for e in elements)
    add = next(b for b in elements[0]["buttons"] if b["title"] == "Add to cart")
    # tapping a card button arrives as a postback
    resp = await fb.post_events(
        {
            "sender": {"id": PSID},
            "recipient": {"id": "PAGE"},
            "timestamp": 1764000000001,
            "postback": {"mid": "m_pb1", "title": "Add to cart", "payload": add["payload"]},
        }
    )
    assert resp.status == 200
    sent = await fb.replies()
    quick = MessengerShopper.quick_replies(sent)
    assert quick and all(len(q["title"]) <= 20 for q in quick) and len(quick) <= 13
    while "Added" not in MessengerShopper.texts(sent):
        sent = await fb.say(quick[0]["title"], quick_reply=quick[0]["payload"])
        quick = MessengerShopper.quick_replies(sent) or quick
    sent = await fb.say("checkout")
    sent = await fb.say("5 Rue de Rivoli, 75001 Paris")
    assert "receipt" in MessengerShopper.texts(sent)
    sent = await fb.say("Skip", quick_reply="Skip")
    sent = await fb.say("yes", quick_reply="Yes")
    text = MessengerShopper.texts(sent)
    assert re.search(r"Order #\d+ is placed", text), text
    button = next(m for m in sent if "attachment" in m["message"])["message"]["attachment"]["payload"]["buttons"][0]
    assert button["type"] == "web_url" and button["url"].startswith("https://shop.example.com/pay/")
    # every call carries the page token, its appsecret_proof, and replies are RESPONSE
    proof = hmac.new(FakeGraph.app_secret.encode(), FakeGraph.page_token.encode(), hashlib.sha256).hexdigest()
    assert all(r["query"]["appsecret_proof"] == proof for r in fake_graph.requests)
    assert all(m["messaging_type"] == "RESPONSE" for m in fb.mine())
    assert any(r["json"].get("sender_action") == "typing_on" for r in fake_graph.requests)


async def test_bad_signature_and_bad_bodies(channel_client, fake_graph):
    fb = MessengerShopper(channel_client, fake_graph, PSID)
    assert (await fb.post_events(fb.text_event("hi"), signature="sha256=" + "0" * 64)).status == 403
    assert (await fb.post_events(fb.text_event("hi"), signature="")).status == 403
    assert (await fb.post_events(fb.text_event("hi"), signature="sha256=é")).status == 403
    body = b"{not json"
    resp = await channel_client.post(
        "/webhooks/messenger", data=body, headers={"X-Hub-Signature-256": fake_graph.sign(body)}
    )
    assert resp.status == 400
    body = b'{"object": "instagram", "entry": []}'
    resp = await channel_client.post(
        "/webhooks/messenger", data=body, headers={"X-Hub-Signature-256": fake_graph.sign(body)}
    )
    assert resp.status == 400
    big = b'{"object":"page","entry":[],"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = await channel_client.post(
        "/webhooks/messenger", data=big, headers={"X-Hub-Signature-256": fake_graph.sign(big)}
    )
    assert resp.status == 413
    assert await count(channel_client) == 0


async def test_batch_with_a_bad_event_echoes_and_receipts(channel_client, fake_graph):
    alice, bob = (
        MessengerShopper(channel_client, fake_graph, "111"),
        MessengerShopper(channel_client, fake_graph, "222"),
    )
    events = [
        alice.text_event("hello", mid="m_a1"),
        {"sender": {"id": "333"}, "timestamp": 5, "message": "not an object"},  # malformed
        {
            "sender": {"id": "PAGE"},
            "recipient": {"id": "111"},
            "timestamp": 6,
            "message": {"mid": "m_echo", "is_echo": True, "text": "from the page"},
        },
        {"sender": {"id": "444"}, "recipient": {"id": "PAGE"}, "timestamp": 7, "optin": {"type": "x"}},  # unknown to us
        bob.text_event("where is my order?", mid="m_b1"),
    ]
    resp = await alice.post_events(*events, entries=2)
    assert resp.status == 200 and await resp.text() == "EVENT_RECEIVED"
    assert await alice.replies() and await bob.replies()
    assert await count(channel_client, MessageRecord.direction == "in") == 2
    # the same batch again (Meta retries) is processed once
    await alice.post_events(*events, entries=2)
    assert await count(channel_client, MessageRecord.direction == "in") == 2
    # delivery and read receipts advance the outbound records
    receipt = {
        "sender": {"id": "111"},
        "recipient": {"id": "PAGE"},
        "timestamp": 8,
        "read": {"watermark": 4102444800000},
    }
    assert (await alice.post_events(receipt)).status == 200
    statuses = await channel_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord.status).where(MessageRecord.address == "111", MessageRecord.direction == "out")
        ).all()
    )
    assert statuses and set(statuses) == {"read"}


async def test_send_api_errors_retry_or_fail(channel_client, fake_graph):
    fb = MessengerShopper(channel_client, fake_graph, PSID)
    fake_graph.fail_next(2, 500, {"error": {"message": "temporary", "code": 2}})
    fake_graph.fail_next(1, 400, {"error": {"message": "Application request limit reached", "code": 4}})
    await channel_client.post("/webhooks/messenger", data=b"", headers={})  # unsigned: refused, no effect
    sent = await fb.say("hello")
    sent = sent or await fb.replies(settle=1.0)
    assert MessengerShopper.texts(sent).startswith("Hi!")
    assert len([m for m in fb.mine() if m["message"].get("text", "").startswith("Hi!")]) == 1
    fake_graph.fail_next(5, 400, {"error": {"message": "This person isn't available right now.", "code": 551}})
    before = len(fake_graph.requests)
    await fb.say("thanks")
    rows = await channel_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord).where(MessageRecord.direction == "out").order_by(MessageRecord.id.desc())
        ).all()
    )
    assert rows[0].status == "failed" and rows[0].error_code == "551"
    # typing indicator (refused, ignored) and the message itself, once: permanent errors are not retried
    assert len(fake_graph.requests) - before == 2


def test_render_limits():
    msg = OutboundMessage(
        text="x" * 4500,
        choices=tuple(Choice(f"A very long choice title {i}", f"v{i}") for i in range(20)),
        cards=tuple(
            ProductCard("T" * 100, "S" * 100, None, None, (Choice("Add to cart", "/a"),) * 5) for _ in range(12)
        ),
    )
    out = render(msg)
    texts = [m["text"] for m in out if "text" in m]
    assert "".join(texts) == "x" * 4500 and all(len(t) <= 2000 for t in texts)
    elements = out[-1]["attachment"]["payload"]["elements"]
    assert len(elements) == 10 and all(len(e["title"]) <= 80 and len(e["buttons"]) <= 3 for e in elements)
    quick = out[-1]["quick_replies"]
    assert len(quick) == 13 and all(len(q["title"]) <= 20 for q in quick)
    with_links = render(OutboundMessage(text="Pay", links=(Link("Pay now", "https://p"),)))
    assert with_links[0]["attachment"]["payload"]["template_type"] == "button"


def test_render_words_of_its_own_follow_the_shoppers_language():
    only_choices = OutboundMessage(choices=(Choice("Yes", "/yes"),))
    assert render(only_choices)[0]["text"] == "Choose one:"
    assert render(replace(only_choices, language="zh-TW"))[0]["text"] == "請選擇："
    only_links = OutboundMessage(links=(Link("Pay now", "https://p"),), language="zh-TW")
    assert render(only_links)[0]["attachment"]["payload"]["text"] == "連結"


def reply_record(session, psid: str = PSID) -> MessageRecord:
    return session.exec(
        select(MessageRecord).where(MessageRecord.direction == "out", MessageRecord.address == psid)
    ).one()


async def test_a_send_whose_answer_was_lost_twice_reaches_the_shopper_once(channel_client, fake_graph):
    """Meta took the message but answered after our timeout: the retry finds it in the thread
    (Conversations API) and does not send it again."""
    fb = MessengerShopper(channel_client, fake_graph, PSID)
    fake_graph.lose_answers(2, delay=3.0)  # longer than the channel settings' 1 s send timeout
    sent = await fb.say("hello")
    assert MessengerShopper.texts(sent).startswith("Hi!")
    copies = [r for r in fake_graph.requests if "message" in r["json"]]
    assert len(copies) == 1, [r["json"]["message"] for r in copies]
    record = await channel_client.app[DB].run(reply_record)
    assert record.status == "sent" and record.attempts == 2 and record.provider_message_id == copies[0]["mid"]
    (lookup,) = fake_graph.lookups
    proof = hmac.new(FakeGraph.app_secret.encode(), FakeGraph.page_token.encode(), hashlib.sha256).hexdigest()
    assert lookup["query"]["user_id"] == PSID and lookup["query"]["platform"] == "messenger"
    assert lookup["query"]["appsecret_proof"] == proof and not lookup["failed"]


async def test_a_send_in_doubt_is_not_sent_blind_when_the_thread_cannot_be_checked(channel_client, fake_graph):
    fb = MessengerShopper(channel_client, fake_graph, PSID)
    fake_graph.lose_answers(1, delay=3.0)
    fake_graph.conversations_down = 500
    await fb.say("hello")
    assert len([r for r in fake_graph.requests if "message" in r["json"]]) == 1  # at most once
    record = await channel_client.app[DB].run(reply_record)
    assert record.status == "failed" and record.error_code == "in_doubt"
    assert "not sent again" in record.error_reason and "could not be checked" in record.error_reason
    # checked again with backoff until the attempts ran out (the first try was the send itself)
    assert len(fake_graph.lookups) == record.attempts - 1 == 3


async def test_the_send_api_is_called_at_the_default_graph_version(channel_client, fake_graph):
    """A version Meta still supports (v25.0 runs until July 2028), unless GRAPH_API_VERSION says otherwise."""
    assert DEFAULT_GRAPH_API_VERSION == "v25.0"
    assert channel_client.app[SETTINGS].graph_api_version == DEFAULT_GRAPH_API_VERSION
    await MessengerShopper(channel_client, fake_graph, PSID).say("hello")
    sends = [r for r in fake_graph.requests if "message" in r["json"]]
    assert sends and {r["version"] for r in sends} == {"v25.0"}
