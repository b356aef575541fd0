"""Demo data: the catalog, FAQ entries and a demo shopper with a few orders, seeded once."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, select

from bot.delivery.estimates import add_business_days
from bot.store.database import Database
from bot.store.models import (
    ChannelIdentity,
    Customer,
    FaqEntry,
    Order,
    OrderItem,
    Product,
    RelatedProduct,
    Variant,
    utcnow,
)

CATALOG_FILE = Path(__file__).with_name("demo_catalog.json")
DEMO_CUSTOMER_ID = "demo-shopper"
DEMO_WEB_ADDRESS = "demo-shopper"
DEMO_PHONE = "+15555550100"


def seed_demo(db: Database, path: Path = CATALOG_FILE, products: bool = True) -> bool:
    """Load the demo catalog, FAQ and demo orders into an empty store. Returns True if it did.
    Without `products` (a shop whose catalog comes from its commerce platform) only the FAQ.
    (The dashboard's demo history is played through the bot afterwards: `service/demo_history.py`.)"""
    data = json.loads(path.read_text(encoding="utf-8"))

    def load_faq(session: Session) -> bool:
        if session.exec(select(FaqEntry.key).limit(1)).first() is not None:
            return False
        _faq(session, data["faq"])
        return True

    def load(session: Session) -> bool:
        if session.exec(select(Product.sku).limit(1)).first() is not None:
            return False
        for p in data["products"]:
            session.add(
                Product(
                    sku=p["sku"],
                    name=p["name"],
                    name_zh=p.get("name_zh"),
                    category=p["category"],
                    description=p.get("description", ""),
                    description_zh=p.get("description_zh"),
                    price_cents=int(Decimal(p["price"]) * 100),
                    tags=",".join(p.get("tags", [])),
                    colour_hex=p.get("colour_hex", "#888888"),
                )
            )
        session.flush()
        for p in data["products"]:
            for v in p["variants"]:
                session.add(
                    Variant(sku=v["sku"], product_sku=p["sku"], size=v["size"], colour=v["colour"], stock=v["stock"])
                )
            for related in p.get("related", []):
                session.add(RelatedProduct(product_sku=p["sku"], related_sku=related))
        _faq(session, data["faq"])
        session.flush()
        _demo_orders(session)
        return True

    return db.transaction(load if products else load_faq)


def _faq(session: Session, entries: list[dict]) -> None:
    for f in entries:
        session.add(
            FaqEntry(
                key=f["key"],
                question=f["question"],
                question_zh=f.get("question_zh"),
                answer=f["answer"],
                answer_zh=f.get("answer_zh"),
                examples=list(f.get("examples", [])) + list(f.get("examples_zh", [])),
            )
        )


def _demo_orders(session: Session) -> None:
    now = utcnow()
    session.add(
        Customer(
            id=DEMO_CUSTOMER_ID,
            display_name="Demo Shopper",
            phone=DEMO_PHONE,
            shipping_address="12 Harbour Street, Springfield 12345",
        )
    )
    session.flush()
    session.add(ChannelIdentity(channel="web", address=DEMO_WEB_ADDRESS, customer_id=DEMO_CUSTOMER_ID))
    session.add(ChannelIdentity(channel="phone", address=DEMO_PHONE, customer_id=DEMO_CUSTOMER_ID))
    plans = [
        ("delivered", ["RUN-TRAIL-9-", "SOCK-RUN-"], timedelta(days=9), None),
        ("shipped", ["DRS-MIDNIGHT-M-"], timedelta(days=3), ("UPS", "1Z999AA10123456784")),
        ("paid", ["JNS-"], timedelta(days=1), None),
    ]
    for status, prefixes, age, tracking in plans:
        order = Order(
            customer_id=DEMO_CUSTOMER_ID,
            status=status,
            shipping_address="12 Harbour Street, Springfield 12345",
            created_at=now - age,
        )
        session.add(order)
        session.flush()
        assert order.id is not None  # the flush gave it its id
        total = 0
        for prefix in prefixes:
            variant = session.exec(
                select(Variant).where(Variant.sku.startswith(prefix), Variant.stock > 0).order_by(Variant.sku)
            ).first()
            if variant is None:
                continue
            product = session.get(Product, variant.product_sku)
            assert product is not None  # a variant's product is a foreign key
            session.add(
                OrderItem(
                    order_id=order.id,
                    variant_sku=variant.sku,
                    name=product.name,
                    size=variant.size,
                    colour=variant.colour,
                    quantity=1,
                    unit_price_cents=product.price_cents,
                )
            )
            total += product.price_cents
        order.total_cents = total
        if tracking:
            order.carrier, order.tracking_number = tracking
            order.tracking_url = f"https://www.ups.com/track?tracknum={tracking[1]}"
            order.shipped_at = now - timedelta(days=1)
        if status == "delivered":
            order.shipped_at, order.delivered_at = now - timedelta(days=7), now - timedelta(days=5)
        # Packing takes a business day and the carrier five (the settings' defaults).
        if status == "paid":
            order.estimated_delivery = add_business_days(order.created_at.date(), 6)
        elif status == "shipped":
            assert order.shipped_at is not None  # set with the tracking above
            order.estimated_delivery = add_business_days(order.shipped_at.date(), 5)
