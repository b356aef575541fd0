"""The cart: view it, change a quantity, remove an item."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import NumberPrompt, PromptOptions

from bot.messages import Choice, reply
from bot.turn import command
from dialogs.shop import ShopServices, cart_summary, choice_prompt, prompt_choices
from integrations.cart import CartView, OutOfStock


def cart_reply(cart: CartView, prefix: str = ""):
    quick = (
        [Choice("Checkout", command("checkout")), Choice("Change quantity", command("change_quantity")),
         Choice("Remove an item", command("remove_from_cart"))]
        if cart.lines
        else [Choice("Browse products", command("product_search"))]
    )
    return reply(prefix + cart_summary(cart), quick=quick)


class CartDialog(ComponentDialog):
    """Options: mode ("view", "remove" or "quantity"), product (sku), quantity."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(CartDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(NumberPrompt("number", self._valid_quantity))
        self.add_dialog(WaterfallDialog("steps", [self.pick_line_step, self.quantity_step, self.apply_step]))
        self.initial_dialog_id = "steps"

    @staticmethod
    async def _valid_quantity(prompt) -> bool:
        value = prompt.recognized.value
        return prompt.recognized.succeeded and value is not None and 0 <= value <= 20 and float(value).is_integer()

    async def pick_line_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        o = dict(step.options or {})
        step.values.update(o)
        cart = await self.shop.carts.get(step.context.activity.from_property.id)
        if o.get("mode", "view") == "view" or not cart.lines:
            await step.context.send_activity(cart_reply(cart))
            return await step.end_dialog()
        step.values["lines"] = [l.variant_sku for l in cart.lines]
        matches = [l for l in cart.lines if o.get("product") in (None, l.product_sku)]
        if len(matches) == 1:
            return await step.next(matches[0].variant_sku)
        verb = "remove" if o["mode"] == "remove" else "change"
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(f"Which item do you want to {verb}?"),
                choices=prompt_choices([f"{l.name} ({l.size}, {l.colour})" for l in cart.lines]),
            ),
        )

    async def quantity_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        sku = step.result if isinstance(step.result, str) else step.values["lines"][step.result.index]
        step.values["sku"] = sku
        if step.values["mode"] == "remove":
            return await step.next(0)
        if step.values.get("quantity"):
            return await step.next(step.values["quantity"])
        return await step.prompt(
            "number",
            PromptOptions(prompt=reply("How many would you like? (0 removes it)"),
                          retry_prompt=reply("Please send a number from 0 to 20.")),
        )

    async def apply_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        quantity = int(step.result)
        customer_id = step.context.activity.from_property.id
        try:
            cart = await self.shop.carts.set_quantity(customer_id, step.values["sku"], quantity)
            prefix = "Removed. " if quantity == 0 else "Updated. "
        except OutOfStock as exc:
            cart = await self.shop.carts.get(customer_id)
            prefix = f"Sorry, only {exc.available} in stock. "
        await step.context.send_activity(cart_reply(cart, prefix))
        return await step.end_dialog()
