"""The order confirmation e-mail end to end: the web chat checkout with a receipt e-mail, the
sandbox pay page, and the outbox's e-mail lane against a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import ValidationError
from sqlmodel import select

from bot.config import Settings
from bot.delivery.mail import MAIL_LANE, SmtpServer, message_id
from bot.store.models import MessageRecord
from service.app import DB, create_app
from tests.dialogs.test_checkout import add, place_order
from tests.fakes.smtp import PASSWORD, FakeSmtp
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import changed

MAIL_FROM = "Shop <orders@shop.test>"
# The fake server asks for a login over plain text: on loopback, in a test, that is what we want.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def smtp():
    server = FakeSmtp().start()
    yield server
    server.stop()


def with_mail(settings: Settings, smtp: FakeSmtp, **more) -> Settings:
    return changed(settings, smtp_url=smtp.url, mail_from=MAIL_FROM, outbox_retry_base_seconds=0.2, **more)


async def pay(client, path: str) -> int:
    answer = await client.post(path.split("?")[0], data={"sig": path.split("sig=")[1]})
    return answer.status


async def mail_records(client) -> list[MessageRecord]:
    return await client.app[DB].run(
        lambda s: list(s.exec(select(MessageRecord).where(MessageRecord.channel == MAIL_LANE)).all())
    )


async def wait_for_record(client, done, timeout: float = 15) -> MessageRecord:
    for _ in range(int(timeout / 0.05)):
        records = await mail_records(client)
        if records and done(records[0]):
            return records[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the e-mail record never got there: {await mail_records(client)}")


def parts(mail) -> tuple[str, str]:
    return mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()


async def test_paying_on_the_web_sends_one_confirmation_email(aiohttp_client, settings, recognizer, smtp):
    client = await aiohttp_client(create_app(with_mail(settings, smtp), recognizer))
    shopper = await WebShopper.start(client)
    await add(shopper, "add the linen sundress size S")  # $79.00, shipping free
    number, path = await place_order(shopper, "Ana.Li@Example.com")
    assert await pay(client, path) == 200
    assert await pay(client, path) == 409  # paid already: nothing more

    [mail] = await smtp.wait_for(1)
    assert mail["To"] == "ana.li@example.com" and mail["From"] == MAIL_FROM
    assert mail["Subject"] == f"Order #{number} confirmed"
    assert mail["Message-ID"] == message_id(f"order-mail:{number}", MAIL_FROM)
    assert smtp.envelopes == [{"from": "orders@shop.test", "to": ["ana.li@example.com"]}]
    assert smtp.logins == ["shop"]
    plain, html = parts(mail)
    assert f"Thank you for your order #{number}" in plain and "221 Baker Street" in plain
    assert "1 × Linen" in plain and "$79.00" in plain and "Shipping    $0.00" in plain
    assert "Total    $79.00" in plain
    assert "<table" in html and "1 × Linen" in html and "<td" in html and "$79.00" in html
    record = await wait_for_record(client, lambda r: r.status == "sent")
    assert record.provider_message_id == mail["Message-ID"] and record.attempts == 1
    await asyncio.sleep(1.0)  # a second poll of the lane sends nothing more
    assert len(smtp.messages) == 1
    history = " ".join(m["text"] or "" for m in await shopper.history())
    assert f"Payment received for order #{number}" in history


def our_logs(caplog) -> str:
    """What the service logged (not the fake mail server's own log, `mail.log`)."""
    return " ".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if not r.name.startswith(("mail.log", "aiosmtpd"))
    )


async def test_a_mail_server_that_is_down_gets_the_email_later_once(aiohttp_client, settings, recognizer, caplog):
    caplog.set_level(logging.DEBUG)
    smtp = FakeSmtp()  # not started yet: connections are refused
    client = await aiohttp_client(create_app(with_mail(settings, smtp), recognizer))
    try:
        shopper = await WebShopper.start(client)
        await add(shopper, "add the linen sundress size S")
        number, path = await place_order(shopper, "ana@example.com")
        assert await pay(client, path) == 200
        failed = await wait_for_record(client, lambda r: r.attempts >= 2)
        assert failed.status in ("pending", "sending") and failed.error_code == "smtp_unreachable"
        assert smtp.messages == []

        smtp.start()
        [mail] = await smtp.wait_for(1)
        assert mail["Message-ID"] == message_id(f"order-mail:{number}", MAIL_FROM)
        record = await wait_for_record(client, lambda r: r.status == "sent")
        assert record.attempts >= 3
        await asyncio.sleep(1.0)
        assert len(smtp.messages) == 1
        assert "send will be retried" in our_logs(caplog)
        assert "ana@example.com" not in our_logs(caplog) and PASSWORD not in our_logs(caplog)
    finally:
        smtp.stop()


async def test_no_email_address_no_email(aiohttp_client, settings, recognizer, smtp):
    client = await aiohttp_client(create_app(with_mail(settings, smtp), recognizer))
    skipped = await WebShopper.start(client)
    await add(skipped, "add the linen sundress size S")
    _, path = await place_order(skipped, "skip")
    assert await pay(client, path) == 200
    phone = await WebShopper.start(client)
    await add(phone, "add the linen sundress size S")
    _, path = await place_order(phone, "+1 415 555 0100")
    assert await pay(client, path) == 200
    await asyncio.sleep(1.0)
    assert await mail_records(client) == [] and smtp.messages == []


async def test_without_smtp_url_no_email_is_queued(client):
    shopper = await WebShopper.start(client)
    await add(shopper, "add the linen sundress size S")
    _, path = await place_order(shopper, "ana@example.com")
    assert await pay(client, path) == 200
    assert await mail_records(client) == []


async def test_the_email_is_in_the_shoppers_language(aiohttp_client, settings, recognizer, smtp):
    client = await aiohttp_client(create_app(with_mail(settings, smtp), recognizer))
    shopper = await WebShopper.start(client)
    await shopper.say('/add_to_cart {"product":"SOCK-ANKLE","quantity":1}')
    while "已加入" not in shopper.texts() and "Added" not in shopper.texts():
        await shopper.tap(shopper.buttons()[0])
    await shopper.say("結帳")
    await shopper.say("台北市信義區松仁路100號")
    await shopper.say("ana@example.com")
    await shopper.tap("是")
    link = shopper.last[-1]["links"][0]["url"]
    number = int(link.split("pay_")[1].split("_")[0])
    assert await pay(client, link.removeprefix("http://shop.test")) == 200
    [mail] = await smtp.wait_for(1)
    assert mail["Subject"] == f"訂單 #{number} 已確認" and mail["Content-Language"] == "zh-TW"
    plain, html = parts(mail)
    assert "感謝您訂購" in plain and "總計    US$17.99" in plain and "運費    US$5.99" in plain
    assert "1 × 日常短襪" in plain and "Everyday Ankle Socks" not in plain  # the product's Chinese name
    assert 'lang="zh-TW"' in html


async def test_a_refused_mailbox_fails_once_and_is_not_retried(aiohttp_client, settings, recognizer, smtp):
    smtp.refused.add("nobody@example.com")
    client = await aiohttp_client(create_app(with_mail(settings, smtp), recognizer))
    shopper = await WebShopper.start(client)
    await add(shopper, "add the linen sundress size S")
    _, path = await place_order(shopper, "nobody@example.com")
    assert await pay(client, path) == 200
    record = await wait_for_record(client, lambda r: r.status == "failed")
    assert record.attempts == 1 and record.error_code == "smtp_550"
    await asyncio.sleep(1.0)
    assert (await mail_records(client))[0].attempts == 1 and smtp.messages == []


@pytest.mark.parametrize(
    "url, server",
    [
        ("smtp://mail.example:2525", SmtpServer("mail.example", 2525)),
        ("smtp://u:p%40w@mail.example", SmtpServer("mail.example", 587, "u", "p@w")),
        ("smtp://mail.example?starttls=require", SmtpServer("mail.example", 587, start_tls=True)),
        ("smtp://mail.example:25?starttls=off", SmtpServer("mail.example", 25, start_tls=False)),
        ("smtps://u:p@mail.example", SmtpServer("mail.example", 465, "u", "p", use_tls=True)),
    ],
)
def test_smtp_url(url, server):
    assert SmtpServer.parse(url) == server


@pytest.mark.parametrize(
    "url", ["http://mail.example", "smtp://", "smtp://h:port", "smtp://h?starttls=maybe", "smtps://h?starttls=off"]
)
def test_a_bad_smtp_url_is_refused_without_repeating_it(url):
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, smtp_url=url.replace("//", f"//u:{PASSWORD}@", 1), mail_from="a@b.test")
    assert PASSWORD not in str(refused.value)


def test_smtp_url_needs_mail_from():
    with pytest.raises(ValidationError, match="MAIL_FROM"):
        Settings(_env_file=None, smtp_url="smtp://mail.example")
