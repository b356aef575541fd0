"""Price questions answered with the catalog's price, and feedback or complaints handed to a
person with the ticket topic `feedback`, through the real engine, store and model."""

from __future__ import annotations

from sqlmodel import select

from bot.store.models import HandoffTicket
from service.app import DB
from tests.dialogs.test_order_help import speaker


async def test_price_of_a_product_named_in_english_and_in_chinese(client):
    say = speaker(client)
    assert "The Aero Runner is $89.00." in await say("how much are the aero running shoes?")
    out = await say("Aero 跑鞋多少錢")
    assert "Aero 跑鞋的價格是" in out and "89" in out, out


async def test_price_with_a_size_says_whether_that_size_is_there(client):
    """The bomber comes in S to XL (black and green in L); the Aero Runner's size 9 is sold out
    in the demo catalog."""
    say = speaker(client)
    out = await say("how much is the bomber in L")
    assert "The Aviator Bomber Jacket is $99.00. Size L is in stock in black and green." in out, out
    out = await say("飛行外套L號多少錢")
    assert "飛行員夾克的價格是 US$99.00。L 號有黑色和綠色的現貨。" in out, out
    assert "Size 9 is sold out right now." in await say("how much is the aero runner in size 9")
    assert "It doesn't come in size 9." in await say("how much is the bomber in size 9")


async def test_price_of_the_product_looked_at_last(client):
    say = speaker(client)
    await say("do you have the storm shell rain jacket in size M?")
    assert "The Storm Shell Rain Jacket is $139.00" in await say("how much is it")


async def test_feedback_opens_a_ticket_about_feedback(client):
    say = speaker(client)
    out = await say("I want to complain about the courier who brought my parcel")
    assert "passing you to a member of our team" in out or "Our team is offline" in out, out
    tickets = await client.app[DB].run(lambda s: s.exec(select(HandoffTicket)).all())
    assert [t.topic for t in tickets] == ["feedback"]
