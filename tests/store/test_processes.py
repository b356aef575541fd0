"""Two service processes on one PostgreSQL database take turns per customer (advisory locks)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import select

from bot.store.models import Cart, CartItem, Variant
from service.app import DB, create_app
from tests.conftest import TEST_DATABASE_URL
from tests.fakes.web_shopper import WebShopper

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="several processes share a database only on PostgreSQL (set TEST_DATABASE_URL)"
)


async def test_two_workers_one_shopper_no_lost_or_doubled_update(settings, recognizer):
    first, second = create_app(settings, recognizer), create_app(settings, recognizer)
    async with TestClient(TestServer(first)) as a, TestClient(TestServer(second)) as b:

        def restock(session):
            session.get(Variant, "TEE-CLASSIC-M-WHT").stock = 100

        await a.app[DB].run(restock)
        shopper_a = await WebShopper.start(a)
        shopper_b = WebShopper(b, shopper_a.token)  # the same session, served by the other worker
        command = '/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}'
        await asyncio.gather(*[s.say(command) for s in [shopper_a, shopper_b] * 10])
        quantity = await a.app[DB].run(
            lambda s: s.exec(
                select(CartItem.quantity).join(Cart, Cart.id == CartItem.cart_id).where(Cart.status == "open")
            ).one()
        )
        assert quantity == 20
