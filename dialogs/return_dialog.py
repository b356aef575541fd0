"""Starting a return: a delivered order, the item, the reason, and a return reference."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import reply
from dialogs.order_status_dialog import chosen_order, pick_order
from dialogs.shop import ShopServices, choice_prompt, prompt_choices
from integrations.orders import OrderError

REASONS = ["Doesn't fit", "Not as described", "Arrived damaged", "Changed my mind"]


class ReturnDialog(ComponentDialog):
    """Options: order_number."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(ReturnDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(
            WaterfallDialog("steps", [self.pick_order_step, self.pick_item_step, self.reason_step, self.start_step])
        )
        self.initial_dialog_id = "steps"

    async def pick_order_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await pick_order(step, self.shop, lambda o: o.returnable, "return items from")

    async def pick_item_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        order = await chosen_order(step, self.shop)
        if not order.returnable:
            await step.context.send_activity(
                reply(f"Items from order #{order.number} can't be returned: returns open once an order is "
                      "delivered, for 30 days.")
            )
            return await step.end_dialog()
        step.values["number"] = order.number
        step.values["lines"] = [l.id for l in order.lines]
        step.values["names"] = [l.name for l in order.lines]
        if len(order.lines) == 1:
            return await step.next(0)
        return await step.prompt(
            "choice",
            PromptOptions(prompt=reply("Which item would you like to return?"),
                          choices=prompt_choices([f"{l.name} ({l.size}, {l.colour})" for l in order.lines])),
        )

    async def reason_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["line"] = step.result if isinstance(step.result, int) else step.result.index
        return await step.prompt(
            "choice",
            PromptOptions(prompt=reply("What's the reason for the return?"), choices=prompt_choices(REASONS)),
        )

    async def start_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        index = step.values["line"]
        try:
            reference = await self.shop.orders.start_return(
                step.context.activity.from_property.id, step.values["number"], step.values["lines"][index],
                step.result.value,
            )
        except OrderError:
            await step.context.send_activity(reply("Sorry, that item can't be returned any more."))
            return await step.end_dialog()
        await step.context.send_activity(
            reply(f"Your return for the {step.values['names'][index]} is open. Reference: {reference}. "
                  "Pack the item with the reference inside; the refund follows within 5 days of it reaching us.")
        )
        return await step.end_dialog()
