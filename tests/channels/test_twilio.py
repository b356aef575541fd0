"""WhatsApp and SMS through Twilio, end to end: signed webhooks in, the fake Twilio API out."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from sqlmodel import func, select

from bot.config import Settings
from bot.messages import Choice, OutboundMessage, ProductCard
from bot.store.models import Customer, MessageRecord
from channels.registry import enabled
from channels.twilio import SmsChannel, render, sms_units, split_text
from service.app import DB, create_app
from tests.fakes.phone import BASE, TwilioShopper
from tests.fakes.providers import encode_form, twilio_form

NUMBER = "+14155550123"


async def count(client, *where) -> int:
    return await client.app[DB].run(
        lambda s: s.exec(select(func.count()).select_from(MessageRecord).where(*where)).one()
    )


async def test_whatsapp_whole_journey(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    out = await wa.say("Do you have the Trail Blazer Runner in size 9?")
    # inside the 24-hour window the choices are a list picker (tests/channels/test_twilio_content.py)
    assert "in stock" in out and "<Choose one>" in out and "Add black: Add black" in out
    assert all(r["from"] == "whatsapp:+15550001111" for r in wa.mine())
    assert wa.mine()[0]["status_callback"] == f"{BASE}/webhooks/twilio/status"
    out = await wa.say("1")  # the first colour, typed: rows carry the numbers typed answers use
    assert "Added 1 × Trail Blazer Runner (9," in out
    # product cards arrive as cards with their pictures
    assert any(r["shown"] and "(picture https://" in r["shown"] and ".png)" in r["shown"] for r in wa.mine())
    out = await wa.say("checkout")
    assert "shipping address" in out
    out = await wa.say("10 Downing Street, London SW1A 2AA")
    assert "receipt" in out and "[Skip]" in out
    out = await wa.say("1")
    assert "Place the order?" in out
    out = await wa.say("yes")
    assert re.search(r"Order #\d+ is placed", out) and "[Pay now](https://shop.example.com/pay/" in out


async def test_sms_numbered_choices_and_same_customer_as_whatsapp(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    out = await sms.say("view my cart")
    assert "Classic" in out and "1. Checkout" in out and "Reply with a number." in out
    out = await sms.say("3")  # "Remove an item": a one-line cart needs no question
    assert "Removed" in out and "Your cart is empty" in out
    customers = await channel_client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(Customer)).one())
    assert customers == 2  # the demo shopper and this one phone number


async def test_bad_signatures_are_refused_and_nothing_is_stored(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    form = twilio_form("whatsapp", NUMBER, "hi")
    assert (await wa.post(form, signature="")).status == 403
    assert (await wa.post(form, signature="bm90IGEgc2lnbmF0dXJl")).status == 403
    signed_elsewhere = fake_twilio.sign("https://evil.example.com" + wa.path, form)
    assert (await wa.post(form, signature=signed_elsewhere)).status == 403
    tampered = fake_twilio.sign(BASE + wa.path, form)
    assert (await wa.post({**form, "Body": "changed"}, signature=tampered)).status == 403
    assert await count(channel_client) == 0


async def test_malformed_and_misrouted_webhooks(channel_client, fake_twilio):
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    no_sid = {"From": NUMBER, "Body": "hi"}
    assert (await sms.post(no_sid)).status == 400
    whatsapp_on_sms = twilio_form("whatsapp", NUMBER, "hi")
    assert (await sms.post(whatsapp_on_sms)).status == 400
    huge = await channel_client.post(
        sms.path, data=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert huge.status == 413
    assert await count(channel_client) == 0


async def test_unconfigured_channel_is_404(aiohttp_client, settings, recognizer, fake_twilio):
    from service.app import create_app

    client = await aiohttp_client(create_app(settings, recognizer))  # no credentials at all
    form = twilio_form("sms", NUMBER, "hi")
    resp = await client.post(
        "/webhooks/twilio/sms",
        data=encode_form(form),
        headers={"X-Twilio-Signature": "x", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 404 and "not configured" in (await resp.json())["error"]


async def test_a_retried_message_sid_is_processed_once(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("hello", sid="SM-retry-1")
    first = len(wa.mine())
    assert first >= 1
    await wa.say("hello", sid="SM-retry-1")
    assert len(wa.mine()) == first
    assert await count(channel_client, MessageRecord.direction == "in") == 1


async def test_media_and_location_are_stored(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    form = twilio_form(
        "whatsapp",
        NUMBER,
        "",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/media/ME1",
        MediaContentType0="image/jpeg",
    )
    assert (await wa.post(form)).status == 200
    form = twilio_form("whatsapp", NUMBER, "", Latitude="51.5", Longitude="-0.12", Address="London")
    assert (await wa.post(form)).status == 200
    await wa.replies()
    rows = await channel_client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(MessageRecord.direction == "in").order_by(MessageRecord.id)).all()
    )
    assert rows[0].payload["media"] == [{"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}]
    assert rows[1].payload["Latitude"] == "51.5" and "London" in rows[1].text


async def test_sms_stop_and_start_change_consent_without_a_second_reply(channel_client, fake_twilio):
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    await sms.say("hello")
    sent = len(sms.mine())
    await sms.say("STOP")
    assert len(sms.mine()) == sent  # Twilio already answers STOP
    customer = await channel_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.phone == NUMBER)).one()
    )
    assert customer.sms_opted_out and customer.marketing_consent is False
    await sms.say("START")
    customer = await channel_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.phone == NUMBER)).one()
    )
    assert not customer.sms_opted_out and customer.marketing_consent is True
    out = await sms.say("yes")  # not opted out: "yes" is an answer for the dialog
    assert out


async def test_whatsapp_stop_is_answered_by_the_bot(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    assert "unsubscribed" in await wa.say("STOP")


async def test_status_callbacks_update_the_outbox_record(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("hello")
    sid = wa.mine()[-1]["sid"]

    async def callback(status: str, code: str | None = None) -> int:
        form = {"MessageSid": sid, "MessageStatus": status, "From": "whatsapp:+15550001111", "To": "whatsapp:" + NUMBER}
        if code:
            form["ErrorCode"] = code
        sig = fake_twilio.sign(BASE + "/webhooks/twilio/status", form)
        resp = await channel_client.post(
            "/webhooks/twilio/status",
            data=urlencode(form).encode(),
            headers={"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
        )
        return resp.status

    async def record() -> MessageRecord:
        return await channel_client.app[DB].run(
            lambda s: s.exec(select(MessageRecord).where(MessageRecord.provider_message_id == sid)).one()
        )

    assert await callback("delivered") == 204
    assert (await record()).status == "delivered"
    assert await callback("read") == 204
    assert await callback("delivered") == 204  # late and out of order: no step back
    assert (await record()).status == "read"
    assert await callback("failed", "63016") == 204
    row = await record()
    assert row.status == "failed" and row.error_code == "63016" and row.error_reason == "outside_window"
    form = {"MessageSid": sid, "MessageStatus": "delivered"}
    bad = await channel_client.post(
        "/webhooks/twilio/status",
        data=urlencode(form).encode(),
        headers={"X-Twilio-Signature": "wrong", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert bad.status == 403


async def test_opted_out_recipient_is_recorded_and_not_retried(channel_client, fake_twilio):
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    fake_twilio.fail_next(
        1, 400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
    )
    await sms.say("hello")
    await fake_twilio.wait_for(1)
    rows = await channel_client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(MessageRecord.direction == "out")).all()
    )
    assert rows[0].status == "failed" and rows[0].error_code == "21610" and rows[0].attempts == 1
    customer = await channel_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.phone == NUMBER)).one()
    )
    assert customer.sms_opted_out
    assert len(fake_twilio.requests) == 1


@pytest.mark.parametrize("status, code", [(500, 20500), (429, 20429), (503, 20503)])
async def test_transient_errors_are_retried_and_sent_once(channel_client, fake_twilio, status, code):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    fake_twilio.fail_next(2, status, {"code": code, "message": "try later", "status": status})
    assert (await wa.post(twilio_form("whatsapp", NUMBER, "hello"))).status == 200
    await fake_twilio.wait_for(3)
    row = await settled_reply(channel_client)
    await wa.replies()
    assert len(wa.mine()) == 1 and [r["failed"] for r in fake_twilio.requests] == [True, True, False]
    assert row.status == "sent" and row.attempts == 3


async def test_a_slow_provider_times_out_and_is_retried(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    fake_twilio.delay = 1.5  # longer than the 1 s send timeout
    resp = await wa.post(twilio_form("whatsapp", NUMBER, "hello"))
    assert resp.status == 200  # the webhook never waits for sending
    await fake_twilio.wait_for(1)
    fake_twilio.delay = 0
    row = await settled_reply(channel_client, timeout=20)
    assert row.attempts >= 2 and row.status == "sent"


async def settled_reply(client, timeout: float = 10) -> MessageRecord:
    """The one outbound record, once the outbox has finished with it."""
    import asyncio

    for _ in range(int(timeout / 0.05)):
        rows = await client.app[DB].run(
            lambda s: s.exec(select(MessageRecord).where(MessageRecord.direction == "out")).all()
        )
        if rows and rows[0].status in ("sent", "failed"):
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the reply was not settled: {rows}")


def test_render_sms_numbers_cards_and_choices():
    msg = OutboundMessage(
        text="Pick one:",
        cards=(ProductCard("Aero Runner", "$89.00", "https://x/a.png", None, (Choice("Add to cart", "/add"),)),),
        choices=(Choice("View cart", "/view_cart"),),
    )
    (part,) = render(msg, "sms")
    assert "1. Add to cart" in part.body and "2. View cart" in part.body and not part.media_urls
    parts = render(msg, "whatsapp")
    assert parts[1].media_urls == ("https://x/a.png",) and "*Aero Runner*" in parts[1].body
    shifted = render(OutboundMessage(text="More", choices=(Choice("Yes", "Yes"),), option_offset=2), "sms")
    assert "3. Yes" in shifted[0].body


@pytest.mark.parametrize("text, parts", [("a" * 1600, 2), ("a" * 1530, 1), ("😀" * 700, 3), ("é " * 700, 1)])
def test_long_text_is_split_on_segment_boundaries(text, parts):
    chunks = split_text(text)
    assert len(chunks) == parts
    for chunk in chunks:
        units, capacity = sms_units(chunk)
        assert units <= capacity and len(chunk) <= 1600


async def test_a_retry_resumes_after_the_parts_already_sent(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("hi")  # the first reply goes out whole
    fake_twilio.requests.clear()
    wa.seen = 0

    original = fake_twilio._gate
    calls = {"n": 0}

    async def fail_second_part():
        calls["n"] += 1
        if calls["n"] == 2:
            fake_twilio.fail_next(1, 500, {"code": 20500, "message": "try later", "status": 500})
        return await original()

    fake_twilio._gate = fail_second_part
    await wa.say("show me running shoes")
    # text parts by their body, Content parts (the cards) by their variables
    bodies = [r["body"] or r["content_variables"] for r in wa.mine()]
    assert len(bodies) == len(set(bodies)), bodies  # nothing sent twice
    assert any("Here are some" in b for b in bodies)


async def test_a_send_whose_answer_was_lost_is_not_sent_again(channel_client, fake_twilio):
    """Twilio took the message but its answer came after our timeout: the retry asks Twilio
    first, finds it, and the shopper gets the text once."""
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    fake_twilio.lose_answers(1, delay=3.0)  # longer than the channel settings' 1 s send timeout
    assert await sms.say("hi")
    bodies = [r["body"] for r in sms.mine()]
    assert len(bodies) == 1, bodies

    def reply(session):
        return session.exec(
            select(MessageRecord).where(MessageRecord.direction == "out", MessageRecord.address == NUMBER)
        ).one()

    record = await channel_client.app[DB].run(reply)
    assert record.status == "sent" and record.attempts == 2
    assert record.provider_message_id == sms.mine()[0]["sid"]


async def test_signature_headers_are_found_whatever_their_case(channel_client, fake_twilio, fake_graph):
    """A proxy may lowercase header names: the signature is still found and checked."""
    from tests.fakes.phone import MessengerShopper, encode_form, twilio_form

    form = twilio_form("whatsapp", "+14155550190", "hi")
    path = "/webhooks/twilio/whatsapp"
    for name in ("x-twilio-signature", "X-TWILIO-SIGNATURE"):
        form["MessageSid"] = "SM" + name.encode().hex()[:32]
        resp = await channel_client.post(
            path,
            data=encode_form(form),
            headers={"content-type": "application/x-www-form-urlencoded", name: fake_twilio.sign(BASE + path, form)},
        )
        assert resp.status == 200, await resp.text()
    bad = await channel_client.post(
        path,
        data=encode_form(form),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "bm9wZQ=="},
    )
    assert bad.status == 403
    shopper = MessengerShopper(channel_client, fake_graph, "7300")
    body = b'{"object":"page","entry":[]}'
    resp = await channel_client.post(
        "/webhooks/messenger",
        data=body,
        headers={"content-type": "application/json", "x-hub-signature-256": fake_graph.sign(body)},
    )
    assert resp.status == 200, await resp.text()
    refused = await channel_client.post(
        "/webhooks/messenger",
        data=body,
        headers={"content-type": "application/json", "x-hub-signature-256": "sha256=" + "0" * 64},
    )
    assert refused.status == 403 and shopper.psid == "7300"


async def test_a_messaging_service_sends_in_place_of_a_sender(
    aiohttp_client, channel_settings, recognizer, fake_twilio
):
    """With TWILIO_MESSAGING_SERVICE_SID, WhatsApp and SMS are on without their From addresses, and
    every send names the service (MessagingServiceSid) and no From."""
    service = "MG" + "0" * 32
    settings = Settings(
        _env_file=None,
        **{
            **channel_settings.model_dump(),
            "twilio_whatsapp_from": None,
            "twilio_sms_from": None,
            "twilio_messaging_service_sid": service,
        },
    )
    assert set(enabled(settings)) >= {"whatsapp", "sms"}
    without = Settings(_env_file=None, **{**settings.model_dump(), "twilio_messaging_service_sid": None})
    assert "whatsapp" not in enabled(without) and "TWILIO_SMS_FROM" in (SmsChannel.missing_settings(without) or "")
    client = await aiohttp_client(create_app(settings, recognizer))
    for channel in ("whatsapp", "sms"):
        assert "Hi!" in await TwilioShopper(client, fake_twilio, channel, "+14155550401").say("hi")
    sent = fake_twilio.delivered()
    assert {r["to"] for r in sent} == {"whatsapp:+14155550401", "+14155550401"}
    assert all(r["messaging_service_sid"] == service and r["from"] is None for r in sent)
