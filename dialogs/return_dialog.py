"""Starting a return: a delivered order, the item, the reason, and a return reference; with a
carrier service, a prepaid return label and how to use it."""

from __future__ import annotations

import logging

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import link, reply
from dialogs.order_status_dialog import chosen_order, pick_order
from dialogs.shop import ShopServices, choice_prompt, colour_name, is_zh, prompt_choices, size_label, text
from integrations.orders import OrderError
from integrations.shipping import ShippingUnavailable

log = logging.getLogger(__name__)

REASONS = ["Doesn't fit", "Not as described", "Arrived damaged", "Changed my mind"]  # the values kept


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
        return await pick_order(step, self.shop, lambda o: o.returnable, "return")

    async def pick_item_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        order = await chosen_order(step, self.shop)
        if not order.returnable:
            await step.context.send_activity(reply(text(step.context, "return.not_returnable", number=order.number)))
            return await step.end_dialog()
        step.values["number"] = order.number
        step.values["lines"] = [l.id for l in order.lines]
        step.values["names"] = [l.name_in(is_zh(step.context)) for l in order.lines]
        if len(order.lines) == 1:
            return await step.next(0)
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(text(step.context, "return.which_item")),
                choices=prompt_choices(
                    [
                        text(
                            step.context,
                            "item_title",
                            name=l.name_in(is_zh(step.context)),
                            size=size_label(step.context, l.size),
                            colour=colour_name(step.context, l.colour),
                        )
                        for l in order.lines
                    ]
                ),
            ),
        )

    async def reason_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["line"] = step.result if isinstance(step.result, int) else step.result.index
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(text(step.context, "return.reason")),
                choices=prompt_choices([(text(step.context, f"return.reason.{r}"), r) for r in REASONS]),
            ),
        )

    async def start_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        index = step.values["line"]
        try:
            reference = await self.shop.orders.start_return(
                step.context.activity.from_property.id,
                step.values["number"],
                step.values["lines"][index],
                step.result.value,
            )
        except OrderError:
            await step.context.send_activity(reply(text(step.context, "return.too_late")))
            return await step.end_dialog()
        name = step.values["names"][index]
        try:
            label = await self.shop.orders.label_return(
                step.context.activity.from_property.id, reference, self.shop.shipping
            )
        except ShippingUnavailable as exc:  # the return stands; the label is sent by a person
            log.warning("no return label", extra={"reference": reference, "reason": str(exc)})
            label = None
        if label is None:
            await step.context.send_activity(reply(text(step.context, "return.opened", name=name, reference=reference)))
            return await step.end_dialog()
        await step.context.send_activity(
            reply(
                text(step.context, "return.label", name=name, reference=reference),
                links=[link(text(step.context, "btn.return_label"), label.label_url)],
            )
        )
        return await step.end_dialog()
