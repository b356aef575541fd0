"""Input an outsider or a careless provider sends: characters no store can hold, batches with a
bad event in them, and malformed bodies that must get a 4xx, never a 500. Run on SQLite and, with
TEST_DATABASE_URL, on PostgreSQL (whose text cannot hold NUL)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import text as sql_text
from sqlmodel import func, select

from bot.store.models import Customer, MessageRecord
from service.app import DB
from tests.fakes.phone import MessengerShopper, TwilioShopper
from tests.fakes.providers import twilio_form
from tests.fakes.web_shopper import WebShopper

NUMBER = "+14155550142"
DIRTY = "hi\x00 there\x01\x07\x1b[31m 👋 你好\tok\r\nline two\x7f"
CLEAN = "hi there[31m 👋 你好\tok\nline two\x7f"


async def inbound(client, *where) -> list[MessageRecord]:
    return await client.app[DB].run(
        lambda s: list(
            s.exec(
                select(MessageRecord).where(MessageRecord.direction == "in", *where).order_by(MessageRecord.id)
            ).all()
        )
    )


async def count(client, table=MessageRecord) -> int:
    return await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(table)).one())


# --- characters no store can hold --------------------------------------------------------------


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
async def test_nul_and_controls_in_a_twilio_message_are_cleaned(channel_client, fake_twilio, channel):
    phone = TwilioShopper(channel_client, fake_twilio, channel, NUMBER)
    form = twilio_form(channel, NUMBER, DIRTY, ProfileName="Ann\x00ie")
    for _ in range(2):  # Twilio's retry of the same MessageSid is the same message
        resp = await phone.post(form)
        assert resp.status == 200, await resp.text()
    [row] = await inbound(channel_client)
    assert row.text == CLEAN
    await phone.replies()
    assert phone.mine(), "the cleaned message gets its answer"
    customer = await channel_client.app[DB].run(lambda s: s.get(Customer, row.customer_id))
    assert customer.display_name == "Annie"


async def test_nul_and_lone_surrogates_in_a_messenger_batch_lose_nothing(channel_client, fake_graph):
    shoppers = [MessengerShopper(channel_client, fake_graph, psid) for psid in ("5101", "5102", "5103")]
    events = [
        shoppers[0].text_event("hello"),
        shoppers[1].text_event("nul\x00 inside \ud83d\ude00 and a lone \ud800 half"),
        shoppers[2].text_event("view my cart"),
    ]
    resp = await shoppers[0].post_events(*events)
    assert resp.status == 200 and await resp.text() == "EVENT_RECEIVED"
    rows = await inbound(channel_client)
    assert [r.address for r in rows] == ["5101", "5102", "5103"]
    assert rows[1].text == "nul inside 😀 and a lone \ufffd half"
    for shopper in shoppers:
        assert await shopper.replies(), shopper.psid


async def test_a_twilio_status_with_a_nul_in_its_sid_is_harmless(channel_client, fake_twilio):
    form = {"MessageSid": "SM\x00" + "1" * 32, "MessageStatus": "delivered", "To": "whatsapp:" + NUMBER}
    signature = fake_twilio.sign("https://shop.example.com/webhooks/twilio/status", form)
    resp = await channel_client.post(
        "/webhooks/twilio/status",
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert resp.status == 204


# --- one bad event never fails its neighbours ----------------------------------------------------


def refuse_text(client, poison: str) -> None:
    """Make the store itself refuse one message text, as a constraint it enforces would."""
    db = client.app[DB]
    with db.engine.begin() as connection:
        if db.is_sqlite:
            connection.execute(
                sql_text(
                    f"CREATE TRIGGER refuse_poison BEFORE INSERT ON message WHEN NEW.text = '{poison}' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the store'); END"
                )
            )
        else:
            connection.execute(
                sql_text(
                    "CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.text = '{poison}' THEN RAISE EXCEPTION 'refused by the store'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sql_text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON message FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )


async def test_an_event_the_store_refuses_is_skipped_and_the_rest_processed(channel_client, fake_graph):
    refuse_text(channel_client, "poison")
    alice, bob, carol = (MessengerShopper(channel_client, fake_graph, p) for p in ("6101", "6102", "6103"))
    resp = await alice.post_events(
        alice.text_event("hello"), bob.text_event("poison"), carol.text_event("where is my order?")
    )
    assert resp.status == 200
    assert [r.address for r in await inbound(channel_client)] == ["6101", "6103"]
    assert await alice.replies() and await carol.replies()


# --- malformed bodies get a 4xx -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/web/messages", "/api/web/link"])
@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        '{"id": "deep", "text": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"channel": ' + '{"a":' * 3000 + "1" + "}" * 3000 + "}",
        '{"id": "deep", "text": ' + "[" * 100 + "]" * 100 + "}",
    ],
)
async def test_deeply_nested_json_is_a_400(client, shopper, path, body):
    assert len(body) < 64 * 1024
    resp = await client.post(path, data=body.encode(), headers={**shopper.headers, "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert "error" in await resp.json()
    assert await count(client) == 0


async def test_a_chunked_web_body_over_the_limit_is_refused(client, shopper):
    async def chunks():
        for _ in range(100):
            yield b" " * 1024
        yield b'{"id": "x", "text": "hi"}'

    resp = await client.post(
        "/api/web/messages", data=chunks(), headers={**shopper.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert await count(client) == 0


@pytest.mark.parametrize(
    "after",
    ["99999999999999999999999", "-99999999999999999999999", "9223372036854775808", "1e9", "0x10", "1_000", "١٢", " 5"],
)
async def test_history_after_an_id_beyond_range_is_a_400(client, shopper, after):
    await shopper.say("hello")
    resp = await client.get("/api/web/messages", params={"after": after}, headers=shopper.headers)
    assert resp.status == 400, await resp.text()
    assert "after" in (await resp.json())["error"]


async def test_history_after_the_largest_id_is_empty(client, shopper):
    await shopper.say("hello")
    assert await shopper.history(after=2**63 - 1) == []


@pytest.mark.parametrize("signature", ["%C3%A9%C3%A9", "%E2%98%83", "%00", "x" * 300])
async def test_a_click_link_with_a_non_ascii_signature_is_a_404(client, signature):
    resp = await client.get(f"/r/somekey/{signature}", allow_redirects=False)
    assert resp.status == 404


async def test_a_click_link_with_a_non_ascii_key_is_a_404(client):
    resp = await client.get("/r/%E2%98%83/0123456789abcdef", allow_redirects=False)
    assert resp.status == 404


async def test_a_location_without_longitude_is_stored(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    for lonely in ({"Latitude": "25.0330"}, {"Longitude": "121.5654"}):
        resp = await wa.post(twilio_form("whatsapp", NUMBER, "", **lonely))
        assert resp.status == 200, await resp.text()
    rows = await inbound(channel_client)
    assert len(rows) == 2
    assert rows[0].payload["Latitude"] == "25.0330" and "Longitude" not in rows[0].payload
    assert rows[1].payload["Longitude"] == "121.5654" and "Latitude" not in rows[1].payload


@pytest.mark.parametrize(
    "bad",
    [
        {"message": {"mid": "m_bad", "text": {"not": "a string"}}},
        {"message": {"mid": "m_bad", "text": ["a", "list"]}},
        {"message": {"mid": "m_bad", "text": 42}},
        {"message": {"mid": {"a": 1}, "text": "hi"}},
        {"message": {"mid": "m_bad", "quick_reply": {"payload": ["x"]}}},
        {"message": {"mid": "m_bad", "attachments": [{"payload": {"url": 5}}]}},
        {"message": {"mid": "m_bad", "attachments": "nope"}},
        {"postback": {"payload": {"x": 1}}},
        {"referral": {"ref": ["x"]}},
        {"delivery": {"watermark": 10**30}},
        {"read": {"watermark": -(10**30)}},
        {"delivery": {"watermark": "soon"}},
        {"timestamp": 10**400, "postback": {"payload": "/help"}},
    ],
)
async def test_a_malformed_messenger_event_is_skipped_and_its_neighbours_kept(channel_client, fake_graph, bad):
    good = MessengerShopper(channel_client, fake_graph, "7101")
    also = MessengerShopper(channel_client, fake_graph, "7102")
    resp = await good.post_events(
        good.text_event("hello"),
        {"sender": {"id": "7999"}, "recipient": {"id": "PAGE"}, "timestamp": 1764000000000, **bad},
        also.text_event("view my cart"),
    )
    assert resp.status == 200, await resp.text()
    assert [r.address for r in await inbound(channel_client)] == ["7101", "7102"]
    assert await good.replies() and await also.replies()


@pytest.mark.parametrize("entry", [{"id": "PAGE", "messaging": 5}, {"id": "PAGE", "messaging": {"a": 1}}, 7, None])
async def test_a_malformed_messenger_entry_is_skipped(channel_client, fake_graph, entry):
    good = MessengerShopper(channel_client, fake_graph, "7201")
    body = json.dumps({"object": "page", "entry": [entry, {"id": "PAGE", "messaging": [good.text_event("hi")]}]})
    resp = await channel_client.post(
        "/webhooks/messenger",
        data=body.encode(),
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": fake_graph.sign(body.encode())},
    )
    assert resp.status == 200, await resp.text()
    assert [r.address for r in await inbound(channel_client)] == ["7201"]


async def test_a_web_message_of_controls_only_is_empty(client):
    shopper = await WebShopper.start(client)
    resp = await client.post("/api/web/messages", json={"id": "c1", "text": "\x01\x02\x1f"}, headers=shopper.headers)
    assert resp.status == 400 and "empty" in (await resp.json())["error"]
    assert await count(client) == 0
