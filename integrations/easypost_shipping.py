"""EasyPost behind the shipping interface: address verification and a delivery date from its
rates at checkout, a tracker per shipped order, prepaid return labels, and the verification of
its webhook events.

Plain aiohttp with a timeout rather than the `easypost` package: that package is synchronous
(requests or urllib), which would block the event loop that answers webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import unicodedata
from datetime import date, datetime
from typing import Any

import aiohttp

from bot.delivery.estimates import DeliveryEstimate, add_business_days
from integrations.shipping import AddressCheck, ReturnLabel, ShippingUnavailable
from integrations.webhook_auth import WebhookRefused

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
SIGNATURE_PREFIX = "hmac-sha256-hex="
# What a parcel of clothes weighs and measures for a quote (inches, ounces): a padded mailer.
PARCEL = {"length": 12.0, "width": 10.0, "height": 3.0, "weight": 24.0}
# Our carrier names (integrations/shipments.py) as EasyPost spells them.
EASYPOST_CARRIERS = {"UPS": "UPS", "USPS": "USPS", "FedEx": "FedEx", "DHL": "DHLExpress"}
STATE_ZIP_RE = re.compile(r"([A-Za-z]{2})\s+(\d{5}(?:-\d{4})?)")


def address_fields(text: str) -> dict[str, str] | None:
    """A US address written on one line, "street, [unit,] city, ST 12345[, US]", as EasyPost's
    fields; None when it does not read that way."""
    parts = [" ".join(p.split()) for p in text.split(",") if p.strip()]
    if parts and parts[-1].upper() in ("US", "USA", "UNITED STATES"):
        parts = parts[:-1]
    if len(parts) < 3:
        return None
    match = STATE_ZIP_RE.fullmatch(parts[-1])
    if match is None:
        return None
    fields = {"street1": parts[0], "city": parts[-2], "state": match.group(1).upper(), "zip": match.group(2)}
    if len(parts) > 3:
        fields["street2"] = " ".join(parts[1:-2])
    return {**fields, "country": "US"}


def one_line(address: dict[str, Any]) -> str:
    """EasyPost's (corrected) address as the shopper reads it: "417 Montgomery St, Floor 5, San Francisco, CA 94104"."""
    street = [address.get("street1"), address.get("street2")]
    parts = [str(p) for p in street if p] + [str(address.get("city") or "")]
    return ", ".join(parts) + f", {address.get('state') or ''} {address.get('zip') or ''}".rstrip()


def signature(body: bytes, secret: str) -> str:
    """The `X-Hmac-Signature` of a webhook body: "hmac-sha256-hex=" and the hex HMAC-SHA256 of the
    raw body, keyed with the webhook secret NFKD-normalised (as EasyPost's own libraries do)."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def arrival(rates: list[dict[str, Any]], shipped: date) -> date | None:
    """The delivery date of the cheapest rate that gives one: its `delivery_date`, or
    `delivery_days` business days after the parcel is handed over."""
    dated = []
    for rate in rates:
        try:
            price = float(rate.get("rate") or 0)
        except (TypeError, ValueError):
            continue
        day: date | None = None
        if isinstance(rate.get("delivery_date"), str):
            try:
                day = datetime.fromisoformat(rate["delivery_date"].replace("Z", "+00:00")).date()
            except ValueError:
                day = None
        if day is None and isinstance(rate.get("delivery_days"), int) and rate["delivery_days"] >= 0:
            day = add_business_days(shipped, rate["delivery_days"])
        if day is not None:
            dated.append((price, day))
    return min(dated)[1] if dated else None


class EasyPostShipping:
    """EasyPost's API (HTTP Basic, the API key as user) at `EASYPOST_API_BASE`."""

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        from_address_id: str,
        estimate: DeliveryEstimate,
        api_base: str = "https://api.easypost.com",
    ) -> None:
        self._auth = aiohttp.BasicAuth(api_key, "")
        self._webhook_secret = webhook_secret
        self._from = {"id": from_address_id}
        self._estimate = estimate
        self._base = api_base.rstrip("/") + "/v2"
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings, estimate: DeliveryEstimate) -> EasyPostShipping:
        return cls(
            settings.easypost_api_key.get_secret_value(),
            settings.easypost_webhook_secret.get_secret_value(),
            settings.easypost_from_address_id,
            estimate,
            settings.easypost_api_base,
        )

    async def _post(self, path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS))
        headers = {"Idempotency-Key": key} if key else {}
        try:
            async with self._session.post(self._base + path, json=body, auth=self._auth, headers=headers) as resp:
                answer = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ShippingUnavailable(f"{path}: {type(exc).__name__}") from exc
        if status >= 300 or not isinstance(answer, dict):
            code = (answer.get("error") or {}).get("code") if isinstance(answer, dict) else None
            raise ShippingUnavailable(f"{path}: HTTP {status} {code or ''}".strip())
        return answer

    async def check_address(self, address: str, now: datetime) -> AddressCheck:
        """Verify the address (`POST /v2/addresses` with `verify`), then quote a shipment to it
        (`POST /v2/shipments`) for the carriers' delivery dates.

        Raises:
            ShippingUnavailable: EasyPost is down or refused.
        """
        fields = address_fields(address)
        if fields is None:
            return AddressCheck(address, "unreadable")
        verified = await self._post("/addresses", {"address": fields, "verify": True})
        delivery = (verified.get("verifications") or {}).get("delivery") or {}
        if not delivery.get("success") or not isinstance(verified.get("id"), str):
            log.info("address not deliverable", extra={"errors": [e.get("code") for e in delivery.get("errors") or []]})
            return AddressCheck(address, "undeliverable")
        quote = await self._post(
            "/shipments",
            {"shipment": {"to_address": {"id": verified["id"]}, "from_address": self._from, "parcel": PARCEL}},
            f"quote-{verified['id']}-{now.date().isoformat()}",
        )
        shipped = add_business_days(now.astimezone(self._estimate.zone).date(), self._estimate.processing_days)
        return AddressCheck(one_line(verified), None, arrival(quote.get("rates") or [], shipped))

    async def track(self, number: int, carrier: str, tracking_number: str) -> str | None:
        """`POST /v2/trackers` for the order's parcel, keyed by the order (one tracker per order).

        Raises:
            ShippingUnavailable: EasyPost is down or refused.
        """
        body: dict[str, Any] = {"tracking_code": tracking_number}
        if carrier in EASYPOST_CARRIERS:  # any other name: EasyPost detects the carrier from the code
            body["carrier"] = EASYPOST_CARRIERS[carrier]
        tracker = await self._post("/trackers", {"tracker": body}, f"order-{number}-tracker")
        return tracker.get("id") if isinstance(tracker.get("id"), str) else None

    async def return_label(self, reference: str, address: str) -> ReturnLabel | None:
        """A return shipment (`is_return`: EasyPost swaps the two addresses) with a PDF label,
        bought at its cheapest rate.

        Raises:
            ShippingUnavailable: EasyPost is down or refused, or the address does not read as one.
        """
        fields = address_fields(address)
        if fields is None:
            raise ShippingUnavailable("the order's address does not read as street, city, state and ZIP")
        shipment = await self._post(
            "/shipments",
            {
                "shipment": {
                    "to_address": fields,
                    "from_address": self._from,
                    "parcel": PARCEL,
                    "is_return": True,
                    "options": {"label_format": "PDF"},
                    "reference": reference,
                }
            },
            f"return-{reference}-shipment",
        )
        rates = [r for r in shipment.get("rates") or [] if isinstance(r.get("id"), str)]
        if not rates or not isinstance(shipment.get("id"), str):
            raise ShippingUnavailable("no rate for the return")
        cheapest = min(rates, key=lambda r: float(r.get("rate") or "inf"))
        bought = await self._post(
            f"/shipments/{shipment['id']}/buy", {"rate": {"id": cheapest["id"]}}, f"return-{reference}-buy"
        )
        label = bought.get("postage_label") or {}
        url = label.get("label_pdf_url") or label.get("label_url")
        if not isinstance(url, str):
            raise ShippingUnavailable("the bought return has no label")
        tracker = bought.get("tracker") or {}
        return ReturnLabel(url, tracker.get("id"), bought.get("tracking_code"))

    def verified_event(self, payload: bytes, header: str) -> dict[str, Any]:
        """The event of a webhook body signed with our webhook secret.

        Raises:
            WebhookRefused: a bad or missing signature.
            ValueError: a signed body that is not JSON or not an event.
        """
        expected = signature(payload, self._webhook_secret)
        if not hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace")):
            raise WebhookRefused("bad or missing X-Hmac-Signature")
        try:
            event = json.loads(payload)
        except ValueError as exc:  # UnicodeDecodeError too
            raise ValueError("the body is not JSON") from exc
        if not (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("description"), str)
            and isinstance(event.get("result"), dict)
        ):
            raise ValueError("not an EasyPost event")
        return event

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
