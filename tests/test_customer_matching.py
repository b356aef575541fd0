"""What a platform's customer record means for matching, without I/O: a phone as a website keeps
it compared with a proved number, Magento's phone search value, the status and address read
from WooCommerce's and Magento's records."""

from __future__ import annotations

import pytest

from integrations.customers import national_number, same_phone
from integrations.magento import customers as magento
from integrations.shipments import Parcel
from integrations.woocommerce import customers as woo

UPS = Parcel("UPS", "1Z999AA10123456784", None)


@pytest.mark.parametrize(
    ("typed", "contact", "same"),
    [
        ("(555) 123-4567", "+15551234567", True),
        ("+1 555 123 4567", "+15551234567", True),
        ("555.123.4567", "+15551234567", True),
        ("1-555-123-4567", "+15551234567", True),
        ("(555) 999-4567", "+15551234567", False),  # the same last four digits only
        ("+44 555 123 4567", "+15551234567", False),  # another country
        ("07700 900123", "+447700900123", True),  # read in the contact's country
        ("0912 345 678", "+886912345678", True),
        ("", "+15551234567", False),
        (None, "+15551234567", False),
        ("call me", "+15551234567", False),
    ],
)
def test_a_phone_as_typed_on_a_website_is_compared_normalised(typed, contact, same):
    assert same_phone(typed, contact) is same


def test_the_national_digits_and_magentos_like_value():
    assert national_number("+15551234567") == "5551234567"
    assert national_number("+886912345678") == "912345678"
    assert magento.digits_like("+15551234567") == "%5%5%5%1%2%3%4%5%6%7%"


@pytest.mark.parametrize(
    ("status", "parcel", "ours"),
    [
        ("pending", None, "pending_payment"),
        ("on-hold", None, "pending_payment"),
        ("processing", None, "paid"),
        ("processing", UPS, "shipped"),
        ("completed", None, "shipped"),
        ("cancelled", None, "cancelled"),
        ("failed", None, "cancelled"),
        ("refunded", UPS, "cancelled"),
    ],
)
def test_woocommerce_statuses(status, parcel, ours):
    assert woo.order_status({"status": status}, parcel) == ours


@pytest.mark.parametrize(
    ("state", "paid", "parcel", "ours"),
    [
        ("new", 0, None, "pending_payment"),
        ("pending_payment", 0, None, "pending_payment"),
        ("holded", 20, None, "paid"),
        ("processing", 20, None, "paid"),
        ("processing", 20, UPS, "shipped"),
        ("complete", 20, None, "shipped"),
        ("canceled", 0, None, "cancelled"),
        ("closed", 20, None, "cancelled"),
    ],
)
def test_magento_states(state, paid, parcel, ours):
    assert magento.order_status({"state": state, "total_paid": paid}, parcel) == ours


def test_woocommerce_saved_address_is_the_shipping_one_else_billing():
    home = {"address_1": "12 Main St", "address_2": "", "city": "Springfield", "state": "IL", "postcode": "62701"}
    body = {"id": 7, "shipping": {**home, "address_1": "", "country": "US"}, "billing": {**home, "country": "US"}}
    assert woo.platform_customer(body).default_address == "12 Main St, Springfield, IL 62701, US"
    body["shipping"] = {**home, "address_1": "1 Dock Rd", "country": "US"}
    assert woo.platform_customer(body).default_address == "1 Dock Rd, Springfield, IL 62701, US"
    assert woo.platform_customer({"id": 8, "shipping": {}, "billing": {}}).default_address is None


def test_magento_saved_address_is_the_default_shipping_one():
    billing = {"id": 1, "street": ["9 Elm St"], "city": "Dayton", "region": {"region_code": "OH"}, "postcode": "45402"}
    shipping = {"id": 2, "street": ["12 Main St", "Apt 3"], "city": "Springfield", "region": {"region_code": "IL"}}
    shipping |= {"postcode": "62701", "country_id": "US"}
    record = {"default_billing": "1", "default_shipping": "2", "addresses": [billing, shipping]}
    assert magento.default_address(record) == "12 Main St, Apt 3, Springfield, IL 62701, US"
    record["default_shipping"] = None
    assert magento.default_address(record) == "9 Elm St, Dayton, OH 45402"
    assert magento.default_address({"addresses": []}) is None


def test_a_magento_orders_lines_are_its_top_items_named_by_the_variants_sku():
    item = {
        "entity_id": 7,
        "increment_id": "000000007",
        "state": "processing",
        "created_at": "2026-12-01 09:00:00",
        "grand_total": 94,
        "order_currency_code": "USD",
        "items": [
            {"item_id": 1, "name": "Harbor Rain Jacket", "sku": "MJ01-L-Navy", "qty_ordered": 1.0},
            {"item_id": 2, "name": "Harbor Rain Jacket-L-Navy", "sku": "MJ01-L-Navy", "parent_item_id": 1},
        ],
    }
    order = magento.website_order(item, None)
    assert order.items == [(1, "Harbor Rain Jacket")] and order.products == ("MJ01-L-Navy",)
    assert (order.name, order.created_at, order.total_cents, order.currency) == (
        "#000000007",
        "2026-12-01",
        9400,
        "USD",
    )
