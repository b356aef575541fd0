"""A fake Stripe API on loopback (Checkout Sessions and their expiry, coupons, refunds, Customers,
payment intents with Radar's outcome on their latest charge) that records every request, honours
Idempotency-Key as Stripe does and can be down for a while; and a helper that signs a webhook body
exactly as Stripe does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from uuid import uuid4

from aiohttp import web

from bot.config import Settings
from tests.fakes.providers import FakeProvider

SECRET_KEY = "sk_test_fake"
WEBHOOK_SECRET = "whsec_test_fake"


def with_stripe(settings: Settings, fake: FakeStripe, **more: Any) -> Settings:
    """The settings with PAYMENTS=stripe against this fake (and any more changes), validated."""
    changes = {
        "payments": "stripe",
        "stripe_secret_key": SECRET_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": fake.url,
        **more,
    }
    return Settings(_env_file=None, **{**settings.model_dump(), **changes})


def stripe_signature(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header of this body: `t={time},v1={hex HMAC-SHA256(secret, "{t}.{body}")}`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event_body(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    """A Stripe event as it arrives at a webhook."""
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid4().hex[:24]}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2026-11-17",
            "data": {"object": obj},
        }
    ).encode()


class FakeStripe(FakeProvider):
    """`POST /v1/checkout/sessions`, `/v1/coupons`, `/v1/refunds`, `/v1/customers`, and
    `GET /v1/payment_intents/{id}` (its `latest_charge` an id, or the charge with Radar's
    `outcome` when `expand[]=latest_charge`). Each request is recorded as `{"path", "form" (the
    form-encoded fields as sent, or the query of a GET), "headers", "status"}`; a repeated
    Idempotency-Key gets the first answer again, and creates nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self._answers: dict[str, tuple[int, dict[str, Any]]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/checkout/sessions", self.create_session)
        app.router.add_post("/v1/coupons", self.create_coupon)
        app.router.add_post("/v1/refunds", self.create_refund)
        app.router.add_post("/v1/customers", self.create_customer)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self.expire_session)
        app.router.add_get("/v1/payment_intents/{id}", self.get_intent)

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    async def _handle(self, request: web.Request, create) -> web.Response:
        form = {k: v for k, v in (await request.post()).items()} if request.method == "POST" else dict(request.query)
        record = {"path": request.path, "form": form, "headers": dict(request.headers), "status": None}
        self.requests.append(record)
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            record["status"] = 401
            return web.json_response({"error": {"type": "invalid_request_error", "message": "bad key"}}, status=401)
        failure = await self._gate()
        if failure is not None:
            record["status"] = failure.status
            return web.json_response({"error": {"type": "api_error", "message": "fake outage"}}, status=failure.status)
        key = request.headers.get("Idempotency-Key")
        if key and key in self._answers:
            status, body = self._answers[key]
            record["status"] = status
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        body = create(form)
        if key:
            self._answers[key] = (200, body)
        record["status"] = 200
        return web.json_response(body)

    async def create_session(self, request: web.Request) -> web.Response:
        def create(form: dict[str, Any]) -> dict[str, Any]:
            session_id = f"cs_test_{uuid4().hex}"
            session = {
                "id": session_id,
                "object": "checkout.session",
                "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                "mode": form.get("mode"),
                "status": "open",
                "payment_status": "unpaid",
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {"order_number": form.get("metadata[order_number]")},
                "customer": form.get("customer"),
                "currency": form.get("line_items[0][price_data][currency]"),
                "expires_at": int(form.get("expires_at", 0)),
            }
            self.sessions[session_id] = session
            return session

        return await self._handle(request, create)

    async def expire_session(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]

        def expire(form: dict[str, Any]) -> dict[str, Any]:
            session = self.sessions[session_id]
            session["status"] = "expired"
            return session

        if session_id not in self.sessions:
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "No such session"}}, status=404
            )
        return await self._handle(request, expire)

    async def create_coupon(self, request: web.Request) -> web.Response:
        return await self._handle(
            request,
            lambda form: {
                "id": f"coupon_{uuid4().hex[:12]}",
                "object": "coupon",
                "amount_off": int(form["amount_off"]),
                "currency": form.get("currency"),
                "duration": form.get("duration"),
                "name": form.get("name"),
            },
        )

    async def create_refund(self, request: web.Request) -> web.Response:
        def create(form: dict[str, Any]) -> dict[str, Any]:
            refund = {
                "id": f"re_{uuid4().hex[:16]}",
                "object": "refund",
                "status": "succeeded",
                "payment_intent": form.get("payment_intent"),
            }
            self.refunds.append(refund)
            return refund

        return await self._handle(request, create)

    async def create_customer(self, request: web.Request) -> web.Response:
        def create(form: dict[str, Any]) -> dict[str, Any]:
            customer = {
                "id": f"cus_{uuid4().hex[:14]}",
                "object": "customer",
                "email": form.get("email"),
                "metadata": {"customer_id": form.get("metadata[customer_id]")},
            }
            self.customers[customer["id"]] = customer
            return customer

        return await self._handle(request, create)

    async def get_intent(self, request: web.Request) -> web.Response:
        intent_id = request.match_info["id"]
        if intent_id not in self.intents:
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "No such payment_intent"}}, status=404
            )

        def read(query: dict[str, Any]) -> dict[str, Any]:
            intent = dict(self.intents[intent_id])
            expanded = any(k.startswith("expand") and v == "latest_charge" for k, v in query.items())
            if not expanded:
                intent["latest_charge"] = intent["latest_charge"]["id"]
            return intent

        return await self._handle(request, read)

    def completed(
        self,
        session_id: str,
        amount_total: int,
        currency: str = "usd",
        payment_intent: str | None = None,
        risk_level: str = "normal",
        risk_score: int = 12,
    ) -> dict[str, Any]:
        """The session object of `checkout.session.completed` for one this fake created; its
        payment intent is kept, with a charge whose Radar outcome has this risk."""
        intent_id = payment_intent or f"pi_{uuid4().hex[:16]}"
        review = risk_level in ("elevated", "highest")
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "status": "succeeded",
            "amount": amount_total,
            "currency": currency,
            "latest_charge": {
                "id": f"ch_{uuid4().hex[:16]}",
                "object": "charge",
                "payment_intent": intent_id,
                "outcome": {
                    "type": "manual_review" if review else "authorized",
                    "network_status": "approved_by_network",
                    "reason": f"{risk_level}_risk_level" if review else None,
                    "risk_level": risk_level,
                    "risk_score": risk_score,
                    "seller_message": "Payment complete.",
                },
            },
        }
        return {
            **self.sessions[session_id],
            "status": "complete",
            "payment_status": "paid",
            "amount_total": amount_total,
            "currency": currency,
            "payment_intent": intent_id,
        }
