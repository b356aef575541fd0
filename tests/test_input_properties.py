"""Property-based: whatever a provider or an outsider sends to a webhook (Twilio inbound and status,
Messenger, the WhatsApp Cloud API) or to the web chat API, correctly signed or not, the answer is below 500 and the store
holds no partial record. Bodies are random, or valid ones mutated and then signed again."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from bot.store.models import ChannelIdentity, Customer, MessageRecord
from service.app import DB
from tests.fakes.phone import BASE
from tests.fakes.providers import FakeGraph, FakeTwilio, FakeWhatsAppCloud, twilio_form
from tests.fakes.web_shopper import WebShopper

# Few enough that every target runs in seconds; each example is a real request to the real app.
EXAMPLES = 60
# Hypothesis favours edge values (an unsigned request, a malformed body) but some of each run's
# requests must still reach the store, or the property says nothing about stored records.
ANSWERED = EXAMPLES // 12
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any code point, lone surrogates and controls included, and the characters that trouble parsers.
wild_text = st.text(st.characters(blacklist_categories=()), max_size=40) | st.sampled_from(
    [
        "",
        "\x00",
        "\ud800",
        "%00",
        "9" * 40,
        "-1",
        "1e999",
        "whatsapp:",
        "whatsapp:+14155550100",
        "+14155550100",
        "ｗｈａｔｓａｐｐ:+1",
        "\u202e",
        "👋你好",
        " " * 5,
        "a" * 5000,
    ]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | wild_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(wild_text, inner, max_size=3),
    max_leaves=12,
)
raw_bodies = st.binary(max_size=300) | st.sampled_from(
    [b"", b"[" * 5000, b"{" * 3000, b'{"a":' * 2000, b"\xff\xfe", b"%ff=%00", b"=&=&&", b"a=" + b"%" * 50]
)

TWILIO_KEYS = [
    "MessageSid",
    "SmsSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "Latitude",
    "Longitude",
    "Address",
    "Label",
    "ButtonText",
    "ButtonPayload",
    "ProfileName",
    "WaId",
]
STATUS_KEYS = ["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "From", "To"]


def mutations(keys: list[str]):
    """A list of edits to a form: set a key (known or not) to any text, or drop it."""
    key = st.sampled_from(keys) | wild_text
    return st.lists(st.tuples(key, st.none() | wild_text), max_size=4)


def mutate(form: dict[str, str], edits: list[tuple[str, str | None]]) -> dict[str, str]:
    form = dict(form)
    for key, value in edits:
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form


def form_body(form: dict[str, str]) -> bytes:
    # Lone surrogates cannot be UTF-8; a sender's encoder would pass them through as they are.
    return urlencode(form, encoding="utf-8", errors="surrogatepass").encode()


def twilio_signature(path: str, body: bytes) -> str:
    """Sign the parameters as the server will read them, so a mutated form is a validly signed one."""
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return FakeTwilio().sign(BASE + path, params)


def messenger_event(psid: str) -> st.SearchStrategy[dict[str, Any]]:
    kinds = st.sampled_from(["message", "postback", "referral", "delivery", "read", "optin"])
    good = st.fixed_dictionaries(
        {"mid": st.text("abc123", min_size=1, max_size=8).map(lambda s: "m_" + s), "text": wild_text}
    )
    sub = (
        json_values
        | good
        | st.dictionaries(
            st.sampled_from(
                [
                    "mid",
                    "text",
                    "quick_reply",
                    "attachments",
                    "is_echo",
                    "payload",
                    "title",
                    "referral",
                    "ref",
                    "watermark",
                ]
            ),
            json_values,
            max_size=4,
        )
    )
    return st.builds(
        lambda kind, body, sender, stamp, keep: {
            "sender": {"id": psid if keep else sender},
            "recipient": {"id": "PAGE"},
            "timestamp": 1764000000000 if keep else stamp,
            kind: body,
        },
        kinds,
        sub,
        json_values,
        json_values,
        st.booleans(),
    )


def cloud_message(wa_id: str) -> st.SearchStrategy[dict[str, Any]]:
    kinds = st.sampled_from(["text", "interactive", "button", "image", "document", "location", "system", "order"])
    sub = json_values | st.dictionaries(
        st.sampled_from(
            [
                "body",
                "id",
                "title",
                "type",
                "button_reply",
                "list_reply",
                "payload",
                "text",
                "mime_type",
                "caption",
                "latitude",
                "longitude",
                "name",
                "address",
            ]
        ),
        json_values,
        max_size=4,
    )
    sender = st.sampled_from(
        [{"from": wa_id}, {"from_user_id": "US." + wa_id}, {"from": wa_id, "from_user_id": "US.1"}, {}]
    ) | st.dictionaries(st.sampled_from(["from", "from_user_id"]), json_values, max_size=2)
    return st.builds(
        lambda kind, body, who, mid, context: {
            "id": mid,
            "timestamp": "1764000000",
            "type": kind,
            kind: body,
            **who,
            **({"context": context} if context is not None else {}),
        },
        kinds,
        sub,
        sender,
        st.text("abc123", min_size=1, max_size=8).map(lambda s: "wamid." + s) | json_values,
        st.none() | json_values,
    )


async def snapshot(client) -> tuple[int, int, int]:
    def counts(session) -> tuple[int, int, int]:
        return tuple(
            session.exec(select(func.count()).select_from(table)).one()
            for table in (MessageRecord, Customer, ChannelIdentity)
        )

    return await client.app[DB].run(counts)


async def partial_records(client) -> list[str]:
    """Inbound records that are not whole: no address or id, a missing customer, or text a store
    should not have been given."""

    def find(session) -> list[str]:
        rows = session.exec(select(MessageRecord).where(MessageRecord.direction == "in")).all()
        problems = []
        for row in rows:
            text = row.text or ""
            if not row.address or not row.provider_message_id or session.get(Customer, row.customer_id) is None:
                problems.append(f"incomplete record {row.id}")
            if any(ord(c) < 32 and c not in "\t\n" or 0xD800 <= ord(c) <= 0xDFFF for c in text):
                problems.append(f"uncleaned text in record {row.id}: {text!r}")
        return problems

    return await client.app[DB].run(find)


class Driver:
    """Runs hypothesis in a thread and each request on the test's event loop, where the app runs."""

    def __init__(self, client) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.answers: dict[int, int] = {}

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        return self.request("POST", path, data=body, headers=headers)

    def request(self, method: str, path: str, **kwargs) -> int:
        async def go() -> tuple[int, tuple[int, int, int], tuple[int, int, int], str]:
            before = await snapshot(self.client)
            resp = await self.client.request(method, path, **kwargs)
            answer = await resp.text()
            return resp.status, before, await snapshot(self.client), answer

        status, before, after, answer = self.call(go())
        assert status < 500, (status, path, answer)
        if status >= 400:  # refused: nothing of it may be left behind (replies to earlier ones may be)
            assert after[1:] == before[1:], (path, status, answer)
        self.answers[status] = self.answers.get(status, 0) + 1
        return status

    async def check_store(self) -> None:
        """On the test's loop, once hypothesis is done."""
        assert await partial_records(self.client) == []


def no_errors_logged(caplog) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


async def test_twilio_inbound_webhooks(channel_client, caplog):
    driver = Driver(channel_client)

    @PROPERTY
    @given(
        channel=st.sampled_from(["whatsapp", "sms"]),
        number=st.sampled_from(["+14155550100", "+14155550101"]),
        text=wild_text,
        edits=mutations(TWILIO_KEYS),
        raw=st.none() | raw_bodies,
        signed=st.integers(0, 9),
    )
    def run(channel, number, text, edits, raw, signed):
        path = f"/webhooks/twilio/{channel}"
        body = raw if raw is not None else form_body(mutate(twilio_form(channel, number, text), edits))
        signature = twilio_signature(path, body) if signed else "bm90IGEgc2lnbmF0dXJl"
        driver.post(path, body, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})

    await asyncio.to_thread(run)
    await driver.check_store()
    assert driver.answers.get(200, 0) >= ANSWERED, driver.answers  # the mutations still reach the store
    no_errors_logged(caplog)


async def test_twilio_status_callbacks(channel_client, caplog):
    driver = Driver(channel_client)
    base = {
        "MessageSid": "SM" + "0" * 32,
        "MessageStatus": "delivered",
        "From": "whatsapp:+15550001111",
        "To": "whatsapp:+14155550100",
        "ErrorCode": "63016",
    }

    @PROPERTY
    @given(edits=mutations(STATUS_KEYS), raw=st.none() | raw_bodies, signed=st.integers(0, 9))
    def run(edits, raw, signed):
        path = "/webhooks/twilio/status"
        body = raw if raw is not None else form_body(mutate(base, edits))
        signature = twilio_signature(path, body) if signed else ""
        driver.post(path, body, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})

    await asyncio.to_thread(run)
    await driver.check_store()
    no_errors_logged(caplog)


async def test_messenger_webhooks(channel_client, caplog):
    driver = Driver(channel_client)
    entry = st.fixed_dictionaries(
        {
            "id": st.just("PAGE"),
            "time": st.just(1),
            "messaging": st.lists(messenger_event("8100") | messenger_event("8101"), max_size=4),
        }
    )
    page = st.fixed_dictionaries({"object": st.just("page"), "entry": st.lists(entry | json_values, max_size=3)})

    @PROPERTY
    @given(body=page | json_values, raw=st.none() | raw_bodies, signed=st.integers(0, 9))
    def run(body, raw, signed):
        data = raw if raw is not None else json.dumps(body).encode()  # lone surrogates as \\ud800 escapes
        signature = FakeGraph().sign(data) if signed else "sha256=" + "0" * 64
        driver.post("/webhooks/messenger", data, {"Content-Type": "application/json", "X-Hub-Signature-256": signature})

    await asyncio.to_thread(run)
    await driver.check_store()
    assert driver.answers.get(200, 0) >= ANSWERED, driver.answers
    no_errors_logged(caplog)


async def test_whatsapp_cloud_webhooks(cloud_client, caplog):
    driver = Driver(cloud_client)
    contact = st.fixed_dictionaries(
        {
            "wa_id": st.sampled_from(["14155550181", "x"]) | json_values,
            "profile": json_values | st.fixed_dictionaries({"name": wild_text}),
        }
    )
    status = st.dictionaries(
        st.sampled_from(["id", "status", "recipient_id", "recipient_user_id", "errors"]), json_values, max_size=5
    )
    value = st.fixed_dictionaries(
        {
            "metadata": st.just({"phone_number_id": FakeWhatsAppCloud.phone_number_id}) | json_values,
            "contacts": st.lists(contact | json_values, max_size=2),
            "messages": st.lists(cloud_message("14155550181") | cloud_message("14155550182"), max_size=3),
            "statuses": st.lists(status, max_size=2),
        }
    )
    change = st.fixed_dictionaries({"field": st.just("messages") | json_values, "value": value | json_values})
    entry = st.fixed_dictionaries({"id": st.just("WABA"), "changes": st.lists(change | json_values, max_size=2)})
    account = st.fixed_dictionaries(
        {"object": st.just("whatsapp_business_account"), "entry": st.lists(entry | json_values, max_size=2)}
    )

    @PROPERTY
    @given(body=account | json_values, raw=st.none() | raw_bodies, unsigned=st.integers(0, 9))
    def run(body, raw, unsigned):
        data = raw if raw is not None else json.dumps(body).encode()
        signature = "sha256=" + "0" * 64 if unsigned == 5 else FakeWhatsAppCloud().sign(data)
        driver.post(
            "/webhooks/whatsapp-cloud", data, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        )

    await asyncio.to_thread(run)
    await driver.check_store()
    assert driver.answers.get(200, 0) >= ANSWERED, driver.answers
    no_errors_logged(caplog)


async def test_web_chat_api(client, caplog):
    driver = Driver(client)
    shopper = await WebShopper.start(client)
    message = st.fixed_dictionaries(
        {
            "id": st.text("abcXYZ019_-", min_size=1, max_size=10) | json_values,
            "text": st.sampled_from(["hi", "view cart", "👋你好"]) | wild_text | json_values,
        }
    )

    @PROPERTY
    @given(
        path=st.sampled_from(["/api/web/messages", "/api/web/link"]),
        body=message | json_values,
        raw=st.none() | raw_bodies,
        after=st.integers(0, 2**70).map(str) | wild_text,
        authorised=st.integers(0, 9),
    )
    def run(path, body, raw, after, authorised):
        headers = {
            **(shopper.headers if authorised else {"Authorization": "Bearer x.1.y"}),
            "Content-Type": "application/json",
        }
        data = raw if raw is not None else json.dumps(body).encode()
        driver.post(path, data, headers)
        query = quote(after, safe="", encoding="utf-8", errors="surrogatepass")
        driver.request("GET", "/api/web/messages?after=" + query, headers=headers)

    await asyncio.to_thread(run)
    await driver.check_store()
    assert driver.answers.get(200, 0) >= ANSWERED, driver.answers
    no_errors_logged(caplog)
