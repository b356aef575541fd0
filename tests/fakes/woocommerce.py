"""A fake WooCommerce REST API v3 (`/wp-json/wc/v3/`) on loopback: products (simple and variable,
with variations), paginated with `X-WP-Total` and `X-WP-TotalPages`, orders created with a
`payment_url`, order notes, customers (`email`, and `search` as WordPress's user search does it:
login, e-mail, names, not the billing phone) and the website's orders (`customer`, and `search`
in the billing and shipping addresses, as typed); the consumer key and secret checked as HTTP
Basic. It records what it gets, and signs webhooks as WooCommerce does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aiohttp import BasicAuth, web

from tests.fakes.providers import FakeProvider

KEY = "ck_test_key"
SECRET = "cs_test_secret"
WEBHOOK_SECRET = "woo-webhook-secret"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def gmt(moment: datetime) -> str:
    """WooCommerce's `date_modified_gmt`: ISO 8601 without a zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def variable(
    number: int, slug: str, name: str, category: str, variations: list[tuple[str, str, str, int]], price: str
) -> dict[str, Any]:
    """A variable product; variations are (sku, size, colour, stock_quantity)."""
    return {
        "id": number,
        "name": name,
        "slug": slug,
        "type": "variable",
        "status": "publish",
        "description": f"<p>{name}, made to last.</p>",
        "short_description": "",
        "sku": "",
        "price": price,
        "regular_price": "",
        "manage_stock": False,
        "stock_quantity": None,
        "stock_status": "instock",
        "categories": [{"id": 1, "name": category, "slug": category.lower()}],
        "tags": [{"id": 1, "name": category.lower()}],
        "images": [{"id": number, "src": f"https://shop.test/wp-content/uploads/{slug}.jpg"}],
        "attributes": [
            {"id": 1, "name": "Size", "variation": True, "options": sorted({v[1] for v in variations})},
            {"id": 2, "name": "Color", "variation": True, "options": sorted({v[2].title() for v in variations})},
        ],
        "date_modified_gmt": gmt(T0),
        "variations_full": [
            {
                "id": number * 10 + i,
                "sku": sku,
                "status": "publish",
                "price": price,
                "regular_price": price,
                "manage_stock": True,
                "stock_quantity": qty,
                "stock_status": "instock" if qty > 0 else "outofstock",
                "attributes": [
                    {"id": 1, "name": "Size", "option": size},
                    {"id": 2, "name": "Color", "option": colour.title()},
                ],
                "date_modified_gmt": gmt(T0),
            }
            for i, (sku, size, colour, qty) in enumerate(variations, start=1)
        ],
    }


def simple(
    number: int,
    slug: str,
    name: str,
    category: str,
    sku: str,
    price: str,
    stock: int | None,
    status: str = "publish",
) -> dict[str, Any]:
    """A simple product; `stock` None: WooCommerce does not count it (in stock)."""
    return {
        "id": number,
        "name": name,
        "slug": slug,
        "type": "simple",
        "status": status,
        "description": f"<p>{name}.</p>",
        "short_description": "",
        "sku": sku,
        "price": price,
        "regular_price": price,
        "manage_stock": stock is not None,
        "stock_quantity": stock,
        "stock_status": "instock" if stock is None or stock > 0 else "outofstock",
        "categories": [{"id": 2, "name": category, "slug": category.lower()}],
        "tags": [],
        "images": [{"id": number, "src": f"https://shop.test/wp-content/uploads/{slug}.jpg"}],
        "attributes": [],
        "date_modified_gmt": gmt(T0),
        "variations_full": [],
    }


def address(
    street: str, city: str, state: str, postcode: str, country: str = "US", email: str = "", phone: str = ""
) -> dict[str, Any]:
    """A customer's or an order's billing (with e-mail and phone) or shipping address."""
    return {
        "first_name": "Dana",
        "last_name": "Reyes",
        "company": "",
        "address_1": street,
        "address_2": "",
        "city": city,
        "state": state,
        "postcode": postcode,
        "country": country,
        "email": email,
        "phone": phone,
    }


def customer(
    number: int, email: str, phone: str, shipping: dict[str, Any] | None, username: str | None = None
) -> dict[str, Any]:
    """A registered customer; `phone` is the billing phone as the shopper typed it on the website."""
    empty = address("", "", "", "")
    return {
        "id": number,
        "email": email,
        "username": username or email.split("@")[0],
        "first_name": "Dana",
        "last_name": "Reyes",
        "role": "customer",
        "billing": {**(shipping or empty), "email": email, "phone": phone},
        "shipping": {**(shipping or empty), "email": "", "phone": ""},
        "date_created_gmt": gmt(T0 - timedelta(days=400)),
    }


def website_order(
    number: int,
    created: datetime,
    items: list[tuple[str, int, int]],  # (name, quantity, product id)
    status: str = "processing",
    customer_id: int = 0,
    email: str = "",
    phone: str = "",
    total: str = "0.00",
    tracking: tuple[str, str] | None = None,  # (provider, number) in the Shipment Tracking meta
) -> dict[str, Any]:
    """An order placed on the website (a guest's when `customer_id` is 0), as `GET orders` gives it."""
    meta = []
    if tracking is not None:
        provider, tracking_number = tracking
        meta.append(
            {
                "id": number,
                "key": "_wc_shipment_tracking_items",
                "value": [
                    {
                        "tracking_provider": provider,
                        "custom_tracking_provider": "",
                        "custom_tracking_link": "",
                        "tracking_number": tracking_number,
                        "date_shipped": str(int(created.timestamp())),
                    }
                ],
            }
        )
    return {
        "id": number,
        "number": str(number),
        "status": status,
        "currency": "USD",
        "total": total,
        "customer_id": customer_id,
        "billing": address("12 Main St", "Springfield", "IL", "62701", email=email, phone=phone),
        "shipping": address("12 Main St", "Springfield", "IL", "62701"),
        "line_items": [
            {"id": number * 10 + i, "name": name, "quantity": quantity, "product_id": product, "variation_id": 0}
            for i, (name, quantity, product) in enumerate(items, start=1)
        ],
        "meta_data": meta,
        "date_created_gmt": gmt(created),
        "date_modified_gmt": gmt(created),
    }


def default_products() -> list[dict[str, Any]]:
    return [
        variable(
            10,
            "harbor-rain-jacket",
            "Harbor Rain Jacket",
            "Jackets",
            [
                ("HRJ-S-NAVY", "S", "navy", 3),
                ("HRJ-M-NAVY", "M", "navy", 0),
                ("HRJ-M-RED", "M", "red", 4),
                ("HRJ-L-NAVY", "L", "navy", 5),
            ],
            "89.00",
        ),
        variable(
            20,
            "summit-trail-runner",
            "Summit Trail Runner",
            "Sneakers",
            [("STR-9-GRY", "9", "grey", 6), ("STR-10-GRY", "10", "grey", 0)],
            "120.00",
        ),
        simple(30, "cozy-wool-socks", "Cozy Wool Socks", "Socks", "CWS-OS-OAT", "14.00", 30),
        simple(40, "draft-scarf", "Draft Scarf", "Scarf", "DS-OS", "20.00", 3, status="draft"),
        simple(50, "canvas-tote", "Canvas Tote", "Bags", "CT-OS", "25.00", None),
    ]


class FakeWooCommerce(FakeProvider):
    """`/wp-json/wc/v3/products`, `products/{id}`, `products/{id}/variations`, `orders`,
    `orders/{id}`, `orders/{id}/notes`."""

    def __init__(self) -> None:
        super().__init__()
        self.products: list[dict[str, Any]] = default_products()
        self.orders: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.customers: list[dict[str, Any]] = []
        self.per_page_cap = 100  # WooCommerce's maximum per_page

    def routes(self, app: web.Application) -> None:
        base = "/wp-json/wc/v3"
        app.router.add_get(f"{base}/products", self.list_products)
        app.router.add_get(f"{base}/products/{{id}}", self.get_product)
        app.router.add_get(f"{base}/products/{{id}}/variations", self.list_variations)
        app.router.add_get(f"{base}/orders", self.list_orders)
        app.router.add_post(f"{base}/orders", self.create_order)
        app.router.add_put(f"{base}/orders/{{id}}", self.update_order)
        app.router.add_get(f"{base}/orders/{{id}}/notes", self.list_notes)
        app.router.add_get(f"{base}/customers", self.list_customers)
        app.router.add_get(f"{base}/customers/{{id}}", self.get_customer)

    # --- what the tests change ----------------------------------------------------------------

    def find(self, slug: str) -> dict[str, Any]:
        return next(p for p in self.products if p["slug"] == slug)

    def variation(self, sku: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for p in self.products:
            for v in p["variations_full"]:
                if v["sku"] == sku:
                    return p, v
        raise KeyError(sku)

    def add_note(self, order_id: int, note: str, at: datetime) -> None:
        notes = self.notes.setdefault(order_id, [])
        notes.append({"id": len(notes) + 1, "note": note, "customer_note": True, "date_created_gmt": gmt(at)})

    def paths(self, method: str = "GET") -> list[str]:
        return [r["path"] for r in self.requests if r["method"] == method]

    def add_orders(self, *orders: dict[str, Any]) -> None:
        for order in orders:
            self.orders[order["id"]] = order

    # --- the API ----------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> web.Response | None:
        body = await request.json() if request.can_read_body else None
        auth = request.headers.get("Authorization", "")
        try:
            who = BasicAuth.decode(auth) if auth else None
        except ValueError:
            who = None
        self.requests.append(
            {
                "method": request.method,
                "path": request.path.removeprefix("/wp-json/wc/v3/"),
                "query": dict(request.query),
                "json": body,
                "auth": (who.login, who.password) if who else None,
            }
        )
        failure = await self._gate()
        if failure is not None:
            return failure
        if who is None or (who.login, who.password) != (KEY, SECRET):
            return web.json_response(
                {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources."}, status=401
            )
        return None

    @staticmethod
    def product_json(p: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in p.items() if k != "variations_full"}
        out["variations"] = [v["id"] for v in p["variations_full"]]
        return out

    def _page(self, request: web.Request, items: list[Any]) -> web.Response:
        per_page = min(int(request.query.get("per_page", 10)), self.per_page_cap)
        page = int(request.query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        pages = max(1, -(-len(items) // per_page))
        return web.json_response(chunk, headers={"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(pages)})

    async def list_products(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        products = self.products
        if "modified_after" in request.query:
            since = request.query["modified_after"]
            products = [
                p
                for p in products
                if max([p["date_modified_gmt"]] + [v["date_modified_gmt"] for v in p["variations_full"]]) > since
            ]
        return self._page(request, [self.product_json(p) for p in products])

    async def get_product(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        for p in self.products:
            if str(p["id"]) == request.match_info["id"]:
                return web.json_response(self.product_json(p))
        return web.json_response({"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID."}, status=404)

    async def list_variations(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        p = next(p for p in self.products if str(p["id"]) == request.match_info["id"])
        return self._page(request, p["variations_full"])

    async def list_orders(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        query = request.query
        found = [o for o in reversed(self.orders.values()) if o["status"] == query.get("status", o["status"])]
        if "customer" in query:
            found = [o for o in found if str(o.get("customer_id") or 0) == query["customer"]]
        if "search" in query:  # the address index: billing and shipping fields as typed, e-mail and phone too
            term = query["search"].lower()
            found = [
                o
                for o in found
                if term == str(o["id"])
                or any(term in str(v).lower() for part in ("billing", "shipping") for v in (o.get(part) or {}).values())
            ]
        if "date_created_gmt" in (found[0] if found else {}):  # orderby=date, order=desc (the default)
            found.sort(key=lambda o: o.get("date_created_gmt", ""), reverse=query.get("order", "desc") == "desc")
        return self._page(request, found)

    async def list_customers(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        query = request.query
        role = query.get("role", "customer")
        found = [c for c in self.customers if role == "all" or c["role"] == role]
        if query.get("email"):
            found = [c for c in found if c["email"].lower() == query["email"].lower()]
        elif query.get("search"):
            # WP_User_Query: a number searches the login and the id; else login, e-mail, names.
            term = query["search"].lower()
            if term.isdigit():
                found = [c for c in found if term in c["username"].lower() or term == str(c["id"])]
            else:
                fields = ("username", "email", "first_name", "last_name")
                found = [c for c in found if any(term in str(c[f]).lower() for f in fields)]
        return self._page(request, found)

    async def get_customer(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        for c in self.customers:
            if str(c["id"]) == request.match_info["id"]:
                return web.json_response(c)
        return web.json_response({"code": "woocommerce_rest_invalid_id", "message": "Invalid resource ID."}, status=404)

    async def create_order(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        data = self.requests[-1]["json"]
        prices = {}
        for p in self.products:
            prices[(p["id"], None)] = p["price"]
            for v in p["variations_full"]:
                prices[(p["id"], v["id"])] = v["price"]
        total = 0.0
        for line in data["line_items"]:
            key = (line["product_id"], line.get("variation_id"))
            if key not in prices:
                return web.json_response(
                    {"code": "woocommerce_rest_invalid_product_id", "message": f"no product {key}"}, status=400
                )
            total += float(prices[key]) * line["quantity"]
        total += sum(float(s["total"]) for s in data.get("shipping_lines", []))
        total += sum(float(f["total"]) for f in data.get("fee_lines", []))
        number = 700 + len(self.orders) + 1
        key = f"wc_order_{uuid4().hex[:13]}"
        order = {
            **data,
            "id": number,
            "order_key": key,
            "total": f"{total:.2f}",
            "payment_url": f"https://shop.test/checkout/order-pay/{number}/?pay_for_order=true&key={key}",
            "date_modified_gmt": gmt(datetime.now(UTC)),
        }
        self.orders[number] = order
        if (lost := self._made_then_fail()) is not None:
            return lost
        if self.lost_answers:  # made, but answered too late for the caller
            self.lost_answers -= 1
            await asyncio.sleep(self.lost_answer_delay)
        return web.json_response(order, status=201)

    async def update_order(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        order = self.orders[int(request.match_info["id"])]
        order.update(self.requests[-1]["json"] or {})
        return web.json_response(order)

    async def list_notes(self, request: web.Request) -> web.Response:
        if (refused := await self._record(request)) is not None:
            return refused
        return web.json_response(self.notes.get(int(request.match_info["id"]), []))

    # --- webhooks -----------------------------------------------------------------------------------

    def product_webhook(self, slug: str, modified: datetime) -> dict[str, Any]:
        """A `product.updated` body: the product as `GET products/{id}` gives it, changed at `modified`."""
        body = self.product_json(self.find(slug))
        body["date_modified_gmt"] = gmt(modified)
        return body

    def order_webhook(self, order_id: int, status: str, modified: datetime) -> dict[str, Any]:
        """An `order.updated` body of an order the fake holds, now in `status`."""
        order = self.orders[order_id]
        order["status"], order["date_modified_gmt"] = status, gmt(modified)
        return dict(order)


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def webhook(topic: str, payload: dict[str, Any], delivery_id: str | None = None, secret: str = WEBHOOK_SECRET):
    """(body, headers) of a webhook delivery as WooCommerce sends it, signed with `secret`."""
    body = json.dumps(payload).encode()
    resource, event = topic.split(".", 1)
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)",
        "X-WC-Webhook-Source": "https://shop.test/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(body, secret),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery_id or uuid4().hex,
    }
