"""PayPal behind the payments interface: an Orders v2 order per shop order (the shopper approves
it on PayPal, we capture it when they come back), refunds of its capture, and the verification
of PayPal's webhook events through PayPal's own verify call. aiohttp with a timeout: PayPal has
no maintained async Python package."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from integrations.orders import OrderView
from integrations.payments import PaymentLink, PaymentUnavailable
from integrations.webhook_auth import WebhookRefused

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
TOKEN_MARGIN_SECONDS = 60  # fetch a new access token this long before PayPal's expires
ZERO_DECIMAL = frozenset({"HUF", "JPY", "TWD"})  # PayPal refuses decimals in these currencies
WEBHOOK_HEADERS = {
    "transmission_id": "PAYPAL-TRANSMISSION-ID",
    "transmission_time": "PAYPAL-TRANSMISSION-TIME",
    "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
    "cert_url": "PAYPAL-CERT-URL",
    "auth_algo": "PAYPAL-AUTH-ALGO",
}


def request_id(number: int, action: str) -> str:
    """The PayPal-Request-Id of an order's create, capture or refund: asking again gets the first answer."""
    return f"order-{number}-{action}"


def amount_value(cents: int, currency: str) -> str:
    """An amount in hundredths as PayPal writes it: "79.00"; "2500" in a currency without decimals.

    Raises:
        ValueError: cents in a currency PayPal takes only in whole units.
    """
    if currency.upper() in ZERO_DECIMAL:
        if cents % 100:
            raise ValueError(f"{currency} takes whole amounts at PayPal, not {cents} hundredths")
        return str(cents // 100)
    return f"{Decimal(cents).scaleb(-2):.2f}"


def cents_of(amount: Any, currency: str) -> int:
    """PayPal's `{"currency_code", "value"}` in hundredths of `currency`; -1 (never a total) for
    another currency or an amount that is not one."""
    if not isinstance(amount, dict) or str(amount.get("currency_code", "")).upper() != currency.upper():
        return -1
    try:
        value = Decimal(str(amount.get("value", "")))
    except InvalidOperation:
        return -1
    cents = value * 100
    return int(cents) if cents == cents.to_integral_value() and cents >= 0 else -1


def order_body(order: OrderView, currency: str, base_url: str) -> dict[str, Any]:
    """The Orders v2 order for `order`: intent CAPTURE, one purchase unit with its lines at their
    unit prices, shipping, and the discount as the breakdown's discount (PayPal checks that the
    parts add up to the amount); the order number as `reference_id`, `custom_id` and `invoice_id`;
    PayPal's pages send the shopper back to our return and cancel pages.

    Raises:
        ValueError: an amount PayPal cannot take in `currency`.
    """
    currency = currency.upper()
    number = str(order.number)

    def money(cents: int) -> dict[str, str]:
        return {"currency_code": currency, "value": amount_value(cents, currency)}

    goods = sum(line.unit_price_cents * line.quantity for line in order.lines)
    breakdown: dict[str, Any] = {"item_total": money(goods), "shipping": money(order.shipping_cents)}
    if order.discount_cents:
        breakdown["discount"] = money(order.discount_cents)
    context: dict[str, Any] = {
        "shipping_preference": "NO_SHIPPING",  # the address was given in the chat
        "user_action": "PAY_NOW",
        "return_url": f"{base_url}/payments/paypal/return?order={number}",
        "cancel_url": f"{base_url}/payments/cancelled?order={number}",
    }
    return {
        "intent": "CAPTURE",
        "purchase_units": [
            {
                "reference_id": number,
                "custom_id": number,
                "invoice_id": number,
                "description": f"Order #{number}",
                "amount": {**money(order.total_cents), "breakdown": breakdown},
                "items": [
                    {
                        "name": f"{line.name} ({line.size}, {line.colour})"[:127],
                        "quantity": str(line.quantity),
                        "unit_amount": money(line.unit_price_cents),
                        "category": "PHYSICAL_GOODS",
                    }
                    for line in order.lines
                ],
            }
        ],
        "payment_source": {"paypal": {"experience_context": context}},
    }


class CaptureRefused(PaymentUnavailable):
    """PayPal answered, and will not capture this order (not approved, expired ...): asking again
    changes nothing until the shopper approves it again."""


@dataclass(frozen=True)
class Capture:
    """What a capture of an approved order did: `status` COMPLETED, PENDING, DECLINED (or
    another of PayPal's), the capture's id and amount (-1 when PayPal gave none in `currency`)."""

    status: str
    capture_id: str | None
    amount_cents: int


def dig(value: Any, *path: str | int) -> Any:
    """`value[a][b]...`, or None where a step is missing or not a dict (or list, for an index)."""
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and -len(value) <= step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def capture_of(order: dict[str, Any], currency: str) -> Capture:
    """The capture in an order answered by the capture or get call."""
    capture = dig(order, "purchase_units", 0, "payments", "captures", -1)
    if not isinstance(capture, dict):
        return Capture(str(order.get("status", "")), None, -1)
    capture_id = capture.get("id")
    return Capture(
        str(capture.get("status", "")),
        capture_id if isinstance(capture_id, str) else None,
        cents_of(capture.get("amount"), currency),
    )


class PayPalPayments:
    """PayPal Checkout over the Orders v2 API: the pay link is the order's approve (`payer-action`)
    link, its id the order's payment reference. Every POST carries a PayPal-Request-Id derived from
    the order, so a retry never creates, captures or refunds twice."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        webhook_id: str,
        base_url: str,
        currency: str,
        api_base: str = "https://api-m.paypal.com",
    ) -> None:
        self._client_id, self._client_secret = client_id, client_secret
        self.webhook_id = webhook_id
        self._base_url = base_url.rstrip("/")
        self._api = api_base.rstrip("/")
        self.currency = currency.upper()
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None  # access token, monotonic time it expires
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings) -> PayPalPayments:
        return cls(
            settings.paypal_client_id,
            settings.paypal_client_secret.get_secret_value(),
            settings.paypal_webhook_id,
            settings.base_url,
            settings.currency,
            settings.paypal_api_base,
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS))
        return self._session

    async def _access_token(self, renew: bool = False) -> str:
        """An OAuth2 client-credentials token, kept until shortly before PayPal says it expires."""
        async with self._token_lock:
            if self._token and not renew and time.monotonic() < self._token[1]:
                return self._token[0]
            try:
                async with self._http().post(
                    f"{self._api}/v1/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=aiohttp.BasicAuth(self._client_id, self._client_secret),
                    headers={"Accept": "application/json"},
                ) as answer:
                    body = await answer.json(content_type=None) if answer.status == 200 else {}
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise PaymentUnavailable(f"token: {type(exc).__name__}") from exc
            if not isinstance(body, dict):
                body = {}
            token, lifetime = body.get("access_token"), body.get("expires_in")
            if status != 200 or not isinstance(token, str):
                raise PaymentUnavailable(f"token: HTTP {status}")
            seconds = float(lifetime) if isinstance(lifetime, int | float) else 0.0
            self._token = (token, time.monotonic() + max(0.0, seconds - TOKEN_MARGIN_SECONDS))
            return token

    async def _call(
        self, method: str, path: str, body: bytes | None = None, request_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One API call with the access token (renewed once if PayPal refuses it): the status
        and the JSON answer. A 5xx or a network failure is asked once more under the same
        PayPal-Request-Id, which PayPal answers without acting twice.

        Raises:
            PaymentUnavailable: no answer, or a 5xx twice.
        """
        renew, tries, last = False, 0, "no answer"
        while tries < 2:
            headers = {
                "Authorization": f"Bearer {await self._access_token(renew)}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Prefer": "return=representation",
            }
            if request_key:
                headers["PayPal-Request-Id"] = request_key
            try:
                async with self._http().request(method, f"{self._api}{path}", data=body, headers=headers) as answer:
                    status = answer.status
                    try:
                        data = await answer.json(content_type=None)
                    except ValueError:
                        data = None
            except (aiohttp.ClientError, TimeoutError) as exc:
                tries, last = tries + 1, type(exc).__name__
                continue
            if status == 401 and not renew:
                renew = True
                continue
            if status >= 500 or status == 429:
                tries, last = tries + 1, f"HTTP {status}"
                continue
            return status, data if isinstance(data, dict) else {}
        raise PaymentUnavailable(f"{method} {path}: {last}")

    async def create_link(self, order: OrderView) -> PaymentLink:
        """Create (or, for an order asked about before, get again) the order's PayPal order.

        Raises:
            PaymentUnavailable: PayPal is down or refused it.
        """
        try:
            body = json.dumps(order_body(order, self.currency, self._base_url)).encode()
        except ValueError as exc:
            raise PaymentUnavailable(str(exc)) from exc
        status, created = await self._call("POST", "/v2/checkout/orders", body, request_id(order.number, "checkout"))
        if status not in (200, 201):
            raise PaymentUnavailable(f"create order: HTTP {status} {_issue(created)}")
        links = {link.get("rel"): link.get("href") for link in dig(created, "links") or [] if isinstance(link, dict)}
        url = links.get("payer-action") or links.get("approve")
        if not isinstance(created.get("id"), str) or not isinstance(url, str):
            raise PaymentUnavailable("the order has no approve link")
        return PaymentLink(created["id"], url)

    async def capture(self, number: int, paypal_order_id: str, attempt: int = 1) -> Capture:
        """Capture the order if PayPal says it is approved (read first, so a capture PayPal would
        refuse never spends a PayPal-Request-Id, which would replay the refusal). A declined
        funding source comes back as status DECLINED (the shopper may approve again with another:
        that is the next `attempt`, under its own PayPal-Request-Id); an order captured already,
        as its capture.

        Raises:
            CaptureRefused: PayPal will not capture the order (not approved, expired ...).
            PaymentUnavailable: PayPal is down.
        """
        path = f"/v2/checkout/orders/{paypal_order_id}"
        status, found = await self._call("GET", path)
        if status != 200:
            raise CaptureRefused(f"get order: HTTP {status} {_issue(found)}")
        if found.get("status") == "COMPLETED":
            return capture_of(found, self.currency)
        if found.get("status") != "APPROVED":
            raise CaptureRefused(f"the order is {found.get('status')!r}, not APPROVED")
        status, answer = await self._call("POST", f"{path}/capture", b"{}", request_id(number, f"capture-{attempt}"))
        if status in (200, 201):
            return capture_of(answer, self.currency)
        issue = _issue(answer)
        if status == 422 and issue == "INSTRUMENT_DECLINED":
            return Capture("DECLINED", None, -1)
        if status == 422 and issue == "ORDER_ALREADY_CAPTURED":  # by a request of its own meanwhile
            status, found = await self._call("GET", path)
            if status == 200:
                return capture_of(found, self.currency)
        raise CaptureRefused(f"capture: HTTP {status} {issue}")

    async def refund(
        self, order: OrderView, capture_ref: str, amount_cents: int | None = None, key: str | None = None
    ) -> None:
        """Refund the order's capture: in full, once per order, for a cancel; `amount_cents` of
        it for a returned item, once per `key` (the PayPal-Request-Id).

        Raises:
            PaymentUnavailable: PayPal is down or refused it.
        """
        fields: dict[str, Any] = {"invoice_id": str(order.number)}
        if amount_cents is None:
            fields["note_to_payer"] = f"Order #{order.number} cancelled"
        else:
            currency = self.currency.upper()
            fields["amount"] = {"currency_code": currency, "value": amount_value(amount_cents, currency)}
            fields["note_to_payer"] = f"Order #{order.number}: returned item"
        body = json.dumps(fields)
        status, answer = await self._call(
            "POST",
            f"/v2/payments/captures/{capture_ref}/refund",
            body.encode(),
            key or request_id(order.number, "refund"),
        )
        if status not in (200, 201):
            raise PaymentUnavailable(f"refund: HTTP {status} {_issue(answer)}")

    async def close_link(self, reference: str) -> None:
        """Orders v2 has no call to void an order awaiting approval: a cancelled order is simply
        never captured (the return page and the webhook capture only an order awaiting payment)."""

    async def verified(self, raw: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The event of a webhook body that PayPal says it sent: the transmission headers, our
        webhook id and the event exactly as received go to `verify-webhook-signature`. `headers`
        as the request has them (names in any case).

        Raises:
            WebhookRefused: a transmission header is missing, the body is not JSON (PayPal can
                only be asked about a JSON event), or PayPal does not say SUCCESS.
            ValueError: an event PayPal verified that is not one we can read.
            PaymentUnavailable: PayPal did not answer (it delivers the event again later).
        """
        fields = {name: headers.get(header, "") for name, header in WEBHOOK_HEADERS.items()}
        if not all(fields.values()):
            raise WebhookRefused("a PAYPAL-* transmission header is missing")
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRefused("the body is not JSON, so PayPal cannot verify it") from exc
        # The event goes back byte for byte: PayPal signed the body as sent, not a re-encoding.
        request = json.dumps({**fields, "webhook_id": self.webhook_id})[:-1].encode()
        request += b', "webhook_event": ' + raw + b"}"
        status, answer = await self._call("POST", "/v1/notifications/verify-webhook-signature", request)
        if status != 200:  # PayPal refused the question itself: nothing is verified
            raise WebhookRefused(f"PayPal did not verify the event: HTTP {status} {_issue(answer)}".rstrip())
        if answer.get("verification_status") != "SUCCESS":
            raise WebhookRefused(f"PayPal's verification_status is {answer.get('verification_status')!r}")
        if not (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("event_type"), str)
            and isinstance(event.get("resource"), dict)
        ):
            raise ValueError("not a PayPal event")
        return event

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _issue(answer: dict[str, Any]) -> str:
    """The first detail's issue of PayPal's error (INSTRUMENT_DECLINED, ...), else its name."""
    return str(dig(answer, "details", 0, "issue") or answer.get("name") or answer.get("error") or "")
