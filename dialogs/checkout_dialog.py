"""Checkout: shipping address (remembered), confirmation, the order and its payment link."""
from __future__ import annotations

import re

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions, PromptValidatorContext, TextPrompt

from bot.messages import Choice, link, reply
from bot.turn import command, turn_info
from dialogs.shop import ShopServices, confirm_prompt, money
from dialogs.texts import text
from integrations.cart import OutOfStock
from integrations.orders import OrderError


async def plausible_address(prompt: PromptValidatorContext) -> bool:
    text = (prompt.recognized.value or "").strip()
    return prompt.recognized.succeeded and 8 <= len(text) <= 300 and bool(re.search(r"\d", text)) and bool(
        re.search(r"[^\W\d_]{2,}", text)
    )


class CheckoutDialog(ComponentDialog):
    def __init__(self, shop: ShopServices) -> None:
        super().__init__(CheckoutDialog.__name__)
        self.shop = shop
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(TextPrompt("address", plausible_address))
        self.add_dialog(
            WaterfallDialog(
                "steps",
                [self.saved_address_step, self.ask_address_step, self.confirm_step, self.place_order_step],
            )
        )
        self.initial_dialog_id = "steps"

    async def saved_address_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        cart = await self.shop.carts.get(step.context.activity.from_property.id)
        if not cart.lines:
            await step.context.send_activity(
                reply(text(step.context, "checkout.empty_yet"),
                      quick=[Choice(text(step.context, "btn.browse"), command("product_search"))])
            )
            return await step.end_dialog()
        saved = turn_info(step.context).shipping_address
        if saved:
            step.values["saved"] = saved
            return await step.prompt(
                "confirm", PromptOptions(prompt=reply(text(step.context, "checkout.saved_address", address=saved)))
            )
        return await step.next(False)

    async def ask_address_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.result and "saved" in step.values:
            return await step.next(step.values["saved"])
        return await step.prompt(
            "address",
            PromptOptions(
                prompt=reply(text(step.context, "checkout.ask_address")),
                retry_prompt=reply(text(step.context, "checkout.bad_address")),
            ),
        )

    async def confirm_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["address"] = " ".join(str(step.result).split())
        cart = await self.shop.carts.get(step.context.activity.from_property.id)
        return await step.prompt(
            "confirm",
            PromptOptions(
                prompt=reply(text(step.context, "checkout.confirm", summary=await self.shop.cart_text(step.context, cart),
                                  address=step.values["address"]))
            ),
        )

    async def place_order_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if not step.result:
            await step.context.send_activity(reply(text(step.context, "checkout.not_placed")))
            return await step.end_dialog()
        customer_id = step.context.activity.from_property.id
        try:
            order = await self.shop.orders.place(customer_id, step.values["address"], self.shop.payments.create_link)
        except OutOfStock:
            await step.context.send_activity(
                reply(text(step.context, "checkout.sold_out"),
                      quick=[Choice(text(step.context, "btn.view_cart"), command("view_cart"))])
            )
            return await step.end_dialog()
        except OrderError:
            await step.context.send_activity(reply(text(step.context, "checkout.empty")))
            return await step.end_dialog()
        await step.context.send_activity(
            reply(
                text(step.context, "checkout.placed", number=order.number, total=money(order.total_cents))
                + (" " + text(step.context, "checkout.discount", code=order.discount_code)
                   if order.discount_code else ""),
                links=[link(text(step.context, "btn.pay_now"), order.payment_url)],
            )
        )
        return await step.end_dialog()
