"""GET /metrics through the real app: turns, fallbacks, outbox sends, webhook answers, the token,
and no shopper's number or words in what is served."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from service.app import METRICS, create_app
from tests.fakes.phone import TwilioShopper
from tests.fakes.providers import twilio_form
from tests.fakes.web_shopper import WebShopper

NUMBER = "+14155550188"
GIBBERISH = "asdkjh qwpoeiru zmxncb"


async def scrape(client, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include these."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_web_and_whatsapp_turns_are_counted_by_channel(channel_client, fake_twilio):
    web = await WebShopper.start(channel_client)
    await web.say("hi")
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    assert await wa.say("hello there")
    text = await scrape(channel_client)
    assert value(text, "shop_turns_total", channel="web") == 1
    assert value(text, "shop_turns_total", channel="whatsapp") == 1
    assert value(text, "shop_turns_total", channel="whatsapp", outcome="understood") == 1
    assert value(text, "shop_turn_latency_seconds_count", channel="web") == 1
    assert value(text, "shop_turn_latency_seconds_count", channel="whatsapp") == 1
    assert value(text, "shop_outbox_sends_total", channel="whatsapp", result="sent") >= 1
    assert value(text, "shop_outbox_lag_seconds_count", channel="whatsapp") >= 1
    assert value(text, "shop_outbox_pending", channel="whatsapp") == 0
    assert value(text, "shop_webhook_acks_total", channel="whatsapp", status="200") == 1
    assert value(text, "shop_webhook_ack_latency_seconds_count", channel="whatsapp") == 1
    # Nothing of the shopper: no number (in any spelling), no words they said.
    for private in (NUMBER, NUMBER[1:], NUMBER[-7:], "hello there"):
        assert private not in text


async def test_a_fallback_turn_counts_as_fallback(client):
    shopper = await WebShopper.start(client)
    await shopper.say(GIBBERISH)
    text = await scrape(client)
    assert value(text, "shop_turns_total", channel="web", outcome="fallback", intent="fallback") == 1
    assert value(text, "shop_fallbacks_total", channel="web") == 1
    assert value(text, "shop_turns_total", channel="web", outcome="understood") == 0
    assert GIBBERISH not in text and "asdkjh" not in text


async def test_a_slash_text_is_no_label(client):
    """A shopper's own words after a slash look like a button's payload: never a label."""
    shopper = await WebShopper.start(client)
    await shopper.say("/maryjones")
    text = await scrape(client)
    assert "maryjones" not in text
    assert value(text, "shop_turns_total", channel="web", intent="other") == 1


async def test_a_refused_send_counts_as_failed_with_its_code(channel_client, fake_twilio):
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    fake_twilio.fail_next(
        1, 400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
    )
    await sms.say("hello")
    await fake_twilio.wait_for(1)
    text = await scrape(channel_client)
    assert value(text, "shop_outbox_sends_total", channel="sms", result="failed", code="21610") == 1
    assert value(text, "shop_outbox_sends_total", channel="sms", result="sent") == 0
    assert NUMBER[1:] not in text


async def test_a_transient_failure_counts_as_retried_then_sent(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    fake_twilio.fail_next(1, 500, {"code": 20500, "message": "try later", "status": 500})
    assert (await wa.post(twilio_form("whatsapp", NUMBER, "hello"))).status == 200
    await fake_twilio.wait_for(2)
    await wa.replies()
    text = await scrape(channel_client)
    assert value(text, "shop_outbox_sends_total", channel="whatsapp", result="retried", code="20500") == 1
    assert value(text, "shop_outbox_sends_total", channel="whatsapp", result="sent") == 1


async def test_webhook_answers_are_counted_with_their_status(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    assert (await wa.post(twilio_form("whatsapp", NUMBER, "hi"), signature="wrong")).status == 403
    assert (await wa.post(twilio_form("whatsapp", NUMBER, "hi"))).status == 200
    await wa.replies()
    text = await scrape(channel_client)
    assert value(text, "shop_webhook_acks_total", channel="whatsapp", status="403") == 1
    assert value(text, "shop_webhook_acks_total", channel="whatsapp", status="200") == 1
    assert value(text, "shop_webhook_ack_latency_seconds_count", channel="whatsapp") == 2


async def test_each_app_counts_on_its_own_registry(client):
    assert client.app[METRICS].registry is not REGISTRY
    assert value(await scrape(client), "shop_turns_total") == 0


async def test_metrics_token_is_required_when_set(aiohttp_client, settings, recognizer):
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    client = await aiohttp_client(create_app(guarded, recognizer))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    assert "shop_turns_total" in await scrape(client, "scrape-me")


async def test_metrics_are_open_without_a_token(client):
    assert "shop_outbox_pending" in await scrape(client)


async def test_a_handoff_is_counted_as_opened_and_handed_to_a_person(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("I want to talk to a real person")
    await wa.say("It's order 1002, thanks")  # a person has the conversation now: no bot turn
    text = await scrape(channel_client)
    assert value(text, "shop_handoffs_opened_total") == 1
    assert value(text, "shop_turns_total", channel="whatsapp", outcome="handed_off") == 2
    assert "1002" not in text
