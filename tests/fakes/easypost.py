"""A fake EasyPost API on loopback: address verification, shipments with rates (returns too),
buying a label, trackers. It checks HTTP Basic auth with the API key as user, records every
request, honours Idempotency-Key, and signs tracker webhooks exactly as EasyPost does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import unicodedata
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from aiohttp import web

from tests.fakes.providers import FakeProvider

API_KEY = "EZTK_test_fake"
WEBHOOK_SECRET = "whsec-easypost-test"
FROM_ADDRESS_ID = "adr_shopwarehouse01"
# Streets the fake's carriers cannot deliver to.
UNDELIVERABLE = ("1 Nowhere Lane",)


def easypost_signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """`X-Hmac-Signature`: "hmac-sha256-hex=" + hex HMAC-SHA256 of the raw body, the secret NFKD-normalised."""
    key = unicodedata.normalize("NFKD", secret).encode()
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class FakeEasyPost(FakeProvider):
    """`POST /v2/addresses`, `/v2/shipments`, `/v2/shipments/{id}/buy`, `/v2/trackers`. Each
    request is recorded as `{"path", "json", "headers", "status"}`. Rates carry `delivery_days`
    (and `delivery_date` when `delivery_date` is set) as EasyPost's do."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: dict[str, dict[str, Any]] = {}
        self.shipments: dict[str, dict[str, Any]] = {}
        self.trackers: dict[str, dict[str, Any]] = {}
        self.delivery_days = 3
        self.delivery_date: date | None = None
        self._answers: dict[str, dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/addresses", self.create_address)
        app.router.add_post("/v2/shipments", self.create_shipment)
        app.router.add_post("/v2/shipments/{id}/buy", self.buy)
        app.router.add_post("/v2/trackers", self.create_tracker)

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def _authorised(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
        return hmac.compare_digest(request.headers.get("Authorization", ""), expected)

    async def _handle(self, request: web.Request, create) -> web.Response:
        body = await request.json()
        record = {"path": request.path, "json": body, "headers": dict(request.headers), "status": None}
        self.requests.append(record)
        if not self._authorised(request):
            record["status"] = 401
            return web.json_response({"error": {"code": "APIKEY.INVALID", "message": "bad key"}}, status=401)
        failure = await self._gate()
        if failure is not None:
            record["status"] = failure.status
            return web.json_response({"error": {"code": "INTERNAL_SERVER_ERROR"}}, status=failure.status)
        key = request.headers.get("Idempotency-Key")
        if key and key in self._answers:
            record["status"] = 200
            return web.json_response(self._answers[key])
        answer, status = create(body, request)
        record["status"] = status
        if key and status < 300:
            self._answers[key] = answer
        return web.json_response(answer, status=status)

    async def create_address(self, request: web.Request) -> web.Response:
        def create(body: dict[str, Any], _request) -> tuple[dict[str, Any], int]:
            fields = body.get("address") or {}
            good = fields.get("street1") not in UNDELIVERABLE and bool(fields.get("zip"))
            address = {
                "id": f"adr_{uuid4().hex[:16]}",
                "object": "Address",
                **fields,
                "street1": str(fields.get("street1", "")).upper(),
                "city": str(fields.get("city", "")).upper(),
                "verifications": {
                    "delivery": {
                        "success": good,
                        "errors": [] if good else [{"code": "E.ADDRESS.NOT_FOUND", "message": "Address not found"}],
                    }
                },
            }
            self.addresses[address["id"]] = address
            return address, 200

        return await self._handle(request, create)

    def _rates(self, shipment_id: str) -> list[dict[str, Any]]:
        when = self.delivery_date.isoformat() + "T17:00:00Z" if self.delivery_date else None
        return [
            {
                "id": f"rate_{uuid4().hex[:12]}",
                "object": "Rate",
                "shipment_id": shipment_id,
                "carrier": carrier,
                "service": service,
                "rate": rate,
                "currency": "USD",
                "delivery_days": days,
                "delivery_date": when if days == self.delivery_days else None,
            }
            for carrier, service, rate, days in (
                ("USPS", "GroundAdvantage", "6.45", self.delivery_days),
                ("UPS", "NextDayAir", "38.10", 1),
            )
        ]

    async def create_shipment(self, request: web.Request) -> web.Response:
        def create(body: dict[str, Any], _request) -> tuple[dict[str, Any], int]:
            params = body.get("shipment") or {}
            to, sender = params.get("to_address") or {}, params.get("from_address") or {}
            if not (to and sender and params.get("parcel")):
                return {"error": {"code": "SHIPMENT.INVALID_PARAMS", "message": "missing addresses or parcel"}}, 422
            if params.get("is_return"):  # EasyPost swaps them for a return
                to, sender = sender, to
            shipment_id = f"shp_{uuid4().hex[:16]}"
            shipment = {
                "id": shipment_id,
                "object": "Shipment",
                "is_return": bool(params.get("is_return")),
                "to_address": to,
                "from_address": sender,
                "parcel": params["parcel"],
                "options": params.get("options") or {},
                "reference": params.get("reference"),
                "rates": self._rates(shipment_id),
            }
            self.shipments[shipment_id] = shipment
            return shipment, 201

        return await self._handle(request, create)

    async def buy(self, request: web.Request) -> web.Response:
        shipment_id = request.match_info["id"]

        def buy(body: dict[str, Any], _request) -> tuple[dict[str, Any], int]:
            shipment = self.shipments.get(shipment_id)
            rate_id = (body.get("rate") or {}).get("id")
            if shipment is None or rate_id not in [r["id"] for r in shipment["rates"]]:
                return {"error": {"code": "SHIPMENT.RATE.INVALID", "message": "no such rate"}}, 422
            code = "9434" + uuid4().hex[:18].upper()
            tracker = self._tracker(code, "USPS", shipment_id)
            label_format = (shipment["options"].get("label_format") or "PNG").lower()
            shipment.update(
                tracking_code=code,
                selected_rate=next(r for r in shipment["rates"] if r["id"] == rate_id),
                postage_label={
                    "object": "PostageLabel",
                    "label_file_type": f"application/{label_format}" if label_format == "pdf" else "image/png",
                    "label_url": f"https://easypost-files.test/files/postage_label/{shipment_id}.{label_format}",
                },
                tracker=tracker,
            )
            return shipment, 200

        return await self._handle(request, buy)

    def _tracker(self, code: str, carrier: str | None, shipment_id: str | None = None) -> dict[str, Any]:
        tracker = {
            "id": f"trk_{uuid4().hex[:16]}",
            "object": "Tracker",
            "tracking_code": code,
            "carrier": carrier,
            "status": "pre_transit",
            "shipment_id": shipment_id,
            "est_delivery_date": None,
            "public_url": f"https://track.easypost.test/{code}",
            "tracking_details": [],
        }
        self.trackers[tracker["id"]] = tracker
        return tracker

    async def create_tracker(self, request: web.Request) -> web.Response:
        def create(body: dict[str, Any], _request) -> tuple[dict[str, Any], int]:
            params = body.get("tracker") or {}
            if not params.get("tracking_code"):
                return {"error": {"code": "TRACKER.TRACKING_CODE.INVALID", "message": "missing"}}, 422
            return self._tracker(params["tracking_code"], params.get("carrier")), 200

        return await self._handle(request, create)

    def tracker_event(
        self,
        tracker_id: str,
        status: str,
        event_id: str | None = None,
        est_delivery_date: str | None = None,
    ) -> bytes:
        """The body of a `tracker.updated` event for one of this fake's trackers, at `status`."""
        tracker = {**self.trackers[tracker_id], "status": status, "est_delivery_date": est_delivery_date}
        tracker["tracking_details"] = [
            *tracker["tracking_details"],
            {"object": "TrackingDetail", "status": status, "datetime": datetime.now(UTC).isoformat()},
        ]
        self.trackers[tracker_id] = tracker
        return event_body("tracker.updated", tracker, event_id)

    def tracker_of(self, code: str) -> dict[str, Any]:
        return next(t for t in self.trackers.values() if t["tracking_code"] == code)


def event_body(description: str, result: dict[str, Any], event_id: str | None = None) -> bytes:
    """An EasyPost event as its webhook delivers it."""
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid4().hex[:24]}",
            "object": "Event",
            "mode": "test",
            "description": description,
            "status": "pending",
            "created_at": datetime.now(UTC).isoformat(),
            "result": result,
        }
    ).encode()
