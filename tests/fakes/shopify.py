"""A fake Shopify Admin GraphQL API on loopback: it answers our client's operations by name
(`operationName`), from a product set with variants, options and stock per location, with
`extensions.cost` on every answer and THROTTLED answers on demand; bulk operations of the catalog
(`bulkOperationRunQuery`, polled through `node(id:)`, a grouped JSONL file served on loopback at
the operation's `url`, which it fails on demand); products' translations per locale
(`translations(locale:)` in the paged query, the bulk query and `product(id:)`), as Shopify
gives them: only the keys translated; it records what it gets, and signs webhooks as Shopify
does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aiohttp import web

from tests.fakes.providers import FakeProvider

TOKEN = "shpat_test_token"
WEBHOOK_SECRET = "shopify-test-secret"
VERSION = "2026-10"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def product(
    number: int,
    handle: str,
    title: str,
    product_type: str,
    variants: list[tuple[str, str, str, dict[int, int]]],
    price: str = "59.00",
    status: str = "ACTIVE",
) -> dict[str, Any]:
    """A product as the fake keeps it: variants are (sku, size, colour, {location: available})."""
    return {
        "id": f"gid://shopify/Product/{number}",
        "handle": handle,
        "title": title,
        "descriptionHtml": f"<p>{title}, made to last.</p>",
        "productType": product_type,
        "tags": [product_type.lower()],
        "status": status,
        "updatedAt": iso(T0),
        "image": f"https://cdn.shopify.test/{handle}.jpg",
        "translations": {},  # locale -> key (title, body_html) -> value
        "variants": [
            {
                "id": f"gid://shopify/ProductVariant/{number * 100 + i}",
                "sku": sku,
                "price": price,
                "options": [("Size", size), ("Color", colour.title())],
                "item": f"gid://shopify/InventoryItem/{number * 100 + i}",
                "levels": {loc: (qty, T0) for loc, qty in levels.items()},
            }
            for i, (sku, size, colour, levels) in enumerate(variants)
        ],
    }


def default_products() -> list[dict[str, Any]]:
    return [
        product(
            1,
            "harbor-rain-jacket",
            "Harbor Rain Jacket",
            "Jacket",
            [
                ("HRJ-S-NAVY", "S", "navy", {1: 2, 2: 1}),
                ("HRJ-M-NAVY", "M", "navy", {1: 0, 2: 0}),
                ("HRJ-M-RED", "M", "red", {1: 4}),
                ("HRJ-L-NAVY", "L", "navy", {2: 5}),
            ],
            price="89.00",
        ),
        product(
            2,
            "summit-trail-runner",
            "Summit Trail Runner",
            "Sneakers",
            [("STR-9-GRY", "9", "grey", {1: 6}), ("STR-10-GRY", "10", "grey", {1: 0})],
            price="120.00",
        ),
        product(3, "cozy-wool-socks", "Cozy Wool Socks", "Socks", [("CWS-OS-OAT", "OS", "oat", {1: 30})], "14.00"),
        product(4, "draft-scarf", "Draft Scarf", "Scarf", [("DS-OS", "OS", "red", {1: 3})], "20.00", "DRAFT"),
        product(
            5,
            "linen-shirt",
            "Linen Shirt",
            "Shirt",
            [
                ("LS-S-WHT", "S", "white", {1: 1}),
                ("LS-M-WHT", "M", "white", {1: 2}),
                ("LS-L-WHT", "L", "white", {1: 3}),
            ],
            "45.00",
        ),
    ]


class FakeShopify(FakeProvider):
    """`POST /admin/api/{version}/graphql.json`."""

    def __init__(self) -> None:
        super().__init__()
        self.products: list[dict[str, Any]] = default_products()
        self.drafts: dict[str, dict[str, Any]] = {}
        self.customers: list[dict[str, Any]] = []  # see `customer()`: with their orders
        self.throttle_next = 0  # the next N queries are answered THROTTLED
        self.throttle_ops: dict[str, int] = {}  # operation name -> the next N of it are answered THROTTLED
        self.available = 1000.0
        self.maximum = 1000.0
        self.restore_rate = 50.0
        self.requested_cost = 200.0
        self.bulk: dict[str, dict[str, Any]] = {}  # bulk operations by id
        self.bulk_polls = 1  # a bulk operation answers RUNNING this many times, then is done
        self.bulk_error: str | None = None  # it ends FAILED with this error code (e.g. INTERNAL_SERVER_ERROR)
        self.bulk_refusal: dict[str, Any] | None = None  # a userError answering bulkOperationRunQuery
        self.downloads: list[str] = []  # the bulk files read, with the headers sent: (path, token)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/admin/api/{version}/graphql.json", self.graphql)
        app.router.add_get("/bulk/{number}.jsonl", self.bulk_file)

    # --- what the tests change -----------------------------------------------------------------

    def find(self, handle: str) -> dict[str, Any]:
        return next(p for p in self.products if p["handle"] == handle)

    def variant(self, sku: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for p in self.products:
            for v in p["variants"]:
                if v["sku"] == sku:
                    return p, v
        raise KeyError(sku)

    def translate(self, handle: str, locale: str, **values: str | None) -> None:
        """Set (or, with None, remove) a product's translated `title` and `body_html` in `locale`;
        its `updatedAt` stays (the case the sync must not count on)."""
        held = self.find(handle)["translations"].setdefault(locale, {})
        for key, value in values.items():
            if value is None:
                held.pop(key, None)
            else:
                held[key] = value

    def translation_queries(self) -> list[str]:
        """The operations whose query asked for translations."""
        return [r["operation"] for r in self.requests if "translations(" in r["query"]]

    def operations(self) -> list[str]:
        return [r["operation"] for r in self.requests]

    # --- the API ----------------------------------------------------------------------------------

    def _cost(self, available: float) -> dict[str, Any]:
        return {
            "requestedQueryCost": self.requested_cost,
            "actualQueryCost": None if available < self.requested_cost else 20,
            "throttleStatus": {
                "maximumAvailable": self.maximum,
                "currentlyAvailable": available,
                "restoreRate": self.restore_rate,
            },
        }

    async def graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        record = {
            "operation": body.get("operationName"),
            "variables": body.get("variables") or {},
            "query": body.get("query", ""),
            "token": request.headers.get("X-Shopify-Access-Token"),
            "version": request.match_info["version"],
            "at": datetime.now(UTC),
        }
        self.requests.append(record)
        failure = await self._gate()
        if failure is not None:
            return failure
        if record["token"] != TOKEN:
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        if self.throttle_next or self.throttle_ops.get(record["operation"], 0):
            if self.throttle_next:
                self.throttle_next -= 1
            else:
                self.throttle_ops[record["operation"]] -= 1
            available = 30.0
            return web.json_response(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": self._cost(available)},
                }
            )
        handler = getattr(self, f"op_{record['operation']}", None)
        if handler is None:
            return web.json_response({"errors": [{"message": f"unknown operation {record['operation']}"}]})
        data = handler(record["variables"])
        if record["operation"] == "DraftOrderCreate" and (lost := self._made_then_fail()) is not None:
            return lost
        return web.json_response({"data": data, "extensions": {"cost": self._cost(self.available)}})

    def _variant_node(self, v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": v["id"],
            "sku": v["sku"],
            "price": v["price"],
            "selectedOptions": [{"name": n, "value": value} for n, value in v["options"]],
            "inventoryItem": {
                "id": v["item"],
                "inventoryLevels": {
                    "nodes": [
                        {
                            "location": {"id": f"gid://shopify/Location/{loc}"},
                            "quantities": [{"name": "available", "quantity": qty}],
                            "updatedAt": iso(at),
                        }
                        for loc, (qty, at) in v["levels"].items()
                    ]
                },
            },
        }

    def _page(self, items: list, first: int, after: str | None) -> tuple[list, dict[str, Any]]:
        start = int(after) if after else 0
        chunk = items[start : start + first]
        end = start + len(chunk)
        return chunk, {"hasNextPage": end < len(items), "endCursor": str(end) if chunk else None}

    def _variants(self, p: dict[str, Any], first: int, after: str | None) -> dict[str, Any]:
        chunk, info = self._page(p["variants"], first, after)
        return {"pageInfo": info, "nodes": [self._variant_node(v) for v in chunk]}

    def _matching(self, query: str | None) -> list[dict[str, Any]]:
        products = sorted(self.products, key=lambda p: p["updatedAt"])
        if query and query.startswith("updated_at:>"):
            since = query.removeprefix("updated_at:>").strip("'\"")
            products = [p for p in products if p["updatedAt"] > since]
        return products

    @staticmethod
    def _translations(p: dict[str, Any], locale: str) -> list[dict[str, Any]]:
        held = p["translations"].get(locale, {})
        return [{"key": key, "value": value, "locale": locale} for key, value in held.items()]

    def op_ProductTranslations(self, variables: dict[str, Any]) -> dict[str, Any]:
        p = next((p for p in self.products if p["id"] == variables["id"]), None)
        if p is None:
            return {"product": None}
        return {"product": {"id": p["id"], "translations": self._translations(p, variables["locale"])}}

    def op_ProductsCount(self, variables: dict[str, Any]) -> dict[str, Any]:
        return {"productsCount": {"count": len(self._matching(variables.get("query")))}}

    def op_CatalogProducts(self, variables: dict[str, Any]) -> dict[str, Any]:
        chunk, info = self._page(self._matching(variables.get("query")), variables["first"], variables.get("after"))
        nodes = []
        for p in chunk:
            node = {k: p[k] for k in ("id", "handle", "title", "descriptionHtml", "productType", "tags", "status")}
            node["updatedAt"] = p["updatedAt"]
            node["featuredMedia"] = {"preview": {"image": {"url": p["image"]}}}
            first = int(variables.get("variantsFirst") or 20)
            node["variants"] = self._variants(p, first, None)
            if "translations(locale: $locale)" in self.requests[-1]["query"]:
                node["translations"] = self._translations(p, variables["locale"])
            nodes.append(node)
        return {"products": {"pageInfo": info, "nodes": nodes}}

    def op_ProductVariants(self, variables: dict[str, Any]) -> dict[str, Any]:
        p = next(p for p in self.products if p["id"] == variables["id"])
        return {"product": {"variants": self._variants(p, variables["first"], variables.get("after"))}}

    def op_BulkRunQuery(self, variables: dict[str, Any]) -> dict[str, Any]:
        if self.bulk_refusal is not None:
            return {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [self.bulk_refusal]}}
        number = len(self.bulk) + 1
        operation = {
            "id": f"gid://shopify/BulkOperation/{number}",
            "status": "CREATED",
            "query": variables["query"],
            "polls": 0,
            "products": list(self._matching(None)),  # what Shopify read when the operation ran
        }
        if m := re.search(r'translations\(locale: "([^"]+)"\)', variables["query"]):
            operation["locale"] = m.group(1)
        self.bulk[operation["id"]] = operation
        return {
            "bulkOperationRunQuery": {"bulkOperation": {"id": operation["id"], "status": "CREATED"}, "userErrors": []}
        }

    def op_BulkOperationStatus(self, variables: dict[str, Any]) -> dict[str, Any]:
        operation = self.bulk.get(variables["id"])
        if operation is None:
            return {"node": None}
        operation["polls"] += 1
        running = operation["polls"] <= self.bulk_polls
        status = "RUNNING" if running else ("FAILED" if self.bulk_error else "COMPLETED")
        number = operation["id"].rsplit("/", 1)[1]
        done = status == "COMPLETED" and operation["products"]
        return {
            "node": {
                "id": operation["id"],
                "status": status,
                "errorCode": self.bulk_error if status == "FAILED" else None,
                "objectCount": str(sum(1 + len(p["variants"]) for p in operation["products"])),
                "rootObjectCount": str(len(operation["products"])),
                "url": f"{self.url}/bulk/{number}.jsonl" if done else None,
                "partialDataUrl": None,
            }
        }

    def bulk_lines(self, products: list[dict[str, Any]], locale: str | None = None):
        """The operation's file, grouped: a product (its translations on its line: a list, not a
        connection), then each variant followed by its levels."""
        for p in products:
            node = {k: p[k] for k in ("id", "handle", "title", "descriptionHtml", "productType", "tags", "status")}
            node["updatedAt"] = p["updatedAt"]
            node["featuredMedia"] = {"preview": {"image": {"url": p["image"]}}}
            if locale is not None:
                node["translations"] = self._translations(p, locale)
            yield node
            for v in p["variants"]:
                full = self._variant_node(v)
                levels = full["inventoryItem"].pop("inventoryLevels")["nodes"]
                yield {**full, "__parentId": p["id"]}
                for level in levels:
                    yield {**level, "__parentId": v["id"]}

    async def bulk_file(self, request: web.Request) -> web.StreamResponse:
        self.downloads.append(request.headers.get("X-Shopify-Access-Token") or "")
        operation = self.bulk.get(f"gid://shopify/BulkOperation/{request.match_info['number']}")
        if operation is None:
            return web.Response(status=404)
        response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
        await response.prepare(request)
        chunk: list[str] = []
        for line in self.bulk_lines(operation["products"], operation.get("locale")):
            chunk.append(json.dumps(line))
            if len(chunk) >= 500:
                await response.write(("\n".join(chunk) + "\n").encode())
                chunk = []
        await response.write(("\n".join(chunk) + "\n").encode() if chunk else b"")
        await response.write_eof()
        return response

    def op_DraftOrdersTagged(self, variables: dict[str, Any]) -> dict[str, Any]:
        tag = variables["query"].removeprefix("tag:")
        found = [d for d in self.drafts.values() if tag in d["input"].get("tags", [])]
        return {"draftOrders": {"nodes": [{"id": d["id"], "invoiceUrl": d["invoiceUrl"]} for d in found[:1]]}}

    def op_DraftOrderCreate(self, variables: dict[str, Any]) -> dict[str, Any]:
        data = variables["input"]
        known = {v["id"]: v for p in self.products for v in p["variants"]}
        errors = [
            {"field": ["lineItems"], "message": f"variant {line['variantId']} not found"}
            for line in data.get("lineItems", [])
            if line.get("variantId") not in known
        ]
        if errors:
            return {"draftOrderCreate": {"draftOrder": None, "userErrors": errors}}
        goods = sum(float(known[line["variantId"]]["price"]) * line["quantity"] for line in data["lineItems"])
        discount = float((data.get("appliedDiscount") or {}).get("value", 0))
        shipping = float(data["shippingLine"]["priceWithCurrency"]["amount"])
        number = len(self.drafts) + 1
        draft = {
            "id": f"gid://shopify/DraftOrder/{9000 + number}",
            "invoiceUrl": f"https://shop.test.myshopify.com/1/invoices/{uuid4().hex}",
            "input": data,
            "total": f"{goods - discount + shipping:.2f}",
        }
        self.drafts[draft["id"]] = draft
        return {
            "draftOrderCreate": {
                "draftOrder": {
                    "id": draft["id"],
                    "invoiceUrl": draft["invoiceUrl"],
                    "totalPriceSet": {"shopMoney": {"amount": draft["total"], "currencyCode": "USD"}},
                },
                "userErrors": [],
            }
        }

    def op_DraftOrderDelete(self, variables: dict[str, Any]) -> dict[str, Any]:
        self.drafts.pop(variables["input"]["id"], None)
        return {"draftOrderDelete": {"deletedId": variables["input"]["id"], "userErrors": []}}

    def op_CustomerByContact(self, variables: dict[str, Any]) -> dict[str, Any]:
        # Shopify's search syntax as our client sends it: email:"a@b.c" or phone:"+1555...".
        field, _, value = variables["query"].partition(":")
        value = value.strip('"')
        found = [c for c in self.customers if (c.get(field) or "").lower() == value.lower()]
        return {"customers": {"nodes": [{"id": c["id"], "defaultAddress": c.get("defaultAddress")} for c in found[:1]]}}

    def op_CustomerOrders(self, variables: dict[str, Any]) -> dict[str, Any]:
        found = next((c for c in self.customers if c["id"] == variables["id"]), None)
        if found is None:
            return {"customer": None}
        newest = sorted(found["orders"], key=lambda o: o["createdAt"], reverse=True)
        return {"customer": {"orders": {"nodes": newest[: variables["first"]]}}}

    # --- webhooks -----------------------------------------------------------------------------------

    def product_webhook(self, handle: str, updated_at: datetime) -> dict[str, Any]:
        """A `products/update` body (Shopify's REST JSON) of the product as the fake holds it."""
        p = self.find(handle)
        number = int(p["id"].rsplit("/", 1)[1])
        return {
            "id": number,
            "admin_graphql_api_id": p["id"],
            "handle": p["handle"],
            "title": p["title"],
            "body_html": p["descriptionHtml"],
            "product_type": p["productType"],
            "tags": ", ".join(p["tags"]),
            "status": p["status"].lower(),
            "updated_at": iso(updated_at),
            "options": [{"name": "Size", "position": 1}, {"name": "Color", "position": 2}],
            "image": {"src": p["image"]},
            "variants": [
                {
                    "id": int(v["id"].rsplit("/", 1)[1]),
                    "sku": v["sku"],
                    "price": v["price"],
                    "option1": v["options"][0][1],
                    "option2": v["options"][1][1],
                    "option3": None,
                    "inventory_item_id": int(v["item"].rsplit("/", 1)[1]),
                    "inventory_quantity": sum(q for q, _ in v["levels"].values()),
                }
                for v in p["variants"]
            ],
        }


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def webhook(topic: str, payload: dict[str, Any], webhook_id: str | None = None, secret: str = WEBHOOK_SECRET):
    """(body, headers) of a webhook delivery as Shopify sends it, signed with `secret`."""
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": "shop.test.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid4()),
        "X-Shopify-Event-Id": str(uuid4()),
        "X-Shopify-Triggered-At": iso(datetime.now(UTC)),
        "X-Shopify-API-Version": VERSION,
    }


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def customer(
    number: int,
    email: str | None,
    phone: str | None,
    address: dict[str, Any] | None = None,
    orders: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A customer as the fake keeps it, with the orders `website_order` makes."""
    return {
        "id": f"gid://shopify/Customer/{number}",
        "email": email,
        "phone": phone,
        "defaultAddress": address,
        "orders": orders or [],
    }


def website_order(
    number: int,
    created: datetime,
    items: list[tuple],  # (name, quantity) or (name, quantity, product number)
    financial: str = "PAID",
    fulfillment: str = "UNFULFILLED",
    tracking: tuple[str, str, str | None] | None = None,  # (company, number, url)
    delivered: bool = False,
    cancelled: bool = False,
    total: str | None = None,  # totalPriceSet's shopMoney amount, in USD
) -> dict[str, Any]:
    """An order node as the Admin API gives it (the fields our CustomerOrders query asks)."""
    fulfillments = []
    if tracking is not None:
        company, tracking_number, url = tracking
        fulfillments.append(
            {
                "status": "SUCCESS",
                "displayStatus": "DELIVERED" if delivered else "IN_TRANSIT",
                "trackingInfo": [{"company": company, "number": tracking_number, "url": url}],
            }
        )
    return {
        "id": f"gid://shopify/Order/{number}",
        "name": f"#{number}",
        "createdAt": iso(created),
        "cancelledAt": iso(created + timedelta(hours=1)) if cancelled else None,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": fulfillment,
        "totalPriceSet": {"shopMoney": {"amount": total, "currencyCode": "USD"}} if total else None,
        "lineItems": {
            "nodes": [
                {
                    "name": name,
                    "quantity": quantity,
                    "product": {"id": f"gid://shopify/Product/{product}"} if product else None,
                }
                for name, quantity, *rest in items
                for product in [rest[0] if rest else None]
            ]
        },
        "fulfillments": fulfillments,
    }
