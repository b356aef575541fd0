"""Cancelling an order that has not shipped yet, after the shopper confirms."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import reply
from dialogs.order_status_dialog import chosen_order, order_title, pick_order
from dialogs.shop import ShopServices, choice_prompt, confirm_prompt, text
from integrations.orders import CANCELLABLE, OrderError


class CancelOrderDialog(ComponentDialog):
    """Options: order_number."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(CancelOrderDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(WaterfallDialog("steps", [self.pick_step, self.confirm_step, self.cancel_step]))
        self.initial_dialog_id = "steps"

    async def pick_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await pick_order(step, self.shop, lambda o: o.status in CANCELLABLE, "cancel")

    async def confirm_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        order = await chosen_order(step, self.shop)
        if order.status not in CANCELLABLE:
            reason = order.status if order.status in ("shipped", "delivered", "cancelled") else "other"
            why = text(step.context, f"cancel.why.{reason}")
            await step.context.send_activity(
                reply(text(step.context, "cancel.not_possible", number=order.number, why=why))
            )
            return await step.end_dialog()
        step.values["number"] = order.number
        title = order_title(order, step.context, currency=self.shop.currency)
        return await step.prompt(
            "confirm", PromptOptions(prompt=reply(text(step.context, "cancel.confirm", title=title)))
        )

    async def cancel_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        number = step.values["number"]
        if not step.result:
            await step.context.send_activity(reply(text(step.context, "cancel.kept", number=number)))
            return await step.end_dialog()
        try:
            order = await self.shop.orders.cancel(step.context.activity.from_property.id, number, self.shop.payments)
        except OrderError:
            await step.context.send_activity(reply(text(step.context, "cancel.too_late", number=number)))
            return await step.end_dialog()
        await step.context.send_activity(reply(text(step.context, "cancel.done", number=order.number)))
        return await step.end_dialog()
