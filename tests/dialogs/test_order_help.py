"""Refund status, changing an order's address and account matters, through the real engine on
the demo shopper's orders (1001 delivered, 1002 shipped, 1003 paid)."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.store.models import HandoffTicket
from service.app import DB, ENGINE


def speaker(client):
    from bot.messages import InboundMessage

    engine = client.app[ENGINE]
    count = iter(range(10_000))

    async def say(text: str) -> str:
        _, replies = await engine.handle(InboundMessage("web", "demo-shopper", f"{text}-{next(count)}", text))
        return "\n".join(r.text or "" for r in replies)

    return say


async def test_refund_status_lists_returns_and_cancelled_orders(client):
    say = speaker(client)
    assert "no refund on its way" in await say("I'm still waiting for my reimbursement, where is it?")
    await say("I want to return something from order 1001")
    await say("1")
    reference = re.search(r"R-1001-[0-9A-F]{6}", await say("Doesn't fit")).group(0)
    await say("please cancel order 1003")
    assert "is cancelled" in await say("yes")
    out = await say("has my refund been processed?")
    assert f"Return {reference} for " in out and "(order #1001)" in out, out
    assert "the refund is made once the item reaches us" in out
    assert "Order #1003 (placed " in out and "was cancelled" in out


async def test_address_change_of_an_open_order_and_of_a_shipped_one(client):
    say = speaker(client)
    out = await say("I need to change the delivery address of order 1003")
    assert "Order #1003 hasn't shipped yet" in out and "12 Harbour Street" in out, out
    out = await say("can I change the shipping address for order 1002")
    assert "Order #1002 has already left us" in out, out


async def test_account_matters_go_to_a_person_not_to_a_shop_journey(client):
    say = speaker(client)
    out = await say("I forgot my password and can't log in")
    assert "passing you to a member of our team" in out or "Our team is offline" in out, out
    db = client.app[DB]
    tickets = await db.run(lambda s: s.exec(select(HandoffTicket)).all())
    assert [t.topic for t in tickets] == ["account"]
