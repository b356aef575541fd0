"""The cart: view it, change a quantity, remove an item."""

from __future__ import annotations

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import NumberPrompt, PromptOptions

from bot.conversation.turn import command
from bot.messages import Choice, reply
from dialogs.shop import ShopServices, cart_summary, choice_prompt, colour_name, prompt_choices, size_label, text
from integrations.cart import CartView, OutOfStock


def cart_reply(
    cart: CartView,
    prefix: str = "",
    context: TurnContext | None = None,
    names: dict[str, str] | None = None,
    *,
    currency: str,
):
    """The cart and what to do next, in the shopper's language when `context` is given."""
    quick = (
        [
            Choice(text(context, "btn.checkout"), command("checkout")),
            Choice(text(context, "btn.change_quantity"), command("change_quantity")),
            Choice(text(context, "btn.remove_item"), command("remove_from_cart")),
        ]
        if cart.lines
        else [Choice(text(context, "btn.browse"), command("product_search"))]
    )
    return reply(prefix + cart_summary(cart, context, names, currency=currency), quick=quick)


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
        ctx = step.context
        cart = await self.shop.carts.get(step.context.activity.from_property.id)
        names = await self.shop.line_names(ctx, [l.product_sku for l in cart.lines])
        if o.get("mode", "view") == "view" or not cart.lines:
            await step.context.send_activity(cart_reply(cart, "", ctx, names, currency=self.shop.currency))
            return await step.end_dialog()
        step.values["lines"] = [l.variant_sku for l in cart.lines]
        step.values["quantities"] = {l.variant_sku: l.quantity for l in cart.lines}
        matches = await self._matching(cart, o)
        if len(matches) == 1:
            return await step.next(matches[0].variant_sku)
        key = "cart.which_remove" if o["mode"] == "remove" else "cart.which_change"
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(text(ctx, key)),
                choices=prompt_choices(
                    [
                        text(
                            ctx,
                            "item_title",
                            name=names.get(l.product_sku, l.name),
                            size=size_label(ctx, l.size),
                            colour=colour_name(ctx, l.colour),
                        )
                        for l in cart.lines
                    ]
                ),
            ),
        )

    async def _matching(self, cart: CartView, options: dict) -> list:
        """The cart lines a request names: by product, else by kind ("remove the socks")."""
        if options.get("product"):
            return [l for l in cart.lines if l.product_sku == options["product"]]
        if options.get("category"):
            kinds = {
                l.product_sku: getattr(await self.shop.catalog.product(l.product_sku), "category", None)
                for l in cart.lines
            }
            named = [l for l in cart.lines if kinds[l.product_sku] == options["category"]]
            if named:
                return named
        return list(cart.lines)

    async def quantity_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        sku = step.result if isinstance(step.result, str) else step.values["lines"][step.result.index]
        step.values["sku"] = sku
        if step.values["mode"] == "remove":
            # "remove one of the tees" takes one off; "remove the tees" takes the line away.
            have, fewer = step.values.get("quantities", {}).get(sku, 0), step.values.get("quantity") or 0
            return await step.next(have - fewer if 0 < fewer < have else 0)
        if step.values.get("quantity"):
            return await step.next(step.values["quantity"])
        return await step.prompt(
            "number",
            PromptOptions(
                prompt=reply(text(step.context, "cart.how_many")),
                retry_prompt=reply(text(step.context, "cart.number_retry")),
            ),
        )

    async def apply_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        quantity = int(step.result)
        customer_id = step.context.activity.from_property.id
        try:
            cart = await self.shop.carts.set_quantity(customer_id, step.values["sku"], quantity)
            prefix = text(step.context, "cart.removed" if quantity == 0 else "cart.updated")
        except OutOfStock as exc:
            cart = await self.shop.carts.get(customer_id)
            prefix = text(step.context, "cart.only_in_stock", available=exc.available)
        names = await self.shop.line_names(step.context, [l.product_sku for l in cart.lines])
        await step.context.send_activity(cart_reply(cart, prefix, step.context, names, currency=self.shop.currency))
        return await step.end_dialog()
