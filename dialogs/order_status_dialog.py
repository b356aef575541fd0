"""Where is my order: status and tracking of the shopper's own orders."""

from __future__ import annotations

import logging
import re

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.i18n import TEXTS
from bot.messages import link, reply
from dialogs.shop import ShopServices, choice_prompt, delivery_date, is_zh, money, prompt_choices, text
from dialogs.website_orders_dialog import VerifyContactDialog, website_orders_reply
from integrations.customers import PlatformUnavailable
from integrations.orders import OrderView

log = logging.getLogger(__name__)

STATUSES = ("pending_payment", "payment_review", "paid", "shipped", "delivered", "cancelled")
ON_THE_WAY = ("pending_payment", "paid", "shipped")
# "When will it arrive?", "what's the ETA", "什麼時候會到": the shopper asks for a date, not the status.
ARRIVAL_RE = re.compile(
    r"\bwhen\b.*\b(arrive|arriving|deliver\w*|get (?:here|it|to me)|come|coming|be here|show up)\b"
    r"|\beta\b|how long (?:until|till|before)|how much longer"
    r"|(什麼時候|何時|幾時|哪天|多久).*(到|送達|寄到|收到)|預計.*(到|送達)",
    re.I,
)


def asks_arrival(utterance: str) -> bool:
    return bool(ARRIVAL_RE.search(utterance or ""))


STATUS_TEXT = {status: TEXTS[f"order.status.{status}"]["en"] for status in STATUSES}  # English, by status


def order_title(order: OrderView, context: TurnContext | None = None, *, currency: str) -> str:
    return text(
        context,
        "order.title",
        number=order.number,
        created_at=order.created_at,
        total=money(context, order.total_cents, currency),
    )


def status_reply(order: OrderView, context: TurnContext | None = None):
    items = ("、" if is_zh(context) else ", ").join(
        text(context, "order.item", quantity=l.quantity, name=l.name_in(is_zh(context))) for l in order.lines
    )
    status = text(context, f"order.status.{order.status}") if order.status in STATUSES else order.status
    message = text(context, "order.status", number=order.number, status=status, items=items)
    if order.status in ON_THE_WAY and order.estimated_delivery:
        message += text(context, "order.arrives", date=delivery_date(context, order.estimated_delivery))
    links = []
    if order.status == "shipped" and order.tracking_number:
        message += text(context, "order.tracking", carrier=order.carrier, tracking=order.tracking_number)
        if order.tracking_url:
            links.append(link(text(context, "btn.track_parcel"), order.tracking_url))
    if order.status == "pending_payment" and order.payment_url:
        links.append(link(text(context, "btn.pay_now"), order.payment_url))
    return reply(message, links=links)


def arrival_reply(order: OrderView, context: TurnContext | None = None):
    """When the order arrives: its delivery date, and the carrier and tracking once shipped."""
    links = [link(text(context, "btn.track_parcel"), order.tracking_url)] if order.tracking_url else []
    date = delivery_date(context, order.estimated_delivery) if order.estimated_delivery else None
    if order.status == "shipped" and order.tracking_number:
        key = "order.arrival.shipped" if date else "order.arrival.shipped_no_date"
        return reply(
            text(context, key, number=order.number, carrier=order.carrier, tracking=order.tracking_number, date=date),
            links=links,
        )
    if order.status in ("delivered", "cancelled") or (order.status in ON_THE_WAY and date):
        message = text(context, f"order.arrival.{order.status}", number=order.number, date=date)
        if order.status == "pending_payment" and order.payment_url:
            links.append(link(text(context, "btn.pay_now"), order.payment_url))
        return reply(message, links=links)
    return status_reply(order, context)  # no date to give: what we know


async def pick_order(step: WaterfallStepContext, shop: ShopServices, wanted, verb: str) -> DialogTurnResult:
    """Prompt for one of the shopper's recent orders that `wanted(order)` accepts, or go on with it.

    `verb` is "check", "cancel" or "return": it picks the question and the "none found" reply.
    """
    customer_id = step.context.activity.from_property.id
    number = (step.options or {}).get("order_number")
    if number:
        order = await shop.orders.find(customer_id, int(number))
        if order is None:
            await step.context.send_activity(reply(text(step.context, "order.not_found", number=number)))
            return await step.end_dialog()
        return await step.next(order)
    orders = [o for o in await shop.orders.recent(customer_id, limit=5) if wanted(o)]
    if not orders:
        await step.context.send_activity(reply(text(step.context, f"order.none.{verb}")))
        return await step.end_dialog()
    if len(orders) == 1:
        return await step.next(orders[0])
    step.values["orders"] = [o.number for o in orders]
    return await step.prompt(
        "choice",
        PromptOptions(
            prompt=reply(text(step.context, f"order.which.{verb}")),
            choices=prompt_choices([order_title(o, step.context, currency=shop.currency) for o in orders]),
        ),
    )


async def chosen_order(step: WaterfallStepContext, shop: ShopServices) -> OrderView | None:
    if isinstance(step.result, OrderView):
        return step.result
    number = step.values["orders"][step.result.index]
    return await shop.orders.find(step.context.activity.from_property.id, number)


class OrderStatusDialog(ComponentDialog):
    """Options: order_number."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(OrderStatusDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(VerifyContactDialog(shop))
        self.add_dialog(WaterfallDialog("steps", [self.pick_step, self.show_step]))
        self.initial_dialog_id = "steps"

    async def pick_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if self.shop.customers is not None and not (step.options or {}).get("order_number"):
            website = await self._website(step)
            if website is not None:
                return website
        return await self._pick_chat_order(step)

    async def _website(self, step: WaterfallStepContext) -> DialogTurnResult | None:
        """The website's orders of a matched shopper, before those placed in chat; for one not
        matched with no chat order, the offer to prove the e-mail or phone used there. None: go
        on with the chat's orders alone."""
        assert self.shop.customers is not None
        customer_id = step.context.activity.from_property.id
        try:
            website = await self.shop.customers.website_orders(customer_id)
        except PlatformUnavailable as exc:
            log.warning("website orders unavailable", extra={"reason": str(exc)})
            await step.context.send_activity(reply(text(step.context, "customers.unavailable")))
            return None
        chat_orders = await self.shop.orders.recent(customer_id, limit=1)
        if website is None and not chat_orders:
            step.values["verifying"] = True
            return await step.begin_dialog(VerifyContactDialog.__name__)
        if website:
            await step.context.send_activity(website_orders_reply(website, step.context))
            if not chat_orders:
                return await step.end_dialog()
        return None

    async def _pick_chat_order(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["arrival"] = asks_arrival((step.options or {}).get("text", ""))
        if step.values["arrival"]:
            # "When will it arrive?" is about an order still on its way, if there is one.
            recent = await self.shop.orders.recent(step.context.activity.from_property.id, limit=5)
            if any(o.status in ON_THE_WAY for o in recent):
                return await pick_order(step, self.shop, lambda o: o.status in ON_THE_WAY, "check")
        return await pick_order(step, self.shop, lambda o: True, "check")

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.values.get("verifying"):  # the website's orders were the answer
            return await step.end_dialog()
        order = await chosen_order(step, self.shop)
        if order is not None and order.status == "pending_payment" and not order.payment_url:
            # Placed while the payment provider was down: ask it for the link again now, unless a
            # try is under way (the scheduled retry sends the link when it makes it).
            customer_id = step.context.activity.from_property.id
            order = await self.shop.orders.payment_link(customer_id, order.number, self.shop.payments) or order
            if not order.payment_url:
                await step.context.send_activity(
                    reply(text(step.context, "order.link_on_its_way", number=order.number))
                )
                return await step.end_dialog()
        answer = arrival_reply if step.values.get("arrival") else status_reply
        await step.context.send_activity(answer(order, step.context))
        return await step.end_dialog()
