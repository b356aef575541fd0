"""A fake Magento 2 REST API on loopback (`/rest/{store}/V1/...`): products (configurable with
their children, and simple), attribute options, MSI source items, guest carts that become
orders, orders and shipments, customers (`customers/search`, with the default billing address's
`billing_telephone` as Magento joins it), each list filtered (filters in a group ORed, groups
ANDed), sorted and paged by searchCriteria as Magento does; products' names and descriptions per
store view (the store code in the path), a store view without a value of its own giving the
default one, as Magento does. It checks the bearer token, records every request, and can lose the
answer of an order it placed."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aiohttp import web

from tests.fakes.providers import FakeProvider

TOKEN = "magento-integration-token"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SIZES = {"S": "167", "M": "168", "L": "169", "9": "180", "10": "181"}
COLOURS = {"Navy": "49", "Red": "58", "Grey": "52", "Oat": "60"}


def mtime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def simple(entity: int, sku: str, name: str, price: float, size: str | None, colour: str | None, visible: bool) -> dict:
    custom = [{"attribute_code": "url_key", "value": re.sub(r"[^a-z0-9]+", "-", name.lower())}]
    if size:
        custom.append({"attribute_code": "size", "value": SIZES[size]})
    if colour:
        custom.append({"attribute_code": "color", "value": COLOURS[colour]})
    custom.append({"attribute_code": "description", "value": f"<p>{name}, made to last.</p>"})
    return {
        "id": entity,
        "sku": sku,
        "name": name,
        "price": price,
        "status": 1,
        "visibility": 4 if visible else 1,
        "type_id": "simple",
        "created_at": mtime(T0),
        "updated_at": mtime(T0),
        "media_gallery_entries": [
            {
                "id": entity,
                "media_type": "image",
                "position": 1,
                "disabled": False,
                "types": ["image"],
                "file": f"/{sku[0].lower()}/{sku[1].lower()}/{sku.lower()}.jpg",
            }
        ],
        "custom_attributes": custom,
    }


def default_catalog() -> tuple[list[dict], dict[str, list[str]], list[dict]]:
    """(products, configurable sku -> children skus, source items)."""
    jacket = simple(1, "MJ01", "Harbor Rain Jacket", 89.0, None, None, True)
    jacket["type_id"], jacket["price"] = "configurable", 0
    children = [
        simple(2, "MJ01-S-Navy", "Harbor Rain Jacket-S-Navy", 89.0, "S", "Navy", False),
        simple(3, "MJ01-M-Navy", "Harbor Rain Jacket-M-Navy", 89.0, "M", "Navy", False),
        simple(4, "MJ01-M-Red", "Harbor Rain Jacket-M-Red", 89.0, "M", "Red", False),
        simple(5, "MJ01-L-Navy", "Harbor Rain Jacket-L-Navy", 89.0, "L", "Navy", False),
    ]
    runner = simple(10, "TR01", "Summit Trail Runner", 120.0, None, None, True)
    runner["type_id"], runner["price"] = "configurable", 0
    runner_children = [
        simple(11, "TR01-9-Grey", "Summit Trail Runner-9-Grey", 120.0, "9", "Grey", False),
        simple(12, "TR01-10-Grey", "Summit Trail Runner-10-Grey", 120.0, "10", "Grey", False),
    ]
    socks = simple(20, "CWS01", "Cozy Wool Socks", 14.0, None, "Oat", True)
    disabled = simple(30, "DS01", "Draft Scarf", 20.0, None, "Red", True)
    disabled["status"] = 2
    products = [jacket, *children, runner, *runner_children, socks, disabled]
    links = {"MJ01": [c["sku"] for c in children], "TR01": [c["sku"] for c in runner_children]}
    stock = [
        ("MJ01-S-Navy", "default", 2, 1),
        ("MJ01-S-Navy", "warehouse_b", 1, 1),
        ("MJ01-M-Navy", "default", 0, 0),
        ("MJ01-M-Red", "default", 4, 1),
        ("MJ01-M-Red", "warehouse_b", 7, 0),  # out of stock at that source: counts 0
        ("MJ01-L-Navy", "warehouse_b", 5, 1),
        ("TR01-9-Grey", "default", 6, 1),
        ("TR01-10-Grey", "default", 0, 0),
        ("CWS01", "default", 30, 1),
        ("DS01", "default", 3, 1),
    ]
    items = [{"sku": s, "source_code": c, "quantity": q, "status": st} for s, c, q, st in stock]
    return products, links, items


def _criteria(query) -> tuple[list[list[tuple[str, str, str]]], int, int, str | None, bool]:
    """(filter groups, page size, page, sort field, descending)."""
    groups: dict[str, dict[str, dict[str, str]]] = {}
    for key, value in query.items():
        m = re.fullmatch(r"searchCriteria\[filter_groups\]\[(\d+)\]\[filters\]\[(\d+)\]\[(\w+)\]", key)
        if m:
            groups.setdefault(m.group(1), {}).setdefault(m.group(2), {})[m.group(3)] = value
    out = [[(f["field"], f["value"], f.get("condition_type", "eq")) for f in g.values()] for g in groups.values()]
    size = int(query.get("searchCriteria[pageSize]", "20"))
    page = int(query.get("searchCriteria[currentPage]", "1"))
    descending = query.get("searchCriteria[sortOrders][0][direction]", "ASC").upper() == "DESC"
    return out, size, page, query.get("searchCriteria[sortOrders][0][field]"), descending


def _matches(item: dict, field: str, value: str, condition: str) -> bool:
    have = str(item.get(field, "") if item.get(field) is not None else "")
    if condition == "eq":
        return have == value
    if condition == "in":
        return have in value.split(",")
    if condition == "gt":
        return have > value
    if condition == "gteq":
        return have >= value
    if condition == "like":  # SQL LIKE: % any run of characters, case-insensitive
        pattern = ".*".join(re.escape(part) for part in value.lower().split("%"))
        return re.fullmatch(pattern, have.lower(), re.S) is not None
    raise web.HTTPBadRequest(text=f"condition_type {condition} not supported by the fake")


def customer_address(
    number: int, street: str, city: str, region: str, postcode: str, telephone: str, country: str = "US"
) -> dict[str, Any]:
    """A customer address; the first is the default billing and shipping one."""
    return {
        "id": number,
        "firstname": "Dana",
        "lastname": "Reyes",
        "street": [street],
        "city": city,
        "region": {"region_code": region, "region": region, "region_id": 23},
        "postcode": postcode,
        "country_id": country,
        "telephone": telephone,
    }


def customer(number: int, email: str, addresses: list[dict[str, Any]]) -> dict[str, Any]:
    """A customer of `customers/search` with its addresses, the first the default ones."""
    first = addresses[0]["id"] if addresses else None
    return {
        "id": number,
        "email": email,
        "firstname": "Dana",
        "lastname": "Reyes",
        "website_id": 1,
        "default_billing": str(first) if first else None,
        "default_shipping": str(first) if first else None,
        "addresses": [
            {**a, "customer_id": number, "default_billing": a["id"] == first, "default_shipping": a["id"] == first}
            for a in addresses
        ],
    }


def website_order(
    entity: int,
    created: datetime,
    items: list[tuple[str, int, str]],  # (name, quantity, the variant's sku)
    state: str = "processing",
    customer_id: int | None = None,
    email: str = "",
    total: float = 0.0,
) -> dict[str, Any]:
    """An order placed on the website (a guest's when `customer_id` is None), as `GET orders`
    gives it: a configurable's line is its parent item with the child's sku, and the child item."""
    lines = []
    for i, (name, quantity, sku) in enumerate(items, start=1):
        parent = {"item_id": entity * 10 + i, "name": name, "sku": sku, "qty_ordered": quantity}
        lines.append({**parent, "product_type": "configurable" if "-" in sku else "simple"})
        if "-" in sku:
            lines.append(
                {
                    **parent,
                    "item_id": entity * 100 + i,
                    "name": f"{name}-{sku}",
                    "product_type": "simple",
                    "parent_item_id": entity * 10 + i,
                }
            )
    return {
        "entity_id": entity,
        "increment_id": f"{entity:09d}",
        "state": state,
        "status": {"processing": "processing", "complete": "complete", "canceled": "canceled"}.get(state, "pending"),
        "customer_id": customer_id,
        "customer_is_guest": 1 if customer_id is None else 0,
        "customer_email": email,
        "grand_total": total,
        "total_paid": total if state in ("processing", "complete") else 0,
        "order_currency_code": "USD",
        "billing_address": {
            "address_type": "billing",
            "firstname": "Dana",
            "lastname": "Reyes",
            "street": ["40 Harbor Rd"],
            "city": "Portland",
            "region": "Maine",
            "region_code": "ME",
            "postcode": "04101",
            "country_id": "US",
            "email": email,
        },
        "created_at": mtime(created),
        "updated_at": mtime(created),
        "items": lines,
    }


class FakeMagento(FakeProvider):
    """`/rest/{store}/V1/...` with `Authorization: Bearer TOKEN`."""

    def __init__(self) -> None:
        super().__init__()
        self.products, self.links, self.source_items = default_catalog()
        self.carts: dict[str, dict[str, Any]] = {}
        self.orders: list[dict[str, Any]] = []
        self.shipments: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.customers: list[dict[str, Any]] = []
        self.lose_order_answers = 0  # the next N placed orders are placed, but answered 503
        self.store_values: dict[str, dict[str, dict[str, str]]] = {}  # store code -> sku -> name, description
        self.stores = {"default", "all"}  # store views that exist; another code is a 404, as in Magento

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/rest/{store}/V1/{path:.*}", self.handle)

    # --- what the tests change -----------------------------------------------------------------

    def find(self, sku: str) -> dict[str, Any]:
        return next(p for p in self.products if p["sku"] == sku)

    def set_stock(self, sku: str, source: str, quantity: int, status: int = 1) -> None:
        for item in self.source_items:
            if item["sku"] == sku and item["source_code"] == source:
                item["quantity"], item["status"] = quantity, status
                return
        self.source_items.append({"sku": sku, "source_code": source, "quantity": quantity, "status": status})

    def set_store_value(self, store: str, sku: str, **values: str | None) -> None:
        """Give a product its own `name` or `description` in a store view (None: back to the default)."""
        self.stores.add(store)
        held = self.store_values.setdefault(store, {}).setdefault(sku, {})
        for key, value in values.items():
            if value is None:
                held.pop(key, None)
            else:
                held[key] = value

    def _in_view(self, item: dict[str, Any], store: str) -> dict[str, Any]:
        """A product as a store view gives it: its values there, else the default ones."""
        own = self.store_values.get(store, {}).get(item.get("sku", ""), {})
        if not own:
            return item
        item = copy.deepcopy(item)
        if "name" in own:
            item["name"] = own["name"]
        if "description" in own:
            for a in item["custom_attributes"]:
                if a["attribute_code"] == "description":
                    a["value"] = own["description"]
        return item

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def ship(self, order: dict[str, Any], number: str, carrier: str, at: datetime) -> dict[str, Any]:
        shipment = {
            "entity_id": len(self.shipments) + 1,
            "order_id": order["entity_id"],
            "updated_at": mtime(at),
            "tracks": [{"track_number": number, "carrier_code": carrier, "title": carrier.upper()}],
        }
        self.shipments.append(shipment)
        order["state"], order["updated_at"] = "complete", mtime(at)
        return shipment

    # --- the API ---------------------------------------------------------------------------------

    def _list(self, items: list[dict], query) -> dict[str, Any]:
        groups, size, page, sort, descending = _criteria(query)
        found = [i for i in items if all(any(_matches(i, *f) for f in group) for group in groups)]
        if sort:
            found.sort(key=lambda i: str(i.get(sort, "")), reverse=descending)
        start = (page - 1) * size
        return {"items": found[start : start + size], "search_criteria": {}, "total_count": len(found)}

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            {
                "method": request.method,
                "path": path,
                "store": request.match_info["store"],
                "query": dict(request.query),
                "json": body,
                "token": request.headers.get("Authorization", "").removeprefix("Bearer "),
            }
        )
        failure = await self._gate()
        if failure is not None:
            return failure
        if self.requests[-1]["token"] != TOKEN:
            return web.json_response(
                {
                    "message": "The consumer isn't authorized to access %resources.",
                    "parameters": {"resources": "Magento_Catalog::products"},
                },
                status=401,
            )
        if request.match_info["store"] not in self.stores:
            message = "The store that was requested wasn't found. Verify the store and try again."
            return web.json_response({"message": message}, status=404)
        return self._route(request.method, path, request.query, body, request.match_info["store"])

    def _route(self, method: str, path: str, query, body: Any, store: str = "default") -> web.Response:
        ok = web.json_response
        if method == "GET" and path == "products":
            return ok(self._list([self._in_view(p, store) for p in self.products], query))
        if m := re.fullmatch(r"products/attributes/(\w+)/options", path):
            table = {"size": SIZES, "color": COLOURS}.get(m.group(1), {})
            return ok([{"label": " ", "value": ""}, *({"label": k, "value": v} for k, v in table.items())])
        if m := re.fullmatch(r"configurable-products/(.+)/children", path):
            return ok([self.find(sku) for sku in self.links.get(m.group(1), [])])
        if m := re.fullmatch(r"products/(.+)", path):
            found = [self._in_view(p, store) for p in self.products if p["sku"] == m.group(1)]
            return (
                ok(found[0]) if found else ok({"message": "The product that was requested doesn't exist."}, status=404)
            )
        if path == "inventory/source-items":
            return ok(self._list(self.source_items, query))
        if path == "orders" and method == "GET":
            return ok(self._list(self.orders, query))
        if path == "shipments":
            return ok(self._list(self.shipments, query))
        if path == "customers/search":
            listed = self._list([self._joined(c) for c in self.customers], query)
            listed["items"] = [{k: v for k, v in c.items() if k != "billing_telephone"} for c in listed["items"]]
            return ok(listed)
        if m := re.fullmatch(r"customers/(\d+)", path):
            found = [c for c in self.customers if str(c["id"]) == m.group(1)]
            if not found:
                return ok(
                    {
                        "message": "No such entity with customerId = %fieldValue",
                        "parameters": {"fieldValue": m.group(1)},
                    },
                    status=404,
                )
            return ok(found[0])
        if m := re.fullmatch(r"orders/(\d+)/comments", path):
            self.comments.append({"order": int(m.group(1)), **body["statusHistory"]})
            return ok(True)
        if path == "guest-carts" and method == "POST":
            masked = uuid4().hex
            self.carts[masked] = {"id": 500 + len(self.carts), "is_active": True, "items": [], "shipping": None}
            return ok(masked)
        if m := re.fullmatch(r"guest-carts/(\w+)(/.*)?", path):
            cart = self.carts.get(m.group(1))
            if cart is None:
                return ok({"message": 'No such entity with "cartId" = "%fieldValue"'}, status=404)
            return self._cart(method, m.group(1), cart, m.group(2) or "", body)
        return ok({"message": f"Request does not match any route: {method} {path}"}, status=404)

    @staticmethod
    def _joined(c: dict[str, Any]) -> dict[str, Any]:
        """A customer as the search filters it: the default billing address's telephone joined as
        `billing_telephone` (Magento's CustomerRepository does this join; it is not in the answer)."""
        billing = next((a for a in c["addresses"] if a.get("default_billing")), {})
        return {**c, "billing_telephone": billing.get("telephone")}

    def _cart(self, method: str, masked: str, cart: dict[str, Any], rest: str, body: Any) -> web.Response:
        ok = web.json_response
        if method == "GET" and rest == "":
            return ok({"id": cart["id"], "is_active": cart["is_active"], "items_count": len(cart["items"])})
        if not cart["is_active"]:
            return ok({"message": f'The cart isn\'t active. ("cartId" = "{masked}")'}, status=404)
        if rest == "/items" and method == "GET":
            return ok(cart["items"])
        if rest == "/items" and method == "POST":
            item = body["cartItem"]
            product = next((p for p in self.products if p["sku"] == item["sku"]), None)
            if product is None:
                return ok({"message": "The product that was requested doesn't exist."}, status=404)
            line = {
                "item_id": len(cart["items"]) + 1,
                "sku": item["sku"],
                "qty": item["qty"],
                "price": product["price"],
                "quote_id": masked,
            }
            cart["items"].append(line)
            return ok(line)
        if rest == "/estimate-shipping-methods":
            return ok([{"carrier_code": "flatrate", "method_code": "flatrate", "amount": 5, "available": True}])
        if rest == "/shipping-information":
            info = body["addressInformation"]
            for key in ("firstname", "lastname", "street", "city", "postcode", "country_id", "telephone", "email"):
                if not info["shipping_address"].get(key):
                    return ok({"message": f'"{key}" is required. Enter and try again.'}, status=400)
            cart["shipping"] = info
            return ok({"payment_methods": [{"code": "checkmo", "title": "Check / Money order"}], "totals": {}})
        if rest == "/order" and method == "PUT":
            if cart["shipping"] is None or not cart["items"]:
                return ok(
                    {"message": "The shipping method is missing. Select the shipping method and try again."}, status=400
                )
            cart["is_active"] = False
            order = {
                "entity_id": 9000 + len(self.orders) + 1,
                "increment_id": f"{100000001 + len(self.orders)}",
                "quote_id": cart["id"],
                "state": "new",
                "status": "pending",
                "updated_at": mtime(datetime.now(UTC)),
                "payment": {"method": body["paymentMethod"]["method"]},
                "items": [{"sku": i["sku"], "qty_ordered": i["qty"]} for i in cart["items"]],
                "shipping": cart["shipping"],
            }
            self.orders.append(order)
            if self.lose_order_answers:
                self.lose_order_answers -= 1
                return ok({"message": "Service Unavailable"}, status=503)
            return ok(order["entity_id"])
        return ok({"message": f"Request does not match any route: {method} guest-carts/{masked}{rest}"}, status=404)
