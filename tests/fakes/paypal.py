"""A fake PayPal REST API on loopback: the OAuth2 token, Orders v2 (create, get, capture), capture
refunds and webhook verification. It records every request, honours PayPal-Request-Id as PayPal
does (the same id gets the first answer again, and acts once), can be down, and verifies only
the webhook events it signed itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from aiohttp import web

from tests.fakes.providers import FakeProvider

CLIENT_ID = "fake-paypal-client-id"
CLIENT_SECRET = "fake-paypal-client-secret"
WEBHOOK_ID = "WH-FAKE-0123456789"
_SIGNING_KEY = b"fake paypal signing key"  # stands in for PayPal's private key


def _error(status: int, name: str, issue: str | None = None) -> web.Response:
    body: dict[str, Any] = {"name": name, "message": name.replace("_", " ").lower(), "debug_id": uuid4().hex[:13]}
    if issue:
        body["details"] = [{"issue": issue, "description": issue.replace("_", " ").lower()}]
    return web.json_response(body, status=status)


def _pid(prefix: str = "") -> str:
    return prefix + secrets.token_hex(9).upper()[:17]


class FakePayPal(FakeProvider):
    """Each request is recorded as `{"method", "path", "json", "headers", "status"}`."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.declining: set[str] = set()  # orders whose next capture is INSTRUMENT_DECLINED
        self._answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._signed: dict[str, tuple[str, dict[str, Any]]] = {}  # transmission id -> (signature, event)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/oauth2/token", self.token)
        app.router.add_post("/v2/checkout/orders", self.create_order)
        app.router.add_get("/v2/checkout/orders/{id}", self.get_order)
        app.router.add_post("/v2/checkout/orders/{id}/capture", self.capture)
        app.router.add_post("/v2/payments/captures/{id}/refund", self.refund)
        app.router.add_post("/v1/notifications/verify-webhook-signature", self.verify)
        app.router.add_get("/checkoutnow", self.payer_page)
        app.router.add_post("/checkoutnow", self.payer_approves)

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw and request.content_type == "application/json" else None
        except ValueError:
            body = None
        record = {
            "method": request.method,
            "path": request.path,
            "json": body,
            "form": dict(await request.post()) if request.content_type.endswith("urlencoded") else None,
            "headers": dict(request.headers),
            "status": None,
        }
        self.requests.append(record)
        return record

    async def _handle(self, request: web.Request, act) -> web.Response:
        """Authenticate, maybe fail, replay an answer given for this PayPal-Request-Id, else act."""
        record = await self._record(request)
        failure = await self._gate()
        if failure is not None:
            record["status"] = failure.status
            return failure
        auth = request.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") and auth[7:] in self.tokens):
            record["status"] = 401
            return _error(401, "AUTHENTICATION_FAILURE")
        key = request.headers.get("PayPal-Request-Id")
        if key and (request.path, key) in self._answers:
            status, body = self._answers[(request.path, key)]
            record["status"] = status
            return web.json_response(body, status=status)
        answer: web.Response = act(record["json"] or {})
        record["status"] = answer.status
        if key:
            assert answer.text is not None
            self._answers[(request.path, key)] = (answer.status, json.loads(answer.text))
        return answer

    async def token(self, request: web.Request) -> web.Response:
        record = await self._record(request)
        failure = await self._gate()
        if failure is not None:
            record["status"] = failure.status
            return failure
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected or (record["form"] or {}).get("grant_type") != (
            "client_credentials"
        ):
            record["status"] = 401
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client Authentication failed"}, status=401
            )
        token = "A21AA" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        record["status"] = 200
        return web.json_response(
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-FAKE",
                "expires_in": 32400,
                "nonce": uuid4().hex,
            }
        )

    async def create_order(self, request: web.Request) -> web.Response:
        def create(body: dict[str, Any]) -> web.Response:
            units = body.get("purchase_units") or []
            if body.get("intent") != "CAPTURE" or len(units) != 1:
                return _error(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER")
            unit = units[0]
            amount, parts = unit["amount"], unit["amount"].get("breakdown") or {}
            items = sum(Decimal(i["unit_amount"]["value"]) * int(i["quantity"]) for i in unit.get("items", []))
            if "item_total" in parts and Decimal(parts["item_total"]["value"]) != items:
                return _error(422, "UNPROCESSABLE_ENTITY", "ITEM_TOTAL_MISMATCH")
            total = sum((Decimal(parts[k]["value"]) for k in ("item_total", "shipping") if k in parts), Decimal(0))
            total -= Decimal(parts["discount"]["value"]) if "discount" in parts else Decimal(0)
            if parts and total != Decimal(amount["value"]):
                return _error(422, "UNPROCESSABLE_ENTITY", "AMOUNT_MISMATCH")
            order_id = _pid()
            payer_action = "paypal" in (body.get("payment_source") or {})
            order = {
                "id": order_id,
                "intent": "CAPTURE",
                "status": "PAYER_ACTION_REQUIRED" if payer_action else "CREATED",
                "purchase_units": [{**unit, "payee": {"merchant_id": "FAKEMERCHANT"}}],
                "payment_source": body.get("payment_source") or {},
                "create_time": datetime.now(UTC).isoformat(),
                "links": [
                    {"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
                    {
                        "href": f"{self.url}/checkoutnow?token={order_id}",
                        "rel": "payer-action" if payer_action else "approve",
                        "method": "GET",
                    },
                ],
            }
            self.orders[order_id] = order
            return web.json_response(order, status=201)

        return await self._handle(request, create)

    async def get_order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["id"]
        return await self._handle(
            request,
            lambda body: (
                web.json_response(self.orders[order_id])
                if order_id in self.orders
                else _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
            ),
        )

    async def capture(self, request: web.Request) -> web.Response:
        order_id = request.match_info["id"]

        def capture(body: dict[str, Any]) -> web.Response:
            order = self.orders.get(order_id)
            if order is None:
                return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
            if order["status"] == "COMPLETED":
                return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED")
            if order["status"] != "APPROVED":
                return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
            if order_id in self.declining:
                self.declining.discard(order_id)
                order["status"] = "PAYER_ACTION_REQUIRED"  # the payer must choose another funding source
                return _error(422, "UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED")
            self.capture_now(order_id)
            return web.json_response(order, status=201)

        return await self._handle(request, capture)

    async def refund(self, request: web.Request) -> web.Response:
        capture_id = request.match_info["id"]

        def refund(body: dict[str, Any]) -> web.Response:
            capture = self.capture_by_id(capture_id)
            if capture is None:
                return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
            captured = Decimal(str(capture["amount"]["value"]))
            refunded = sum(Decimal(str(r["amount"]["value"])) for r in self.refunds if r["capture_id"] == capture_id)
            asked = Decimal(str((body.get("amount") or {}).get("value", captured - refunded)))
            if refunded >= captured:
                return _error(422, "UNPROCESSABLE_ENTITY", "CAPTURE_FULLY_REFUNDED")
            if asked <= 0 or refunded + asked > captured:
                return _error(422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED")
            refund_id = _pid("REF")
            refund = {
                "id": refund_id,
                "status": "COMPLETED",
                "amount": body.get("amount") or {**capture["amount"], "value": str(captured - refunded)},
                "invoice_id": body.get("invoice_id"),
                "note_to_payer": body.get("note_to_payer"),
                "links": [
                    {"href": f"{self.url}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
                    {"href": f"{self.url}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
                ],
            }
            self.refunds.append({**refund, "capture_id": capture_id})
            return web.json_response(refund, status=201)

        return await self._handle(request, refund)

    async def verify(self, request: web.Request) -> web.Response:
        def verify(body: dict[str, Any]) -> web.Response:
            fields = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time")
            if not all(isinstance(body.get(f), str) and body[f] for f in fields) or "webhook_event" not in body:
                return _error(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER")
            signed = self._signed.get(body["transmission_id"])
            ok = (
                signed is not None
                and body["webhook_id"] == WEBHOOK_ID
                and hmac.compare_digest(signed[0], body["transmission_sig"])
                and signed[1] == body["webhook_event"]
            )
            return web.json_response({"verification_status": "SUCCESS" if ok else "FAILURE"})

        return await self._handle(request, verify)

    # --- PayPal's page, where the shopper approves ----------------------------------------------

    async def payer_page(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.query.get("token", ""))
        if order is None:
            return web.Response(status=404, text="unknown order")
        amount = order["purchase_units"][0]["amount"]
        return web.Response(
            content_type="text/html",
            text=f"<!doctype html><html><body><h1>Fake PayPal</h1><p id='amount'>{amount['value']} "
            f"{amount['currency_code']}</p><form method='post'><button id='pay-now' type='submit'>Pay Now"
            "</button></form></body></html>",
        )

    async def payer_approves(self, request: web.Request) -> web.Response:
        """Pay Now: the order is approved and the browser sent to the order's return_url, with
        `token` (the order id) and `PayerID` added as PayPal adds them."""
        order_id = request.query.get("token", "")
        if order_id not in self.orders:
            return web.Response(status=404, text="unknown order")
        self.approve(order_id)
        context = self.orders[order_id]["payment_source"]["paypal"]["experience_context"]
        back = context["return_url"]
        raise web.HTTPFound(f"{back}{'&' if '?' in back else '?'}token={order_id}&PayerID=FAKEPAYER")

    # --- what tests do on PayPal's side ----------------------------------------------------------

    def approve(self, order_id: str, decline: bool = False) -> None:
        """The shopper approves the order on PayPal's page (with a funding source that will be
        declined at capture, if `decline`)."""
        self.orders[order_id]["status"] = "APPROVED"
        if decline:
            self.declining.add(order_id)

    def capture_now(self, order_id: str) -> dict[str, Any]:
        """Capture the order's full amount (what the capture call does once it is allowed)."""
        order = self.orders[order_id]
        unit = order["purchase_units"][0]
        capture_id = _pid("CAP")
        capture = {
            "id": capture_id,
            "status": "COMPLETED",
            "amount": {k: unit["amount"][k] for k in ("currency_code", "value")},
            "final_capture": True,
            "custom_id": unit.get("custom_id"),
            "invoice_id": unit.get("invoice_id"),
            "supplementary_data": {"related_ids": {"order_id": order_id}},
            "links": [
                {"href": f"{self.url}/v2/payments/captures/{capture_id}", "rel": "self", "method": "GET"},
                {"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
            ],
        }
        order["status"] = "COMPLETED"
        unit["payments"] = {"captures": [capture]}
        return capture

    def capture_by_id(self, capture_id: str) -> dict[str, Any] | None:
        for order in self.orders.values():
            for capture in order["purchase_units"][0].get("payments", {}).get("captures", []):
                if capture["id"] == capture_id:
                    return capture
        return None

    def event(self, event_type: str, resource: dict[str, Any], event_id: str | None = None) -> bytes:
        """A webhook event as PayPal delivers it."""
        return json.dumps(
            {
                "id": event_id or f"WH-{_pid()}-{_pid()}",
                "event_version": "1.0",
                "create_time": datetime.now(UTC).isoformat(),
                "resource_type": "checkout-order" if event_type.startswith("CHECKOUT") else "capture",
                "resource_version": "2.0",
                "event_type": event_type,
                "summary": event_type.lower(),
                "resource": resource,
            }
        ).encode()

    def sign(self, body: bytes) -> dict[str, str]:
        """The transmission headers PayPal sends with this body; only these verify."""
        transmission_id = str(uuid4())
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hashlib.sha256(body).hexdigest()
        signature = base64.b64encode(
            hmac.new(_SIGNING_KEY, f"{transmission_id}|{when}|{WEBHOOK_ID}|{digest}".encode(), hashlib.sha256).digest()
        ).decode()
        self._signed[transmission_id] = (signature, json.loads(body))
        return {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": when,
            "PAYPAL-TRANSMISSION-SIG": signature,
            "PAYPAL-CERT-URL": "https://api.sandbox.paypal.test/v1/notifications/certs/CERT-FAKE",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    def capture_resource(self, order_id: str, value: str, currency: str = "USD") -> dict[str, Any]:
        """A PAYMENT.CAPTURE.* resource for an order this fake created, of `value` in `currency`."""
        unit = self.orders[order_id]["purchase_units"][0]
        return {
            "id": _pid("CAP"),
            "status": "COMPLETED",
            "amount": {"currency_code": currency, "value": value},
            "custom_id": unit.get("custom_id"),
            "invoice_id": unit.get("invoice_id"),
            "supplementary_data": {"related_ids": {"order_id": order_id}},
        }
