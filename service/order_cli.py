"""`python app.py order ship NUMBER --carrier UPS --tracking 1Z...`: the retailer's shipment API
from the terminal; `python app.py order approve NUMBER`: a person confirms an order whose payment
was held for review (Stripe Radar). The shopper's notices are queued in the store; a running
server's outbox sends them."""

from __future__ import annotations

import argparse
import json
import sys

from bot.config import Settings
from bot.store.models import utcnow
from integrations.orders import approve_reviewed, checkout_rules
from integrations.shipments import ShipmentError, ship_order
from service.wiring import build


def add_parser(sub) -> None:
    cmd = sub.add_parser("order", help="retailer's order operations (ship, approve)")
    ops = cmd.add_subparsers(dest="order_command", required=True)
    ship = ops.add_parser("ship", help="mark a paid order shipped and tell the shopper")
    ship.add_argument("number", help="the order number, e.g. 1005")
    ship.add_argument("--carrier", required=True, help="UPS, USPS, FedEx, DHL (linked) or any other name")
    ship.add_argument("--tracking", required=True, help="the tracking number")
    approve = ops.add_parser("approve", help="confirm an order whose payment was held for review")
    approve.add_argument("number", help="the order number, e.g. 1005")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    raw = args.number.removeprefix("#")
    if not raw.isdecimal():
        print(f"error: {args.number!r} is not an order number", file=sys.stderr)
        return 2
    services = build(settings)
    if args.order_command == "approve":
        return await _approve(services, int(raw))
    try:
        result = await ship_order(
            services.db,
            services.policy,
            checkout_rules(settings).estimate,
            int(raw),
            args.carrier,
            args.tracking,
            utcnow(),
            settings.whatsapp_shipping_template_sid,
            services.shipping,
        )
    except ShipmentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await services.close()
    print(json.dumps(result))
    return 0


async def _approve(services, number: int) -> int:
    try:
        payment = await services.db.run(
            lambda s: approve_reviewed(s, number, services.on_paid, lock=not services.db.is_sqlite)
        )
    finally:
        await services.close()
    if payment.outcome == "unknown":
        print(f"error: no order #{number}", file=sys.stderr)
        return 2
    if payment.outcome != "paid":
        status = payment.order.status if payment.order else "?"
        print(f"error: order #{number} is {status}, not held for review", file=sys.stderr)
        return 2
    print(json.dumps({"order": number, "status": "paid"}))
    return 0
