"""WhatsApp through Twilio, tappable: choices, product cards and links as Content (quick-reply
buttons, list pickers, cards, call-to-action links) inside the 24-hour window, made once per
shape; numbered text outside it, on SMS, and when a Content resource cannot be made."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

from sqlmodel import func, select

from bot.delivery.outbox import queue_to_customer
from bot.messages import ChannelAddress, Choice, Link, OutboundMessage, ProductCard, numbered_options
from bot.store.models import Customer, MessageRecord, ProviderContent, utcnow
from channels.twilio import WhatsAppChannel, tappable_parts
from channels.twilio_content import render_content
from service.app import DB, OUTBOX, create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.providers import FakeTwilio, content_problems, substitute, twilio_form

NUMBER = "+14155550123"
OTHER = "+14155550188"


def content_of(fake: FakeTwilio, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The content type of a ContentSid send and its spec with the variables filled in."""
    made = fake.contents[record["content_sid"]]
    variables = {**made["variables"], **json.loads(record["content_variables"])}
    kind, spec = next(iter(substitute(made["types"], variables).items()))
    return kind, spec


def options(fake: FakeTwilio, records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The tappable options of the last content send that has any: (kind, payload id, title)."""
    for record in reversed(records):
        if not record["content_sid"]:
            continue
        kind, spec = content_of(fake, record)
        if kind == "twilio/list-picker":
            return [(kind, item["id"], item["item"]) for item in spec["items"]]
        found = [(kind, a["id"], a["title"]) for a in spec.get("actions") or [] if a.get("type") == "QUICK_REPLY"]
        if found:
            return found
    return []


async def tap(wa: TwilioShopper, option: tuple[str, str, str]) -> list[dict[str, Any]]:
    """Tap a button or list row as WhatsApp reports it through Twilio; the records sent back."""
    kind, payload, title = option
    extra = (
        {"ListId": payload, "ListTitle": title}
        if kind == "twilio/list-picker"
        else {"ButtonPayload": payload, "ButtonText": title}
    )
    before = len(wa.mine())
    resp = await wa.post(twilio_form("whatsapp", wa.number, title, **extra))
    assert resp.status == 200
    await wa.replies()
    return wa.mine()[before:]


async def say(wa: TwilioShopper, text: str) -> list[dict[str, Any]]:
    before = len(wa.mine())
    await wa.say(text)
    return wa.mine()[before:]


def shown(records: list[dict[str, Any]]) -> str:
    return "\n".join(r["body"] or r["shown"] or "" for r in records)


async def test_a_whatsapp_shopper_taps_through_to_a_checkout_link(
    aiohttp_client, channel_settings, recognizer, fake_twilio
):
    client = await aiohttp_client(create_app(channel_settings, recognizer))
    wa = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    # browse: product cards with their pictures and buttons
    sent = await say(wa, "show me running shoes")
    cards = [content_of(fake_twilio, r) for r in sent if r["content_sid"]]
    cards = [spec for kind, spec in cards if kind == "twilio/card"]
    assert cards and all(spec["media"][0].endswith(".png") for spec in cards)
    assert not any(r["body"] and "Reply with a number" in r["body"] for r in sent)
    add = next(o for o in options(fake_twilio, sent) if o[2] == "Add to cart")
    product = next(spec["title"] for spec in cards if any(a["id"] == add[1] for a in spec["actions"]))
    sent = await tap(wa, add)
    kinds_tapped = {add[0]}
    for _ in range(3):  # a size from a list, then a colour from buttons, as the product asks
        if "Added" in shown(sent):
            break
        offered = options(fake_twilio, sent)
        assert offered, shown(sent)
        kinds_tapped.add(offered[0][0])
        sent = await tap(wa, offered[0])
    assert f"Added 1 × {product} (" in shown(sent)
    # the dialog got the chosen option itself: the stored tap carries the number the reply gave it
    tapped = await client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord).where(MessageRecord.direction == "in").order_by(MessageRecord.id.desc())
        ).first()
    )
    assert tapped.text.isdecimal() and (tapped.payload["ButtonText"] or tapped.payload["ListTitle"])
    # the cart's actions are buttons; checkout, the receipt question, the order, the pay link
    sent = await say(wa, "view my cart")
    checkout = next(o for o in options(fake_twilio, sent) if o[2] == "Checkout")
    assert checkout[0] == "twilio/quick-reply"
    sent = await tap(wa, checkout)
    assert "shipping address" in shown(sent)
    sent = await say(wa, "10 Downing Street, London SW1A 2AA")
    skip = next(o for o in options(fake_twilio, sent) if o[2] == "Skip")
    sent = await tap(wa, skip)
    assert "Place the order?" in shown(sent)
    sent = await say(wa, "yes")
    assert re.search(r"Order #\d+ is placed", shown(sent))
    links = [
        spec
        for kind, spec in map(lambda r: content_of(fake_twilio, r), [r for r in sent if r["content_sid"]])
        if kind == "twilio/call-to-action"
    ]
    assert links and links[0]["actions"][0]["url"].startswith("https://shop.example.com/pay/")
    assert links[0]["actions"][0]["type"] == "URL" and len(links[0]["actions"][0]["title"]) <= 20
    assert "twilio/list-picker" in kinds_tapped or "twilio/quick-reply" in kinds_tapped
    # every WhatsApp message went with a Content SID or as text, never both
    assert all(not (r["content_sid"] and r["body"]) for r in wa.mine())

    # one resource per shape, however many messages used it
    sends = fake_twilio.content_sends()
    shapes = {json.dumps(c["types"], sort_keys=True) for c in fake_twilio.contents.values()}
    assert len(shapes) == len(fake_twilio.contents) < len(sends)
    assert len({r["content_sid"] for r in sends}) == len(fake_twilio.contents)
    stored = await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(ProviderContent)).one())
    assert stored == len(fake_twilio.contents)

    # a restart (or another process): the same shapes are found in the store, not made again
    made = len(fake_twilio.content_requests)
    await client.close()
    again = await aiohttp_client(create_app(channel_settings, recognizer))
    other = TwilioShopper(again, fake_twilio, "whatsapp", OTHER)
    sent = await say(other, "show me running shoes")
    assert any(r["content_sid"] for r in sent)
    sent = await tap(other, next(o for o in options(fake_twilio, sent) if o[2] == "Add to cart"))
    assert any(r["content_sid"] for r in sent)
    assert len(fake_twilio.content_requests) == made


async def queue_choices(client, number: str, key: str) -> None:
    """The shop writes first to this shopper (a person's message, say) with three choices."""

    def queue(session) -> None:
        customer = session.exec(select(Customer).where(Customer.phone == number)).one()
        message = OutboundMessage(
            "Which suits you?", choices=tuple(Choice(t, t.lower()) for t in ("Red", "Blue", "Green"))
        )
        queue_to_customer(session, customer.id, key, message, channel="whatsapp")

    await client.app[DB].run(queue)
    client.app[OUTBOX].notify()


async def test_outside_the_window_the_same_choices_go_as_numbered_text(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("hello")
    await queue_choices(channel_client, NUMBER, "inside-1")
    await wa.replies()
    inside = wa.mine()[-1]
    assert inside["content_sid"] and content_of(fake_twilio, inside)[0] == "twilio/quick-reply"

    def age(session) -> None:  # the shopper's last message is now 25 hours old
        for record in session.exec(select(MessageRecord).where(MessageRecord.direction == "in")).all():
            record.created_at = utcnow() - timedelta(hours=25)

    await channel_client.app[DB].run(age)
    await queue_choices(channel_client, NUMBER, "outside-1")
    await wa.replies()
    outside = wa.mine()[-1]
    assert outside["content_sid"] is None
    assert "1. Red\n2. Blue\n3. Green" in outside["body"] and "Reply with a number." in outside["body"]
    # a typed number still answers it, as on SMS
    stored = await channel_client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(MessageRecord.idempotency_key == "outside-1")).one()
    )
    assert [c.value for c in numbered_options(OutboundMessage.from_dict(stored.payload))] == ["red", "blue", "green"]


async def test_sms_stays_numbered_text(channel_client, fake_twilio):
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    await sms.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    out = await sms.say("view my cart")
    assert "1. Checkout" in out and "Reply with a number." in out
    assert not fake_twilio.content_sends() and not fake_twilio.content_requests


async def test_a_content_the_api_refuses_goes_as_numbered_text_once(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    fake_twilio.fail_content(5, status=500)
    before = len(fake_twilio.content_requests)
    out = await wa.say("view my cart")
    assert len(fake_twilio.content_requests) > before  # it tried
    assert "1. Checkout" in out and "Reply with a number." in out
    keys = await channel_client.app[DB].run(
        lambda s: s.exec(
            select(MessageRecord.idempotency_key, MessageRecord.status).where(MessageRecord.direction == "out")
        ).all()
    )
    assert all(key for key, _ in keys) and len({key for key, _ in keys}) == len(keys)
    assert all(status == "sent" for _, status in keys)
    fake_twilio.content_failures.clear()
    out = await wa.say("view my cart")
    assert "[Checkout]" in out and wa.mine()[-1]["content_sid"]


# --- every shape, checked against the fake's rules (no browser needed) ----------------------


LONG = "Trail Blazer Runner Waterproof Edition with a very long name indeed"


def shapes() -> dict[str, OutboundMessage]:
    picture = "https://cdn.shop.example.com/products/trail-blazer.png"
    many = tuple(Choice(f"{LONG} {i}", f"/pick {i}") for i in range(12))
    return {
        "one button": OutboundMessage("Anything else?", choices=(Choice("No thanks", "no"),)),
        "three buttons, long titles": OutboundMessage("Which?", choices=many[:3]),
        "buttons whose cut titles collide": OutboundMessage(
            "Which?", choices=(Choice(LONG + " A", "a"), Choice(LONG + " B", "b"))
        ),
        "list of ten": OutboundMessage("Pick a size", choices=many[:10]),
        "more than ten": OutboundMessage("Pick one", choices=many),
        "text too long to ride": OutboundMessage("x" * 1500, choices=many[:2]),
        "card with picture and buttons": OutboundMessage(
            "Here you go",
            cards=(ProductCard(LONG, "NT$3,200 · " + "in stock " * 10, picture, None, many[:3]),),
            option_offset=4,
        ),
        "card without buttons": OutboundMessage(cards=(ProductCard("Tee", "NT$500", picture, None, ()),)),
        "card with four buttons": OutboundMessage(cards=(ProductCard("Tee", "NT$500", picture, None, many[:4]),)),
        "two cards then choices": OutboundMessage(
            "Results",
            cards=(ProductCard("A", "1", picture, None, many[:1]), ProductCard("B", "2", None, None, many[1:3])),
            choices=(Choice("More", "more"),),
        ),
        "link": OutboundMessage(
            "Order #12 is placed.", links=(Link("Pay now", "https://shop.example.com/pay/" + "t" * 600),)
        ),
        "two links": OutboundMessage(
            "Track:", links=(Link("Parcel 1", "https://t.example.com/1"), Link("Parcel 2", "https://t.example.com/2"))
        ),
        "zh-TW list": OutboundMessage(
            "請選擇尺寸", choices=tuple(Choice(f"尺寸 {i} 號（有貨）", str(i)) for i in range(5)), language="zh-TW"
        ),
    }


def test_every_rendered_shape_passes_the_content_rules():
    kinds: set[str] = set()
    for name, msg in shapes().items():
        parts = tappable_parts(msg)
        numbers = [str(n) for n in range(msg.option_offset + 1, msg.option_offset + len(numbered_options(msg)) + 1)]
        payloads: list[str] = []
        for part in parts:
            if part.content is None:
                assert part.body or part.media_urls, name
                assert len(part.body) <= 1600, name
                payloads += re.findall(r"^(\d+)\. ", part.body, re.MULTILINE)
                continue
            request = part.content.create_request()
            # created with samples (as Twilio checks a create), sent with the message's values
            assert content_problems(request["types"], request["variables"]) == [], name
            assert content_problems(request["types"], part.content.variables, in_session=True) == [], name
            kind, spec = next(iter(substitute(request["types"], part.content.variables).items()))
            kinds.add(kind)
            payloads += [a["id"] for a in spec.get("actions") or [] if a.get("type") == "QUICK_REPLY"]
            payloads += [item["id"] for item in spec.get("items") or []]
        # every option is offered once, by the number a typed answer would use
        assert payloads == numbers, name
    assert kinds == {"twilio/quick-reply", "twilio/list-picker", "twilio/card", "twilio/call-to-action"}


def test_shapes_are_shared_by_messages_that_differ_only_in_their_words():
    a = render_content(OutboundMessage("Pick", choices=(Choice("Red", "r"), Choice("Blue", "b"))))[0].content
    b = render_content(
        OutboundMessage("Choose a colour", choices=(Choice("Black", "k"), Choice("White", "w")), option_offset=3)
    )[0].content
    c = render_content(OutboundMessage("Pick", choices=(Choice("Red", "r"), Choice("Blue", "b"), Choice("Gold", "g"))))[
        0
    ].content
    assert a and b and c
    assert a.key() == b.key() != c.key()
    assert a.variables != b.variables
    assert "more than ten" in shapes() and len(render_content(shapes()["more than ten"])) == 1
    assert "Reply with a number." in render_content(shapes()["more than ten"])[0].body


async def test_sends_of_one_new_shape_at_once_make_it_once(channel_settings, fake_twilio):
    channel = WhatsAppChannel(channel_settings)
    until = utcnow() + timedelta(hours=1)
    messages = [
        OutboundMessage(f"Size for shopper {i}?", choices=(Choice("S", "s"), Choice("M", "m")), session_until=until)
        for i in range(6)
    ]
    try:
        await asyncio.gather(
            *(channel.send(ChannelAddress("whatsapp", f"+1415555{i:04d}"), m) for i, m in enumerate(messages))
        )
    finally:
        await channel.close()
    assert len(fake_twilio.content_requests) == 1 and len(fake_twilio.contents) == 1
    sends = fake_twilio.content_sends()
    assert len(sends) == 6 and {r["content_sid"] for r in sends} == set(fake_twilio.contents)
    assert sorted(json.loads(r["content_variables"])["1"] for r in sends) == [m.text for m in messages]
