"""Adding a product to the cart: which product, size and colour, then add-on suggestions."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import Choice, reply
from bot.turn import command
from dialogs.shop import (
    ShopServices,
    cart_summary,
    choice_prompt,
    join_words,
    money,
    prompt_choices,
)
from integrations.cart import OutOfStock
from integrations.catalog import ProductView

NO_THANKS = "No thanks"


class AddToCartDialog(ComponentDialog):
    """Options: product (sku), size, colour, quantity; missing ones are asked for."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(AddToCartDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(
            WaterfallDialog(
                "steps",
                [self.product_step, self.size_step, self.colour_step, self.add_step],
            )
        )
        self.initial_dialog_id = "steps"

    async def _product(self, step: WaterfallStepContext) -> ProductView | None:
        sku = step.values.get("product")
        return await self.shop.catalog.product(sku) if sku else None

    async def product_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options = dict(step.options or {})
        step.values.update(options)
        sku = options.get("product") or await self.shop.last_product(step.context)
        if sku:
            step.values["product"] = sku
            return await step.next(None)
        found = await self.shop.catalog.search(
            options.get("text", ""), category=options.get("category"), colour=options.get("colour"), limit=5
        )
        found = [p for p in found if p.in_stock]
        if not found:
            await step.context.send_activity(reply("Which product would you like? Try “show me running shoes”."))
            return await step.end_dialog()
        step.values["candidates"] = [p.sku for p in found]
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply("Which one would you like to add?", cards=[self.shop.card(p) for p in found]),
                choices=prompt_choices([p.name for p in found]),
            ),
        )

    async def size_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.result is not None:
            step.values["product"] = step.values["candidates"][step.result.index]
        product = await self._product(step)
        if product is None:
            await step.context.send_activity(reply("Sorry, I can't find that product any more."))
            return await step.end_dialog()
        await self.shop.remember_product(step.context, product.sku)
        colour = step.values.get("colour")
        sizes = product.sizes(colour=colour if colour in product.colours() else None)
        size = step.values.get("size")
        if not sizes:
            await step.context.send_activity(
                reply(
                    f"Sorry, the {product.name} is sold out right now.",
                    quick=[Choice("Notify me", command("check_stock", product=product.sku))],
                )
            )
            return await step.end_dialog()
        if size and size not in sizes:
            what = "doesn't come in" if not product.has_size(size) else "is sold out in"
            await step.context.send_activity(
                reply(
                    f"The {product.name} {what} size {size}. In stock: {join_words(sizes)}.",
                    quick=[Choice(f"Notify me about {size}", command("check_stock", product=product.sku, size=size))]
                    if product.has_size(size)
                    else None,
                )
            )
            return await step.end_dialog()
        if size or len(sizes) == 1:
            return await step.next(size or sizes[0])
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(f"Which size of the {product.name}?"),
                choices=prompt_choices(sizes + [NO_THANKS]),
            ),
        )

    async def colour_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        size = step.result.value if hasattr(step.result, "value") else step.result
        if size == NO_THANKS:
            await step.context.send_activity(reply("No problem. Anything else?"))
            return await step.end_dialog()
        step.values["size"] = size
        product = await self._product(step)
        colours = product.colours(size)
        colour = step.values.get("colour")
        if colour in colours or len(colours) == 1:
            return await step.next(colour if colour in colours else colours[0])
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(f"Size {size} is in stock in {join_words(colours)}. Which colour?"),
                choices=prompt_choices(colours + [NO_THANKS]),
            ),
        )

    async def add_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        colour = step.result.value if hasattr(step.result, "value") else step.result
        if colour == NO_THANKS:
            await step.context.send_activity(reply("No problem. Anything else?"))
            return await step.end_dialog()
        product = await self._product(step)
        variant = product.variant(step.values["size"], colour)
        quantity = max(1, min(int(step.values.get("quantity") or 1), 20))
        customer_id = step.context.activity.from_property.id
        try:
            cart = await self.shop.carts.add(customer_id, variant.sku, quantity)
        except OutOfStock as exc:
            left = max(exc.available, 0)
            await step.context.send_activity(
                reply(
                    f"Sorry, only {left} more of the {product.name} in {variant.size}, {variant.colour} "
                    "can go in your cart." if left else
                    f"Sorry, you already have all we have of the {product.name} in {variant.size}, {variant.colour}."
                )
            )
            return await step.end_dialog()
        await step.context.send_activity(
            reply(
                f"Added {quantity} × {product.name} ({variant.size}, {variant.colour}) for "
                f"{money(product.price_cents * quantity)}.\n{cart_summary(cart)}",
                quick=[Choice("Checkout", command("checkout")), Choice("View cart", command("view_cart"))],
            )
        )
        addons = [p for p in await self.shop.catalog.related(product.sku) if p.sku not in {l.product_sku for l in cart.lines}]
        if addons:
            await step.context.send_activity(
                reply("Goes well with it:", cards=[self.shop.card(p) for p in addons])
            )
        return await step.end_dialog()
