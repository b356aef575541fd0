"""Fake provider APIs as real aiohttp servers on loopback: they record what they receive and
can be told to fail or be slow. The app reaches them through TWILIO_API_BASE / GRAPH_API_BASE."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator


@dataclass
class Failure:
    status: int
    body: dict[str, Any]


@dataclass
class FakeProvider:
    requests: list[dict[str, Any]] = field(default_factory=list)
    lookups: list[dict[str, Any]] = field(default_factory=list)  # reads of what was sent (in-doubt checks)
    failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0
    server: TestServer | None = None
    down_until: float = 0.0  # an outage: every request is refused until this (monotonic) time
    down_status: int = 503

    slow_for: dict[str, float] = field(default_factory=dict)  # recipient -> extra seconds per request
    lost_answers: int = 0  # the next creates are taken, but answered only after `lost_answer_delay`
    lost_answer_delay: float = 0.0
    made_then_failed: int = 0  # the next creates are made, then answered 500 ...
    down_after_making: float = 0.0  # ... and an outage of this many seconds follows

    def lose_answers(self, count: int, delay: float) -> None:
        """Take the next `count` messages and answer each only after `delay` seconds: a caller
        that gives up sooner cannot tell whether they were sent."""
        self.lost_answers, self.lost_answer_delay = count, delay

    def fail_after_making(self, count: int, then_down: float = 0.0) -> None:
        """Make the next `count` orders (or drafts), then answer 500: the caller cannot tell
        whether they were made; with `then_down`, an outage of that many seconds follows."""
        self.made_then_failed, self.down_after_making = count, then_down

    def _made_then_fail(self) -> web.Response | None:
        if self.made_then_failed:
            self.made_then_failed -= 1
            if self.down_after_making:
                self.fail_for(self.down_after_making)
            return web.json_response({"message": "Internal Server Error"}, status=500)
        return None

    def fail_next(self, count: int, status: int = 500, body: dict[str, Any] | None = None) -> None:
        self.failures.extend(Failure(status, body or {"message": "fake failure"}) for _ in range(count))

    def slow(self, recipient: str, seconds: float) -> None:
        """Requests for this one recipient take `seconds` longer (a slow carrier or device)."""
        self.slow_for[recipient] = seconds

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """An outage: refuse every request for `seconds` from now."""
        self.down_until, self.down_status = time.monotonic() + seconds, status

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> FakeProvider:
        app = web.Application()
        self.routes(app)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        await self.server.close()

    async def _gate(self) -> web.Response | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if time.monotonic() < self.down_until:
            return web.json_response(
                {"message": "Service Unavailable", "status": self.down_status}, status=self.down_status
            )
        if self.failures:
            failure = self.failures.pop(0)
            return web.json_response(failure.body, status=failure.status)
        return None

    async def _slow(self, recipient: str | None) -> None:
        if seconds := self.slow_for.get(recipient):
            await asyncio.sleep(seconds)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def wait_for(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        for _ in range(int(timeout / 0.02)):
            if len(self.requests) >= count:
                return self.requests
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}: {self.requests}")


PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_]{1,16})\}\}")
# The Content API's limits as Twilio's docs give them (twilio.com/docs/content: twilio-quick-reply,
# twiliolist-picker, twiliocard, twilio-call-to-action, using-variables-with-content-api), and
# WhatsApp's for a message sent in session without approval (3 buttons).
CONTENT_LIMITS = {
    "body": 1024,
    "variable": 255,
    "variables": 100,
    "button_title": 20,
    "id": 200,
    "list_button": 20,
    "item": 24,
    "description": 72,
    "items": 10,
    "card_title": 1024,
    "card_subtitle": 60,
    "session_buttons": 3,
    "template_buttons": 10,
}


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """`value` (a string, list or dict of them) with its placeholders filled in."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def content_problems(types: Any, variables: dict[str, str], in_session: bool = False) -> list[str]:
    """What Twilio (or WhatsApp, for `in_session` sends) would refuse in these Content `types`
    once `variables` are filled in. Empty: acceptable."""
    limits = CONTENT_LIMITS
    problems: list[str] = []
    if len(variables) > limits["variables"]:
        problems.append("more than 100 variables")
    for key, value in variables.items():
        if len(key) > 16 or not isinstance(value, str) or len(value) > limits["variable"]:
            problems.append(f"variable {key} is not a string of at most 255 characters")
    if not isinstance(types, dict) or not types:
        return [*problems, "types must name at least one content type"]
    filled = substitute(types, variables)
    max_buttons = limits["session_buttons"] if in_session else limits["template_buttons"]

    def text(where: str, value: Any, limit: int, required: bool = True) -> None:
        if value is None and not required:
            return
        if not isinstance(value, str) or (required and not value.strip()):
            problems.append(f"{where} is required")
        elif PLACEHOLDER.search(value):
            problems.append(f"{where} has a variable without a value")
        elif len(value) > limit:
            problems.append(f"{where} is longer than {limit} characters")

    def url(where: str, template: Any, value: Any) -> None:
        if not isinstance(template, str) or not isinstance(value, str):
            problems.append(f"{where} is required")
            return
        host = template.split("//", 1)[-1].split("/", 1)[0]
        if not template.startswith(("https://", "http://")) or PLACEHOLDER.search(host):
            problems.append(f"{where} must start with a static http(s) host")
        if PLACEHOLDER.search(value) or not value.split("//", 1)[-1].partition("/")[2]:
            problems.append(f"{where} lacks its path")

    def buttons(where: str, actions: Any, template: Any, allowed: set[str]) -> None:
        if not isinstance(actions, list) or not 1 <= len(actions) <= max_buttons:
            problems.append(f"{where} must have 1 to {max_buttons} actions")
            return
        titles = []
        for i, action in enumerate(actions):
            kind = action.get("type", "QUICK_REPLY") if isinstance(action, dict) else None
            if kind not in allowed:
                problems.append(f"{where}[{i}] has type {kind!r}")
                continue
            text(f"{where}[{i}].title", action.get("title"), limits["button_title"])
            titles.append(action.get("title"))
            if kind == "QUICK_REPLY":
                text(f"{where}[{i}].id", action.get("id"), limits["id"])
            if kind == "URL":
                url(f"{where}[{i}].url", template[i].get("url"), action.get("url"))
        if len(set(titles)) != len(titles):
            problems.append(f"{where} titles must be unique")

    for kind, spec in filled.items():
        template = types[kind]
        if not isinstance(spec, dict):
            problems.append(f"{kind} must be an object")
            continue
        if kind == "twilio/quick-reply":
            text(f"{kind}.body", spec.get("body"), limits["body"])
            buttons(f"{kind}.actions", spec.get("actions"), template.get("actions"), {"QUICK_REPLY"})
        elif kind == "twilio/list-picker":
            text(f"{kind}.body", spec.get("body"), limits["body"])
            text(f"{kind}.button", spec.get("button"), limits["list_button"])
            items = spec.get("items")
            if not isinstance(items, list) or not 1 <= len(items) <= limits["items"]:
                problems.append(f"{kind}.items must have 1 to 10 items")
                continue
            for i, item in enumerate(items):
                text(f"{kind}.items[{i}].item", item.get("item"), limits["item"])
                text(f"{kind}.items[{i}].id", item.get("id"), limits["id"])
                text(f"{kind}.items[{i}].description", item.get("description"), limits["description"])
            ids = [item.get("id") for item in items]
            if len(set(ids)) != len(ids):
                problems.append(f"{kind}.items ids must be unique")
        elif kind == "twilio/card":
            text(f"{kind}.title", spec.get("title"), limits["card_title"], required=False)
            text(f"{kind}.subtitle", spec.get("subtitle"), limits["card_subtitle"], required=False)
            fields = [f for f in ("title", "body", "subtitle", "media", "actions") if spec.get(f)]
            if not ({"title", "body"} & set(fields)) or len(fields) < 2:
                problems.append(f"{kind} needs a title or body and one more field")
            for i, media in enumerate(spec.get("media") or []):
                url(f"{kind}.media[{i}]", template["media"][i], media)
            if spec.get("actions") is not None:
                buttons(f"{kind}.actions", spec["actions"], template.get("actions"), {"QUICK_REPLY", "URL"})
        elif kind == "twilio/call-to-action":
            text(f"{kind}.body", spec.get("body"), limits["body"])
            buttons(f"{kind}.actions", spec.get("actions"), template.get("actions"), {"URL", "PHONE_NUMBER"})
        elif kind not in ("twilio/text", "twilio/media"):
            problems.append(f"unknown content type {kind}")
    return problems


def shown(types: dict[str, Any], variables: dict[str, str]) -> str:
    """What the shopper sees of a Content message, as text: its body or card, then a line per
    button (`[title]`), list row (`title: description`) or link (`[title](url)`)."""
    lines: list[str] = []
    for spec in substitute(types, variables).values():
        lines += [spec[f] for f in ("title", "body", "subtitle") if spec.get(f)]
        lines += [f"(picture {m})" for m in spec.get("media") or []]
        for action in spec.get("actions") or []:
            lines.append(f"[{action['title']}]({action['url']})" if action.get("url") else f"[{action['title']}]")
        if spec.get("button"):
            lines.append(f"<{spec['button']}>")
        lines += [f"{item['item']}: {item['description']}" for item in spec.get("items") or []]
    return "\n".join(lines)


@dataclass
class FakeTwilio(FakeProvider):
    """The Messages resource of Twilio's REST API, and the Content API's Content resource."""

    account_sid = "AC" + "1" * 32
    auth_token = "test-auth-token"
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)  # HX... -> what was created
    content_requests: list[dict[str, Any]] = field(default_factory=list)  # every create, refused too
    content_failures: list[Failure] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create_message)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", self.list_messages)
        app.router.add_post("/v1/Content", self.create_content)

    def fail_content(self, count: int, status: int = 500) -> None:
        """Refuse the next `count` Content creates."""
        self.content_failures.extend(Failure(status, {"code": 20500, "message": "fake failure"}) for _ in range(count))

    async def create_content(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"code": 20001, "message": "invalid JSON", "status": 400}, status=400)
        self.content_requests.append(body)
        if self.content_failures:
            failure = self.content_failures.pop(0)
            return web.json_response(failure.body, status=failure.status)
        problems = []
        if not isinstance(body, dict):
            problems.append("body must be an object")
            body = {}
        for key in ("friendly_name", "language"):
            if not isinstance(body.get(key), str) or not body.get(key):
                problems.append(f"{key} is required")
        samples = body.get("variables") or {}
        types = body.get("types")
        if isinstance(types, dict):
            used = set(PLACEHOLDER.findall(json.dumps(types)))
            if missing := used - set(samples):
                problems.append(f"variables without a sample: {sorted(missing)}")
        problems += content_problems(types, samples)
        if problems:
            return web.json_response({"code": 20001, "message": "; ".join(problems), "status": 400}, status=400)
        sid = "HX" + uuid4().hex
        self.contents[sid] = {"sid": sid, **body}
        return web.json_response({"sid": sid, **body, "account_sid": self.account_sid}, status=201)

    def content_sends(self) -> list[dict[str, Any]]:
        return [r for r in self.delivered() if r["content_sid"]]

    def _authorised(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def create_message(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        form = await request.post()
        content_sid = form.get("ContentSid")
        if content_sid in self.contents:  # one made here: Twilio fills in its variables
            content = self.contents[content_sid]
            try:
                values = json.loads(str(form.get("ContentVariables") or "{}"))
            except ValueError:
                values = None
            if not isinstance(values, dict) or form.get("Body") or form.get("MediaUrl"):
                return web.json_response(
                    {"code": 21656, "message": "ContentVariables invalid", "status": 400}, status=400
                )
            merged = {**content["variables"], **values}
            in_session = str(form.get("To", "")).startswith("whatsapp:")
            if problems := content_problems(content["types"], merged, in_session):
                return web.json_response({"code": 21656, "message": "; ".join(problems), "status": 400}, status=400)
        record = {
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "media": form.getall("MediaUrl", []),
            "status_callback": form.get("StatusCallback"),
            "content_sid": form.get("ContentSid"),
            "content_variables": form.get("ContentVariables"),
            # What the shopper sees of a Content message made here, as text (see `shown`).
            "shown": shown(self.contents[content_sid]["types"], merged) if content_sid in self.contents else None,
            "failed": True,  # until it is answered: a caller that timed out got nothing
            "received": datetime.now(UTC),
        }
        self.requests.append(record)
        await self._slow(form.get("To"))
        failure = await self._gate()
        record["failed"] = failure is not None
        if failure is not None:
            return failure
        sid = "SM" + uuid4().hex
        record["sid"], record["created"] = sid, datetime.now(UTC)
        if self.lost_answers:
            self.lost_answers -= 1
            await asyncio.sleep(self.lost_answer_delay)
        return web.json_response(
            {
                "sid": sid,
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "account_sid": self.account_sid,
            },
            status=201,
        )

    async def list_messages(self, request: web.Request) -> web.Response:
        """Messages created, newest first, filtered by To and From, as Twilio pages them."""
        if not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        to, sender = request.query.get("To"), request.query.get("From")
        size = int(request.query.get("PageSize", 50))
        found = [
            r
            for r in reversed(self.requests)
            if r.get("sid") and (to is None or r["to"] == to) and (sender is None or r["from"] == sender)
        ][:size]
        uri = request.path
        return web.json_response(
            {
                "messages": [
                    {
                        "sid": r["sid"],
                        "to": r["to"],
                        "from": r["from"],
                        "body": r["body"],
                        "status": "sent",
                        "account_sid": self.account_sid,
                        "date_created": format_datetime(r["created"]),
                    }
                    for r in found
                ],
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "page": 0,
                "page_size": size,
                "uri": uri,
            }
        )

    def delivered(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if not r["failed"]]

    def sign(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)


class FakeGraph(FakeProvider):
    """The Messenger Send API of the Graph API, and the Conversations API over what it took."""

    app_secret = "test-app-secret"
    page_token = "test-page-token"
    verify_token = "test-verify-token"
    page_id = "1000000000000001"
    conversations_down: int | None = None  # an HTTP status the Conversations API answers with, if set

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/me/messages", self.send)
        app.router.add_get("/{version}/me/conversations", self.conversations)

    def _authorised(self, request: web.Request) -> bool:
        proof = hmac.new(self.app_secret.encode(), self.page_token.encode(), hashlib.sha256).hexdigest()
        return request.query.get("access_token") == self.page_token and hmac.compare_digest(
            request.query.get("appsecret_proof", ""), proof
        )

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        record = {
            "query": dict(request.query),
            "json": body,
            "version": request.match_info["version"],
            "failed": True,
            "received": datetime.now(UTC),
        }  # failed until it is answered
        self.requests.append(record)
        await self._slow((body.get("recipient") or {}).get("id"))
        failure = await self._gate()
        record["failed"] = failure is not None
        if failure is not None:
            return failure
        if request.query.get("access_token") != self.page_token:
            record["failed"] = True
            return web.json_response({"error": {"message": "Invalid OAuth access token", "code": 190}}, status=400)
        recipient = body["recipient"]["id"]
        if "sender_action" in body:
            return web.json_response({"recipient_id": recipient})
        record["mid"], record["created"] = "m_" + uuid4().hex, datetime.now(UTC)
        if self.lost_answers:  # taken, in the thread, but answered too late for the caller
            self.lost_answers -= 1
            await asyncio.sleep(self.lost_answer_delay)
        return web.json_response({"recipient_id": recipient, "message_id": record["mid"]})

    async def conversations(self, request: web.Request) -> web.Response:
        """The Page's conversation with `user_id`, newest messages first, as the Graph API
        answers `?platform=messenger&user_id=PSID&fields=messages.limit(N){message,created_time,from,id}`."""
        record = {"query": dict(request.query), "lookup": True, "failed": True}
        self.lookups.append(record)
        failure = await self._gate()
        if failure is not None:
            return failure
        if self.conversations_down:
            return web.json_response(
                {"error": {"message": "An unexpected error has occurred.", "code": 2}}, status=self.conversations_down
            )
        if not self._authorised(request):
            return web.json_response({"error": {"message": "Invalid OAuth access token", "code": 190}}, status=400)
        fields = re.fullmatch(r"messages\.limit\((\d+)\)\{([a-z_,]+)\}", request.query.get("fields", ""))
        if request.query.get("platform") != "messenger" or not request.query.get("user_id") or fields is None:
            return web.json_response({"error": {"message": "Invalid parameter", "code": 100}}, status=400)
        record["failed"] = False
        psid, limit = request.query["user_id"], int(fields.group(1))
        taken = [r for r in reversed(self.requests) if r.get("mid") and r["json"]["recipient"]["id"] == psid]
        if not taken:
            return web.json_response({"data": []})
        messages = [
            {
                "id": r["mid"],
                "message": r["json"]["message"].get("text", ""),
                "created_time": r["created"].strftime("%Y-%m-%dT%H:%M:%S+0000"),
                "from": {"id": self.page_id, "name": "Northwind Outfitters"},
            }
            for r in taken[:limit]
        ]
        return web.json_response({"data": [{"id": "t_" + psid, "messages": {"data": messages}}]})

    def messages(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.requests if "message" in r["json"] and not r["failed"]]

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_form(channel: str, number: str, text: str, sid: str | None = None, **extra: str) -> dict[str, str]:
    prefix = "whatsapp:" if channel == "whatsapp" else ""
    form = {
        "MessageSid": sid or "SM" + uuid4().hex,
        "AccountSid": FakeTwilio.account_sid,
        "From": prefix + number,
        "To": prefix + "+15550001111",
        "Body": text,
        "NumMedia": "0",
    }
    form.update(extra)
    return form


def messenger_body(*events: dict[str, Any], entries: int = 1) -> bytes:
    per = max(1, len(events) // entries)
    chunks = [events[i : i + per] for i in range(0, len(events), per)] or [()]
    return json.dumps(
        {"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": list(chunk)} for chunk in chunks]}
    ).encode()


def encode_form(form: dict[str, str]) -> bytes:
    return urlencode(form).encode()


class FakeWhatsAppCloud(FakeProvider):
    """The WhatsApp Cloud API's `POST /{version}/{phone-number-id}/messages` (bearer token)."""

    token = "test-cloud-token"
    app_secret = "test-cloud-app-secret"
    verify_token = "test-cloud-verify-token"
    phone_number_id = "109000000000001"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{phone_number_id}/messages", self.send)

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        record = {
            "json": body,
            "version": request.match_info["version"],
            "phone_number_id": request.match_info["phone_number_id"],
            "authorization": request.headers.get("Authorization"),
            "failed": True,
            "received": datetime.now(UTC),
        }  # failed until it is answered
        self.requests.append(record)
        await self._slow(body.get("to") or body.get("recipient"))
        failure = await self._gate()
        record["failed"] = failure is not None
        if failure is not None:
            return failure
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            record["failed"] = True
            return web.json_response(
                {"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}}, status=401
            )
        if body.get("messaging_product") != "whatsapp" or not (body.get("to") or body.get("recipient")):
            record["failed"] = True
            return web.json_response({"error": {"message": "Invalid parameter", "code": 100}}, status=400)
        record["wamid"] = "wamid." + uuid4().hex
        if self.lost_answers:
            self.lost_answers -= 1
            await asyncio.sleep(self.lost_answer_delay)
        contact = {"input": body.get("to") or body.get("recipient"), "wa_id": body.get("to") or ""}
        return web.json_response(
            {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": record["wamid"]}]}
        )

    def fail_with(self, code: int, status: int = 400, count: int = 1, message: str = "fake failure") -> None:
        """The next `count` sends are refused with this Graph API error code."""
        self.fail_next(
            count,
            status,
            {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Afake"}},
        )

    def messages(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.requests if not r["failed"]]

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()


def cloud_body(*values: dict[str, Any], phone_number_id: str = FakeWhatsAppCloud.phone_number_id) -> bytes:
    """A WhatsApp Business Account webhook with one change per value (`messages`, `contacts`,
    `statuses`), for our phone number."""
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "WABA_ID",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550002222", "phone_number_id": phone_number_id},
                                **value,
                            },
                        }
                        for value in values
                    ],
                }
            ],
        }
    ).encode()
