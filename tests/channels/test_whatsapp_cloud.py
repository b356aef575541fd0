"""WhatsApp through Meta's Cloud API, end to end: signed webhooks in, the fake Cloud API out."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import func, select

from bot.channel import SendError
from bot.config import Settings
from bot.messages import ChannelAddress, Choice, Link, OutboundMessage, ProductCard, Template
from bot.store.models import ChannelIdentity, Customer, MessageRecord
from channels.registry import enabled
from channels.whatsapp_cloud import TokenBucket, WhatsAppCloudChannel, parse_events, render
from service.app import DB
from tests.fakes.phone import CloudShopper, TwilioShopper
from tests.fakes.providers import FakeWhatsAppCloud, cloud_body

WA_ID = "14155550177"  # the digits Meta sends as wa_id
BSUID = "US.13491208655302741918"
PATH = "/webhooks/whatsapp-cloud"


async def count(client, model, *where) -> int:
    return await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(model).where(*where)).one())


async def outbound(client, address: str) -> list[MessageRecord]:
    return await client.app[DB].run(
        lambda s: list(
            s.exec(
                select(MessageRecord)
                .where(MessageRecord.direction == "out", MessageRecord.address == address)
                .order_by(MessageRecord.id)
            ).all()
        )
    )


def test_off_without_its_settings_and_on_with_them(cloud_settings, caplog):
    both = cloud_settings.model_copy(update={"twilio_whatsapp_from": "whatsapp:+15550001111"})
    assert {"whatsapp", "whatsapp_cloud", "sms"} <= set(enabled(both))  # both WhatsApp providers at once
    bare = Settings(_env_file=None)
    with caplog.at_level("INFO"):
        assert "whatsapp_cloud" not in enabled(bare)
    (line,) = [r for r in caplog.records if getattr(r, "channel", None) == "whatsapp_cloud"]
    assert "WHATSAPP_CLOUD_TOKEN" in line.missing


async def test_subscription_check(cloud_client):
    ok = await cloud_client.get(
        PATH,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": FakeWhatsAppCloud.verify_token,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status == 200 and await ok.text() == "1158201444"
    bad = await cloud_client.get(
        PATH, params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "x"}
    )
    assert bad.status == 403


async def test_forged_signatures_are_refused_and_nothing_is_stored(cloud_client, fake_cloud):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID)
    body = cloud_body(wa.value(wa.message("text", {"body": "hi"})))
    assert (await wa.post(body, signature="sha256=" + "0" * 64)).status == 403
    assert (await wa.post(body, signature="")).status == 403
    assert (await wa.post(body, signature=FakeWhatsAppCloud().sign(body + b" "))).status == 403
    # signed with the Messenger app's secret: not ours
    assert (await wa.post(body, signature="sha256=" + "a" * 64)).status == 403
    bad = b'{"object": "page", "entry": []}'
    assert (await wa.post(bad)).status == 400
    assert await count(cloud_client, MessageRecord) == 0 and not fake_cloud.requests


async def test_a_text_turn_is_answered_through_the_cloud_api(cloud_client, fake_cloud):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID)
    sent = await wa.say("hello")
    assert CloudShopper.texts(sent).startswith("Hi")
    request = fake_cloud.requests[0]
    assert request["authorization"] == f"Bearer {FakeWhatsAppCloud.token}"
    assert request["version"] == "v25.0" and request["phone_number_id"] == FakeWhatsAppCloud.phone_number_id
    assert all(m["messaging_product"] == "whatsapp" and m["to"] == WA_ID for m in sent)
    customer = await cloud_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.phone == "+" + WA_ID)).one()
    )
    assert customer.display_name == "Ana" and customer.last_channel == "whatsapp_cloud"
    # Meta retries the same message: processed once
    before = len(fake_cloud.requests)
    mid = "wamid.retry-1"
    await wa.send(wa.message("text", {"body": "hello again"}, mid=mid))
    after_first = len(fake_cloud.requests)
    await wa.send(wa.message("text", {"body": "hello again"}, mid=mid))
    assert after_first > before and len(fake_cloud.requests) == after_first


def kind_of(messages: list[dict]) -> str:
    """How the last message offers its choices: "button_reply" or "list_reply"."""
    last = [m for m in messages if m["type"] == "interactive"][-1]["interactive"]
    return "button_reply" if last["type"] == "button" else "list_reply"


async def test_a_button_tap_continues_the_journey(cloud_client, fake_cloud):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID)
    sent = await wa.say("show me running shoes")
    cards = [m for m in sent if m["type"] == "interactive" and "header" in m["interactive"]]
    assert cards and cards[0]["interactive"]["header"]["type"] == "image"
    add = next(b["reply"] for b in cards[0]["interactive"]["action"]["buttons"] if b["reply"]["title"] == "Add to cart")
    sent = await wa.tap(add["id"], add["title"], "button_reply")
    for _ in range(3):  # a size, then a colour, as the product asks
        if "Added" in CloudShopper.texts(sent):
            break
        option = CloudShopper.options(sent)[0]
        sent = await wa.tap(option["id"], option["title"], kind_of(sent))
    assert "Added 1 × Aero Runner" in CloudShopper.texts(sent)
    # the cart's three actions are reply buttons; tapping one goes on to checkout
    sent = await wa.say("view my cart")
    assert kind_of(sent) == "button_reply"
    checkout = next(o for o in CloudShopper.options(sent) if o["title"] == "Checkout")
    sent = await wa.tap(checkout["id"], checkout["title"])
    assert "shipping address" in CloudShopper.texts(sent)


async def test_a_list_reply_answers_the_stock_question(cloud_client, fake_cloud):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID)
    sent = await wa.say("Do you have the Trail Blazer Runner in size 9?")
    assert "in stock" in CloudShopper.texts(sent) and kind_of(sent) == "list_reply"
    rows = CloudShopper.options(sent)
    assert [r["title"] for r in rows][-1] == "No thanks" and len(rows) > 3
    sent = await wa.tap(rows[0]["id"], rows[0]["title"], "list_reply")
    assert "Added 1 × Trail Blazer Runner (9," in CloudShopper.texts(sent)
    stored = await cloud_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord).where(MessageRecord.direction == "in").order_by(MessageRecord.id.desc())
        ).first()
    )
    assert stored.text == rows[0]["id"] and stored.payload["ButtonText"] == rows[0]["title"]


async def test_statuses_update_the_outbox_record(cloud_client, fake_cloud):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID)
    await wa.say("hello")
    wamid = fake_cloud.requests[-1]["wamid"]

    async def status(state: str, code: int | None = None) -> None:
        report = {"id": wamid, "status": state, "timestamp": "1764000100", "recipient_id": WA_ID}
        if code:
            report["errors"] = [{"code": code, "title": "error", "message": "error"}]
        resp = await wa.post(cloud_body({"statuses": [report]}))
        assert resp.status == 200

    async def record() -> MessageRecord:
        return await cloud_client.app[DB].run(
            lambda s: s.exec(select(MessageRecord).where(MessageRecord.provider_message_id == wamid)).one()
        )

    await status("delivered")
    assert (await record()).status == "delivered"
    await status("read")
    await status("delivered")  # late: no step back
    assert (await record()).status == "read"
    await status("failed", 131047)
    row = await record()
    assert row.status == "failed" and row.error_code == "131047" and row.error_reason == "outside_window"


async def test_one_bad_event_never_fails_the_batch(cloud_client, fake_cloud):
    alice, bob = (
        CloudShopper(cloud_client, fake_cloud, "14155550101"),
        CloudShopper(cloud_client, fake_cloud, "14155550102"),
    )
    body = cloud_body(
        alice.value(alice.message("text", {"body": "hello"}), {"id": "wamid.bad", "type": "text"}),
        {"statuses": [{"id": "wamid.unknown", "status": "delivered"}, "not a status"]},
        bob.value(bob.message("location", {"latitude": 25.03, "longitude": 121.56, "name": "Taipei 101"})),
    )
    assert (await alice.post(body)).status == 200
    assert await alice.replies() and await bob.replies()
    assert await count(cloud_client, MessageRecord, MessageRecord.direction == "in") == 2
    located = await cloud_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord).where(MessageRecord.address == "+14155550102", MessageRecord.direction == "in")
        ).one()
    )
    assert located.text == "my location: 25.03,121.56" and located.payload["Label"] == "Taipei 101"


async def test_a_shopper_known_only_by_a_business_scoped_user_id(cloud_client, fake_cloud):
    wa = CloudShopper(cloud_client, fake_cloud, user_id=BSUID, name="Mei")
    sent = await wa.say("hello")
    assert CloudShopper.texts(sent).startswith("Hi")
    assert all(m["recipient"] == BSUID and "to" not in m for m in sent)
    await wa.say("what's in my cart?")
    customers = await count(cloud_client, Customer, Customer.display_name == "Mei")
    assert customers == 1
    identity = await cloud_client.app[DB].run(
        lambda s: s.exec(select(ChannelIdentity).where(ChannelIdentity.address == BSUID)).one()
    )
    assert identity.channel == "whatsapp_cloud"
    stored = await cloud_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord).where(MessageRecord.direction == "in", MessageRecord.address == BSUID)
        ).first()
    )
    assert stored.payload["user_id"] == BSUID and stored.payload["username"] == "@mei"
    customer = await cloud_client.app[DB].run(lambda s: s.get(Customer, stored.customer_id))
    assert customer.phone is None


async def test_a_wa_id_shopper_and_the_same_number_on_sms_are_one_customer(cloud_client, fake_cloud, fake_twilio):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID, user_id=BSUID)
    sms = TwilioShopper(cloud_client, fake_twilio, "sms", "+" + WA_ID)
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    out = await sms.say("view my cart")
    assert "Classic" in out
    assert await count(cloud_client, Customer) == 2  # the demo shopper and this one phone number
    identity = await cloud_client.app[DB].run(
        lambda s: s.exec(select(ChannelIdentity).where(ChannelIdentity.address == "+" + WA_ID)).one()
    )
    assert identity.channel == "phone"
    stored = await cloud_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord).where(MessageRecord.channel == "whatsapp_cloud", MessageRecord.direction == "in")
        ).first()
    )
    assert stored.address == "+" + WA_ID and stored.payload["user_id"] == BSUID  # the user id rides along


async def test_a_shopper_who_hides_their_number_later_is_the_same_customer(cloud_client, fake_cloud):
    """Meta sends the number and the user id while it may; once the username hides the number,
    the user id alone finds the shopper they were."""
    with_number = CloudShopper(cloud_client, fake_cloud, WA_ID, user_id=BSUID, name="Mei")
    await with_number.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    hidden = CloudShopper(cloud_client, fake_cloud, user_id=BSUID, name="Mei")
    sent = await hidden.say("view my cart")
    assert "Classic" in CloudShopper.texts(sent) and all(m["recipient"] == BSUID for m in sent)
    assert await count(cloud_client, Customer) == 2  # the demo shopper and Mei


async def test_a_user_id_shopper_whose_number_appears_keeps_their_customer(cloud_client, fake_cloud, fake_twilio):
    hidden = CloudShopper(cloud_client, fake_cloud, user_id=BSUID, name="Mei")
    await hidden.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    shown = CloudShopper(cloud_client, fake_cloud, WA_ID, user_id=BSUID, name="Mei")
    assert "Classic" in CloudShopper.texts(await shown.say("view my cart"))
    customer = await cloud_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.display_name == "Mei")).one()
    )
    assert customer.phone == "+" + WA_ID and customer.timezone  # the number now known, with its zone
    # and the number joins the phone space: the same shopper by SMS
    assert "Classic" in await TwilioShopper(cloud_client, fake_twilio, "sms", "+" + WA_ID).say("view my cart")
    assert await count(cloud_client, Customer) == 2


@pytest.mark.parametrize(
    "code, status, permanent, reason",
    [
        (131047, 400, True, "outside_window"),
        (131026, 400, True, "undeliverable"),
        (190, 401, True, None),
        (130429, 400, False, "rate_limited"),
        (131056, 400, False, "rate_limited"),
    ],
)
async def test_send_errors_are_permanent_or_retried(cloud_client, fake_cloud, code, status, permanent, reason):
    wa = CloudShopper(cloud_client, fake_cloud, WA_ID)
    fake_cloud.fail_with(code, status)
    await wa.say("hello", settle=0.1 if permanent else 0.3)
    (row,) = await outbound(cloud_client, "+" + WA_ID)
    if permanent:
        assert row.status == "failed" and row.error_code == str(code) and len(fake_cloud.requests) == 1
        if reason:
            assert row.error_reason == reason
    else:
        assert row.status == "sent" and len(fake_cloud.requests) == 2 and len(fake_cloud.messages()) == 1


async def test_a_template_goes_by_name_and_language(cloud_settings, fake_cloud):
    channel = WhatsAppCloudChannel(cloud_settings)
    try:
        msg = OutboundMessage(
            text="Your cart misses you",
            kind="marketing",
            template=Template("cart_reminder:en_US", {"1": "Classic Tee"}),
        )
        receipt = await channel.send(ChannelAddress("whatsapp_cloud", "+" + WA_ID), msg)
        (sent,) = fake_cloud.messages()
        assert receipt.provider_message_id == fake_cloud.requests[0]["wamid"]
        assert sent["to"] == WA_ID and sent["type"] == "template"
        assert sent["template"]["name"] == "cart_reminder" and sent["template"]["language"] == {"code": "en_US"}
        with pytest.raises(SendError) as refused:
            await channel.send(
                ChannelAddress("whatsapp_cloud", "+" + WA_ID), OutboundMessage(template=Template("HX" + "0" * 32))
            )
        assert refused.value.permanent and refused.value.code == "template_unsupported"
        assert len(fake_cloud.requests) == 1  # nothing sent for it
    finally:
        await channel.close()


async def test_sends_are_paced_per_number():
    bucket = TokenBucket(20)  # a burst of 20, then one every 50 ms
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(25):
        await bucket.take()
    assert 0.2 <= loop.time() - start < 1.0


def test_deep_link_opens_a_chat_with_the_display_number(cloud_settings):
    channel = WhatsAppCloudChannel(cloud_settings)
    assert channel.deep_link("t", "link ABC123", "r") == "https://wa.me/15550002222?text=link%20ABC123"


# --- render, alone ----------------------------------------------------------------------------


def choices(n: int, title: str = "Option") -> tuple[Choice, ...]:
    return tuple(Choice(f"{title} {i}", f"/pick {i}") for i in range(1, n + 1))


@pytest.mark.parametrize("n", [2, 3])
def test_render_up_to_three_choices_as_reply_buttons(n):
    (message,) = render(OutboundMessage(text="Which colour?", choices=choices(n)))
    interactive = message["interactive"]
    assert message["type"] == "interactive" and interactive["type"] == "button"
    assert interactive["body"]["text"] == "Which colour?"
    assert [b["reply"] for b in interactive["action"]["buttons"]] == [
        {"id": f"/pick {i}", "title": f"Option {i}"} for i in range(1, n + 1)
    ]


def test_render_five_choices_as_a_list():
    long = Choice("A much longer choice title than a row holds", "/long")
    (message,) = render(OutboundMessage(text="Pick a size", choices=(*choices(4), long)))
    interactive = message["interactive"]
    assert interactive["type"] == "list" and interactive["body"]["text"] == "Pick a size"
    assert len(interactive["action"]["button"]) <= 20
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == ["/pick 1", "/pick 2", "/pick 3", "/pick 4", "/long"]
    assert all(len(r["title"]) <= 24 for r in rows) and len(rows[-1]["description"]) <= 72
    assert rows[-1]["title"].endswith("…") and "description" not in rows[0]


def test_render_twelve_choices_as_numbered_text():
    messages = render(OutboundMessage(text="Pick one", choices=choices(12), option_offset=2))
    (message,) = messages
    body = message["text"]["body"]
    assert message["type"] == "text" and body.startswith("Pick one")
    assert "3. Option 1" in body and "14. Option 12" in body and body.endswith("Reply with a number.")
    assert WhatsAppCloudChannel.numbered_choices  # the engine maps a typed number back


def test_render_cards_links_media_and_long_texts():
    card = ProductCard(
        "Trail Blazer Runner",
        "$89.00",
        "https://img/p.png",
        None,
        (Choice("Add to cart", "/add 1"), Choice("More", "/more 1")),
    )
    plain = ProductCard("Classic Tee", "$19.00", "https://img/t.png", None, ())
    msg = OutboundMessage(
        text="Here you go", cards=(card, plain), links=(Link("Size guide", "https://s"),), choices=choices(2)
    )
    out = render(msg)
    assert out[0] == {"type": "text", "text": {"body": "Here you go\n\nSize guide: https://s", "preview_url": False}}
    assert out[1]["interactive"]["header"] == {"type": "image", "image": {"link": "https://img/p.png"}}
    assert [b["reply"]["id"] for b in out[1]["interactive"]["action"]["buttons"]] == ["/add 1", "/more 1"]
    assert out[2] == {"type": "image", "image": {"link": "https://img/t.png", "caption": "*Classic Tee*\n$19.00"}}
    assert out[3]["interactive"]["body"]["text"] == "Choose one:" and len(out) == 4
    long = render(OutboundMessage(text="x" * 5000))
    assert [len(m["text"]["body"]) for m in long] == [4096, 904]


def test_render_a_template_by_name_and_language():
    msg = OutboundMessage(text="Your cart", template=Template("cart_reminder:en_US", {"2": "SAVE10", "1": "Tee"}))
    (message,) = render(msg)
    assert message == {
        "type": "template",
        "template": {
            "name": "cart_reminder",
            "language": {"code": "en_US"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Tee"}, {"type": "text", "text": "SAVE10"}]}
            ],
        },
    }
    with pytest.raises(Exception, match="name:language"):
        render(OutboundMessage(template=Template("HX" + "0" * 32)))


def test_parse_reads_media_product_replies_and_skips_other_numbers():
    wa = CloudShopper(None, FakeWhatsAppCloud(), WA_ID)
    image = wa.message("image", {"id": "MEDIA1", "mime_type": "image/jpeg", "caption": "this\x00 one"})
    product = wa.message(
        "text",
        {"body": "is it waterproof?"},
        context={
            "from": "15550002222",
            "id": "wamid.card",
            "referred_product": {"catalog_id": "C1", "product_retailer_id": "TRAIL-9"},
        },
    )
    (first, second) = parse_events(cloud_body(wa.value(image, product)), FakeWhatsAppCloud.phone_number_id)
    assert first.media[0].url == "whatsapp-media:MEDIA1" and first.text == "this one"
    assert second.extra["product"] == "TRAIL-9" and second.address == "+" + WA_ID
    assert parse_events(cloud_body(wa.value(image), phone_number_id="999"), FakeWhatsAppCloud.phone_number_id) == []


@pytest.mark.parametrize(
    "code, reason",
    [
        (131047, "outside_window"),
        ("131026", "undeliverable"),
        (130429, "rate_limited"),
        (131056, "rate_limited"),
        (131000, None),
    ],
)
def test_parse_reads_failed_statuses(code, reason):
    report = {"id": "wamid.x", "status": "failed", "recipient_user_id": BSUID, "errors": [{"code": code, "title": "t"}]}
    (update,) = parse_events(cloud_body({"statuses": [report, {"id": "wamid.y", "status": "deleted"}]}))
    assert (update.status, update.error_code, update.error_reason, update.address) == (
        "failed",
        str(code),
        reason,
        BSUID,
    )
