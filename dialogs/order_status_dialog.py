"""Where is my order: status and tracking of the shopper's own orders."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import link, reply
from dialogs.shop import ShopServices, choice_prompt, money, prompt_choices
from integrations.orders import OrderView

STATUS_TEXT = {
    "pending_payment": "is waiting for payment",
    "paid": "is paid and being packed",
    "shipped": "is on its way",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
}


def order_title(order: OrderView) -> str:
    return f"#{order.number} ({order.created_at}, {money(order.total_cents)})"


def status_reply(order: OrderView):
    items = ", ".join(f"{l.quantity} × {l.name}" for l in order.lines)
    text = f"Order #{order.number} {STATUS_TEXT.get(order.status, order.status)}. Items: {items}."
    links = []
    if order.status == "shipped" and order.tracking_number:
        text += f"\nCarrier: {order.carrier}, tracking number {order.tracking_number}."
        if order.tracking_url:
            links.append(link("Track parcel", order.tracking_url))
    if order.status == "pending_payment" and order.payment_url:
        links.append(link("Pay now", order.payment_url))
    return reply(text, links=links)


async def pick_order(step: WaterfallStepContext, shop: ShopServices, wanted, verb: str) -> DialogTurnResult:
    """Prompt for one of the shopper's recent orders that `wanted(order)` accepts, or go on with it."""
    customer_id = step.context.activity.from_property.id
    number = (step.options or {}).get("order_number")
    if number:
        order = await shop.orders.find(customer_id, int(number))
        if order is None:
            await step.context.send_activity(
                reply(f"I couldn't find order #{number} on your account. Please check the number.")
            )
            return await step.end_dialog()
        return await step.next(order)
    orders = [o for o in await shop.orders.recent(customer_id, limit=5) if wanted(o)]
    if not orders:
        await step.context.send_activity(reply(f"I can't find any order on your account that you can {verb}."))
        return await step.end_dialog()
    if len(orders) == 1:
        return await step.next(orders[0])
    step.values["orders"] = [o.number for o in orders]
    return await step.prompt(
        "choice",
        PromptOptions(prompt=reply(f"Which order do you want to {verb}?"),
                      choices=prompt_choices([order_title(o) for o in orders])),
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
        self.add_dialog(WaterfallDialog("steps", [self.pick_step, self.show_step]))
        self.initial_dialog_id = "steps"

    async def pick_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await pick_order(step, self.shop, lambda o: True, "check")

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        order = await chosen_order(step, self.shop)
        await step.context.send_activity(status_reply(order))
        return await step.end_dialog()
