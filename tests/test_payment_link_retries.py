"""An order whose platform order (Shopify's draft, WooCommerce's pending order) could not be made
at checkout, because the platform was down, throttling or lost its answer: the shopper is told
the link follows, the scheduled retry makes exactly one platform order and sends the link once,
also when two processes retry at once, and after PAYMENT_LINK_GIVE_UP_HOURS a person is called
and the shopper told, once. Against the fakes on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import func, select

from bot.store.models import Customer, HandoffTicket, MessageRecord, Order
from integrations.orders import link_retry_delay
from service.app import DB, create_app
from service.wiring import build
from tests.dialogs.test_checkout import add
from tests.fakes.providers import FakeProvider
from tests.fakes.shopify import FakeShopify
from tests.fakes.web_shopper import WebShopper
from tests.fakes.woocommerce import FakeWooCommerce
from tests.proactive.test_campaigns import changed
from tests.test_stripe_payments import checkout
from tests.test_woocommerce import woo

FOLLOWS = "will follow here in a moment"


@dataclass
class Platform:
    """One commerce platform's fake, with what the tests ask of it."""

    name: str
    fake: FakeProvider
    settings: Any
    made: Callable[[], list[dict[str, Any]]]  # the platform orders (drafts) it holds
    url: Callable[[dict[str, Any]], str]  # a platform order's payment link

    def down(self, seconds: float) -> None:
        self.fake.fail_for(seconds)

    def up(self) -> None:
        self.fake.down_until = 0.0


def shopify(settings, fake: FakeShopify) -> Platform:
    configured = changed(
        settings,
        commerce_backend="shopify",
        shopify_shop_domain="shop-test.myshopify.com",
        shopify_admin_token="shpat_test_token",
        shopify_webhook_secret="shopify-test-secret",
        shopify_api_base=fake.url,
        shopify_reconcile_interval_seconds=0,
    )
    return Platform("shopify", fake, configured, lambda: list(fake.drafts.values()), lambda d: d["invoiceUrl"])


def woocommerce(settings, fake: FakeWooCommerce) -> Platform:
    return Platform(
        "woocommerce", fake, woo(settings, fake), lambda: list(fake.orders.values()), lambda o: o["payment_url"]
    )


@pytest.fixture(params=["shopify", "woocommerce"])
async def platform(request, settings):
    fake: FakeShopify | FakeWooCommerce = await (
        FakeShopify() if request.param == "shopify" else FakeWooCommerce()
    ).start()
    made = shopify(settings, fake) if request.param == "shopify" else woocommerce(settings, fake)  # type: ignore[arg-type]
    made.settings = changed(made.settings, shopify_timeout_seconds=2, woocommerce_timeout_seconds=2)
    services = build(made.settings)
    try:
        await services.catalog_sync.run(full=True)
    finally:
        await services.close()
    yield made
    await fake.close()


async def start(aiohttp_client, recognizer, settings) -> tuple[Any, WebShopper]:
    client = await aiohttp_client(create_app(settings, recognizer))
    shopper = await WebShopper.start(client)
    await add(shopper, "add the cozy wool socks")
    return client, shopper


async def order_row(client, number: int) -> Order:
    return await client.app[DB].run(lambda s: s.get(Order, number - 1000))


async def link_messages(client, number: int) -> list[MessageRecord]:
    """The messages that carry the order's link to the shopper after the checkout turn."""
    return await client.app[DB].run(
        lambda s: list(
            s.exec(
                select(MessageRecord).where(
                    MessageRecord.direction == "out",
                    MessageRecord.text.contains(f"link to pay order #{number}"),  # type: ignore[union-attr]
                )
            ).all()
        )
    )


async def wait_for(check, timeout: float = 20.0):
    for _ in range(int(timeout / 0.1)):
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_down_at_checkout_then_up_one_platform_order_and_one_link_message(aiohttp_client, recognizer, platform):
    settings = changed(platform.settings, payment_link_retry_seconds=0.5)
    client, shopper = await start(aiohttp_client, recognizer, settings)
    platform.down(3600)
    number = await checkout(shopper)
    assert FOLLOWS in shopper.texts() and not shopper.last[-1]["links"], shopper.texts()
    assert platform.made() == []
    await asyncio.sleep(2.5)  # scheduled tries fail while it is down
    order = await order_row(client, number)
    assert order.payment_url is None and order.link_attempts >= 2, order

    platform.up()
    messages = await wait_for(lambda: link_messages(client, number))
    [made] = platform.made()
    history = [m for m in await shopper.history() if m["direction"] == "out"]
    sent = [m for m in history if f"link to pay order #{number}" in (m["text"] or "")]
    assert len(sent) == 1 and [link["url"] for link in sent[0]["links"]] == [platform.url(made)], sent
    await asyncio.sleep(1.5)  # more runs of the job change nothing
    assert len(platform.made()) == 1 and len(await link_messages(client, number)) == len(messages) == 1
    order = await order_row(client, number)
    assert order.payment_url == platform.url(made) and order.link_retry_at is None
    assert messages[0].idempotency_key == f"payment-link:{number}:0:{order.customer_id}"
    # Asking about the order now shows the same link; nothing is made again.
    await shopper.say(f"where is order {number}")
    assert [link["url"] for m in shopper.last for link in m["links"]] == [platform.url(made)], shopper.texts()
    assert len(platform.made()) == 1


async def test_shopify_throttling_at_checkout_then_recovering_makes_one_draft(aiohttp_client, recognizer, settings):
    fake = await FakeShopify().start()
    try:
        made = shopify(settings, fake)
        services = build(made.settings)
        try:
            await services.catalog_sync.run(full=True)
        finally:
            await services.close()
        client, shopper = await start(
            aiohttp_client, recognizer, changed(made.settings, payment_link_retry_seconds=0.5)
        )
        fake.restore_rate = 10_000.0  # short waits: (requested - available) / restoreRate
        fake.throttle_next = 9  # more than the client waits through in one try
        number = await checkout(shopper)
        assert FOLLOWS in shopper.texts(), shopper.texts()
        await wait_for(lambda: link_messages(client, number))
        [draft] = fake.drafts.values()
        assert (await order_row(client, number)).payment_ref == draft["id"]
        assert len([op for op in fake.operations() if op == "DraftOrderCreate"]) == 1
    finally:
        await fake.close()


async def test_an_answer_lost_after_the_create_makes_no_second_platform_order(aiohttp_client, recognizer, platform):
    settings = changed(platform.settings, payment_link_retry_seconds=0.5)
    client, shopper = await start(aiohttp_client, recognizer, settings)
    # Made, then a 500 instead of the answer, and the platform down for the look that follows.
    platform.fake.fail_after_making(1, then_down=2.0)
    number = await checkout(shopper)
    assert FOLLOWS in shopper.texts(), shopper.texts()
    assert len(platform.made()) == 1  # made, though nobody heard so
    await wait_for(lambda: link_messages(client, number))
    [made] = platform.made()
    order = await order_row(client, number)
    assert order.payment_url == platform.url(made)
    assert len(await link_messages(client, number)) == 1


async def test_an_answer_lost_and_found_at_once_is_the_checkout_link(aiohttp_client, recognizer, platform):
    client, shopper = await start(aiohttp_client, recognizer, platform.settings)
    platform.fake.fail_after_making(1)
    number = await checkout(shopper)
    [made] = platform.made()
    assert [link["url"] for link in shopper.last[-1]["links"]] == [platform.url(made)], shopper.texts()
    assert (await order_row(client, number)).payment_url == platform.url(made)


async def test_two_processes_retrying_at_once_make_one_platform_order(aiohttp_client, recognizer, platform):
    # The app leads no scheduler here: the two retry runs below are the only ones.
    settings = changed(platform.settings, payment_link_retry_seconds=0.2, scheduler_in_process=False)
    client, shopper = await start(aiohttp_client, recognizer, settings)
    platform.down(3600)
    number = await checkout(shopper)
    assert FOLLOWS in shopper.texts()
    platform.up()
    await asyncio.sleep(0.3)  # its first retry is due
    platform.fake.delay = 0.3  # slow: the two runs overlap
    first, second = build(settings), build(settings)
    try:
        runs = await asyncio.gather(first.payment_links.run(), second.payment_links.run())
    finally:
        await first.close()
        await second.close()
    assert sorted(run.made for run in runs) == [0, 1], runs
    assert len(platform.made()) == 1
    assert len(await link_messages(client, number)) == 1
    made = platform.made()[0]
    assert (await order_row(client, number)).payment_url == platform.url(made)


async def test_no_link_after_the_give_up_time_calls_a_person_and_tells_the_shopper_once(
    aiohttp_client, recognizer, platform
):
    settings = changed(
        platform.settings, payment_link_retry_seconds=0.3, payment_link_give_up_hours=1.5 / 3600
    )  # 1.5 seconds
    client, shopper = await start(aiohttp_client, recognizer, settings)
    platform.down(3600)
    number = await checkout(shopper)
    assert FOLLOWS in shopper.texts()

    async def told() -> list[dict[str, Any]]:
        return [m for m in await shopper.history() if "a member of our team" in (m["text"] or "")]

    [message] = await wait_for(told)
    assert f"order #{number}" in message["text"]
    await asyncio.sleep(1.0)  # later runs leave it to the person
    assert len(await told()) == 1
    tickets = await client.app[DB].run(lambda s: list(s.exec(select(HandoffTicket)).all()))
    assert len(tickets) == 1 and tickets[0].summary["payment_link"]["order"] == number
    order = await order_row(client, number)
    assert order.link_gave_up_at is not None and order.payment_url is None and order.status == "pending_payment"
    assert platform.made() == []
    tries = order.link_attempts
    await asyncio.sleep(1.0)
    assert (await order_row(client, number)).link_attempts == tries  # no more scheduled tries
    count = await client.app[DB].run(lambda s: s.exec(select(func.count()).select_from(HandoffTicket)).one())
    assert count == 1


async def test_a_chinese_speaking_shopper_gets_the_link_in_traditional_chinese(aiohttp_client, recognizer, platform):
    settings = changed(platform.settings, payment_link_retry_seconds=0.2, scheduler_in_process=False)
    client, shopper = await start(aiohttp_client, recognizer, settings)
    platform.down(3600)
    number = await checkout(shopper)
    platform.up()

    def speaks_chinese(session) -> None:
        order = session.get(Order, number - 1000)
        session.get(Customer, order.customer_id).language = "zh-TW"

    await client.app[DB].run(speaks_chinese)
    await asyncio.sleep(0.3)
    services = build(settings)
    try:
        run = await services.payment_links.run()
    finally:
        await services.close()
    assert run.made == 1
    [made] = platform.made()
    [message] = [m for m in await shopper.history() if "付款連結" in (m["text"] or "")]
    assert f"訂單 #{number}" in message["text"] and "US$19.99" in message["text"], message["text"]
    assert [(link["title"], link["url"]) for link in message["links"]] == [("立即付款", platform.url(made))]


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 30), (2, 60), (3, 120), (5, 480), (6, 900), (40, 900)])
def test_the_backoff_doubles_up_to_fifteen_minutes(attempts, seconds):
    from datetime import timedelta

    assert link_retry_delay(attempts, timedelta(seconds=30)) == timedelta(seconds=seconds)
