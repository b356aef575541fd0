"""Stock questions: is a product in stock, in which sizes and colours; if not, similar items
and the restock waitlist."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import reply
from dialogs.add_to_cart_dialog import AddToCartDialog
from dialogs.shop import ShopServices, choice_prompt, confirm_prompt, join_words, prompt_choices
from integrations.catalog import ProductView

NO_THANKS = "No thanks"


class StockDialog(ComponentDialog):
    """Options: product (sku), category, size, colour, text."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(StockDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(AddToCartDialog(shop))
        self.add_dialog(WaterfallDialog("steps", [self.answer_step, self.follow_up_step, self.done_step]))
        self.initial_dialog_id = "steps"

    async def _find(self, step: WaterfallStepContext) -> ProductView | list[ProductView]:
        options = step.values
        if options.get("product"):
            return await self.shop.catalog.product(options["product"])
        last = await self.shop.last_product(step.context)
        if last:
            product = await self.shop.catalog.product(last)
            if product and options.get("category") in (None, product.category):
                return product
        return await self.shop.catalog.search(
            options.get("text", ""), category=options.get("category"), limit=3
        )

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values.update(dict(step.options or {}))
        found = await self._find(step)
        if found is None:
            await step.context.send_activity(reply("Sorry, I can't find that product any more."))
            return await step.end_dialog()
        if isinstance(found, list):
            if not found:
                await step.context.send_activity(
                    reply("I couldn't find that product. Try “show me dresses” or “running shoes”.")
                )
            else:
                await step.context.send_activity(
                    reply("Which one do you mean?", cards=[self.shop.card(p) for p in found])
                )
            return await step.end_dialog()
        product = found
        step.values["product"] = product.sku
        await self.shop.remember_product(step.context, product.sku)
        size, colour = step.values.get("size"), step.values.get("colour")
        if colour and colour not in product.colours(in_stock=False):
            colour = step.values["colour"] = None
        if size and not product.has_size(size):
            await step.context.send_activity(
                reply(f"The {product.name} doesn't come in size {size}. It comes in {join_words(product.sizes(in_stock=False))}.")
            )
            return await step.end_dialog()
        if size:
            colours = product.colours(size)
            if colour and colour in colours or (not colour and colours):
                shown = [colour] if colour else colours
                return await step.prompt(
                    "choice",
                    PromptOptions(
                        prompt=reply(
                            f"Yes! The {product.name} in size {size} is in stock in {join_words(shown)}. "
                            "Add one to your cart?"
                        ),
                        choices=prompt_choices([f"Add {c}" for c in shown] + [NO_THANKS]),
                    ),
                )
            return await self._sold_out(step, product, size, colour)
        sizes = product.sizes(colour=colour)
        if not sizes:
            return await self._sold_out(step, product, None, colour)
        in_colour = f" in {colour}" if colour else ""
        sold_out = [s for s in product.sizes(in_stock=False) if s not in sizes]
        note = f" ({join_words(sold_out)} sold out)" if sold_out else ""
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(
                    f"Yes, the {product.name}{in_colour} is in stock in "
                    f"{'size' if len(sizes) == 1 else 'sizes'} {join_words(sizes)}{note}. Add one to your cart?"
                ),
                choices=prompt_choices([f"Size {s}" for s in sizes] + [NO_THANKS]),
            ),
        )

    async def _sold_out(self, step: WaterfallStepContext, product: ProductView, size: str | None, colour: str | None):
        what = " ".join(x for x in (f"size {size}" if size else "", colour or "") if x)
        text = f"Sorry, the {product.name}{' in ' + what if what else ''} is sold out."
        similar = await self.shop.catalog.similar_in_stock(product, size)
        step.values["waitlist"] = [
            v.sku for v in product.variants
            if v.stock <= 0 and (size is None or v.size == size) and (colour is None or v.colour == colour)
        ]
        if similar:
            await step.context.send_activity(
                reply(text + f" These are in stock{' in size ' + size if size else ''}:",
                      cards=[self.shop.card(p, size) for p in similar])
            )
        else:
            await step.context.send_activity(reply(text))
        return await step.prompt(
            "confirm",
            PromptOptions(prompt=reply(f"Shall I message you when the {product.name}{' in ' + what if what else ''} is back in stock?")),
        )

    async def follow_up_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if "waitlist" in step.values:
            if step.result:
                customer_id = step.context.activity.from_property.id
                await self.shop.catalog.join_waitlist(customer_id, step.values["waitlist"])
                await step.context.send_activity(reply("Done! I'll message you as soon as it's back."))
            else:
                await step.context.send_activity(reply("OK, no alert. Anything else I can help with?"))
            return await step.end_dialog()
        chosen = step.result.value
        if chosen == NO_THANKS:
            await step.context.send_activity(reply("No problem. Anything else?"))
            return await step.end_dialog()
        options = {"product": step.values["product"], "size": step.values.get("size"),
                   "colour": step.values.get("colour"), "quantity": step.values.get("quantity")}
        if chosen.startswith("Add "):
            options["colour"] = chosen.removeprefix("Add ")
        elif chosen.startswith("Size "):
            options["size"] = chosen.removeprefix("Size ")
        return await step.begin_dialog(AddToCartDialog.__name__, options)

    async def done_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.end_dialog()
