"""Adding a product to the cart: which product, size and colour, then add-on suggestions."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.conversation.turn import command
from bot.messages import Choice, reply
from dialogs.shop import (
    ShopServices,
    choice_prompt,
    colour_name,
    confirm_prompt,
    join_words,
    money,
    prompt_choices,
    size_label,
    text,
)
from integrations.cart import OutOfStock
from integrations.catalog import ProductView

NO_THANKS = "No thanks"
MAX_PER_ADD = 20  # more of one item at once is a wholesale order, for a person


class AddToCartDialog(ComponentDialog):
    """Options: product (sku), size, colour, quantity; missing ones are asked for."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(AddToCartDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(
            WaterfallDialog(
                "steps",
                [self.product_step, self.size_step, self.colour_step, self.add_step, self.what_is_left_step],
            )
        )
        self.initial_dialog_id = "steps"

    async def _product(self, step: WaterfallStepContext) -> ProductView | None:
        sku = step.values.get("product")
        return await self.shop.catalog.product(sku) if sku else None

    async def product_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options = dict(step.options or {})
        step.values.update(options)
        sku = options.get("product") or await self.shop.last_product(step.context, options.get("category"))
        if sku:
            step.values["product"] = sku
            return await step.next(None)
        found = await self.shop.catalog.search(
            options.get("text", ""), category=options.get("category"), colour=options.get("colour"), limit=5
        )
        found = [p for p in found if p.in_stock]
        if not found:
            await step.context.send_activity(reply(text(step.context, "add.which_product")))
            return await step.end_dialog()
        step.values["candidates"] = [p.sku for p in found]
        await self.shop.remember_shown(step.context, found, "add_to_cart")
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(
                    text(step.context, "add.which_one"), cards=[self.shop.card(step.context, p) for p in found]
                ),
                choices=prompt_choices([(self.shop.name(step.context, p), p.name) for p in found]),
            ),
        )

    async def size_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.result is not None:
            step.values["product"] = step.values["candidates"][step.result.index]
        product = await self._product(step)
        if product is None:
            await step.context.send_activity(reply(text(step.context, "product_gone")))
            return await step.end_dialog()
        ctx = step.context
        name = self.shop.name(ctx, product)
        await self.shop.remember_product(step.context, product.sku, product.category)
        colour = step.values.get("colour")
        sizes = product.sizes(colour=colour if colour in product.colours() else None)
        size = step.values.get("size")
        if not sizes:
            await step.context.send_activity(
                reply(
                    text(ctx, "add.sold_out", name=name),
                    quick=[Choice(text(ctx, "btn.notify_me"), command("check_stock", product=product.sku))],
                )
            )
            return await step.end_dialog()
        if size and size not in sizes:
            key = "add.no_size" if not product.has_size(size) else "add.size_sold_out"
            await step.context.send_activity(
                reply(
                    text(
                        ctx, key, name=name, size=size, size_label=size_label(ctx, size), sizes=join_words(sizes, ctx)
                    ),
                    quick=[
                        Choice(
                            text(ctx, "btn.notify_size", size=size, size_label=size_label(ctx, size)),
                            command("check_stock", product=product.sku, size=size),
                        )
                    ]
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
                prompt=reply(text(ctx, "add.which_size", name=name)),
                choices=prompt_choices(
                    [(size_label(ctx, s), s) for s in sizes] + [(text(ctx, "btn.no_thanks"), NO_THANKS)]
                ),
            ),
        )

    async def colour_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        size = step.result.value if hasattr(step.result, "value") else step.result
        if size == NO_THANKS:
            await step.context.send_activity(reply(text(step.context, "no_problem")))
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
                prompt=reply(
                    text(
                        step.context,
                        "add.which_colour",
                        size=size,
                        size_label=size_label(step.context, size),
                        colours=join_words([colour_name(step.context, c) for c in colours], step.context),
                    )
                ),
                choices=prompt_choices(
                    [(colour_name(step.context, c), c) for c in colours]
                    + [(text(step.context, "btn.no_thanks"), NO_THANKS)]
                ),
            ),
        )

    async def add_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        colour = step.result.value if hasattr(step.result, "value") else step.result
        if colour == NO_THANKS:
            await step.context.send_activity(reply(text(step.context, "no_problem")))
            return await step.end_dialog()
        product = await self._product(step)
        ctx = step.context
        name = self.shop.name(ctx, product)
        variant = product.variant(step.values["size"], colour)
        wanted = max(1, int(step.values.get("quantity") or 1))
        if wanted > MAX_PER_ADD and variant.stock >= wanted:
            await step.context.send_activity(reply(text(ctx, "add.too_many", most=MAX_PER_ADD)))
            return await step.end_dialog()
        customer_id = step.context.activity.from_property.id
        try:
            cart = await self.shop.carts.add(customer_id, variant.sku, wanted)
        except OutOfStock as exc:
            left = min(max(exc.available, 0), MAX_PER_ADD)
            words = {
                "left": left,
                "wanted": wanted,
                "name": name,
                "size": size_label(ctx, variant.size),
                "colour": colour_name(ctx, variant.colour),
            }
            if not left:
                await step.context.send_activity(reply(text(ctx, "add.all_taken", **words)))
                return await step.end_dialog()
            step.values["partial"] = {"variant": variant.sku, "left": left}
            return await step.prompt("confirm", PromptOptions(prompt=reply(text(ctx, "add.only_left_ask", **words))))
        return await self._added(step, product, variant, wanted, cart)

    async def what_is_left_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        """ "Only 4 left: add 4?" answered."""
        partial = step.values.get("partial")
        if not step.result or not partial:
            await step.context.send_activity(reply(text(step.context, "no_problem")))
            return await step.end_dialog()
        product = await self._product(step)
        variant = next((v for v in product.variants if v.sku == partial["variant"]), None) if product else None
        if variant is None:
            await step.context.send_activity(reply(text(step.context, "product_gone")))
            return await step.end_dialog()
        try:
            cart = await self.shop.carts.add(step.context.activity.from_property.id, variant.sku, partial["left"])
        except OutOfStock:  # someone else was quicker
            await step.context.send_activity(
                reply(
                    text(
                        step.context,
                        "add.all_taken",
                        name=self.shop.name(step.context, product),
                        size=size_label(step.context, variant.size),
                        colour=colour_name(step.context, variant.colour),
                    )
                )
            )
            return await step.end_dialog()
        return await self._added(step, product, variant, partial["left"], cart)

    async def _added(
        self, step: WaterfallStepContext, product: ProductView, variant, quantity: int, cart
    ) -> DialogTurnResult:
        ctx = step.context
        await self.shop.note_added(ctx, product.sku)
        name = self.shop.name(ctx, product)
        price = money(ctx, product.price_cents * quantity, self.shop.currency)
        await step.context.send_activity(
            reply(
                text(
                    ctx,
                    "add.added",
                    quantity=quantity,
                    name=name,
                    size=size_label(ctx, variant.size),
                    colour=colour_name(ctx, variant.colour),
                    price=price,
                    summary=await self.shop.cart_text(ctx, cart),
                ),
                quick=[
                    Choice(text(ctx, "btn.checkout"), command("checkout")),
                    Choice(text(ctx, "btn.view_cart"), command("view_cart")),
                ],
            )
        )
        addons = [
            p for p in await self.shop.catalog.related(product.sku) if p.sku not in {l.product_sku for l in cart.lines}
        ]
        if addons:
            await self.shop.remember_shown(ctx, addons, "check_stock", focus=False, recommended=True)
            await step.context.send_activity(
                reply(text(ctx, "add.goes_well"), cards=[self.shop.card(ctx, p) for p in addons])
            )
        return await step.end_dialog()
