"""Price questions ("how much is the trail runner", "這雙多少錢"): the price of the product asked
about, found as a stock question finds it."""

from __future__ import annotations

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext

from bot.messages import reply
from dialogs.shop import ShopServices, colour_name, join_list, money, size_label, text
from dialogs.stock_dialog import find_asked
from integrations.catalog import ProductView


class PriceDialog(ComponentDialog):
    """Options: product (sku), category, candidates, text. One product: its price; several
    found by the words said: their cards, which show the price; none: how to ask."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(PriceDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.answer_step]))
        self.initial_dialog_id = "steps"

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        context, options = step.context, dict(step.options or {})
        found = await find_asked(self.shop, context, options)
        if found is None:
            await context.send_activity(reply(text(context, "product_gone")))
        elif isinstance(found, list) and not found:
            await context.send_activity(reply(text(context, "price.not_found")))
        elif isinstance(found, list):
            await self.shop.remember_shown(context, found, "price_question")
            cards = [self.shop.card(context, p) for p in found]
            await context.send_activity(reply(text(context, "price.which"), cards=cards))
        else:
            size = options.get("size")
            await self.shop.remember_product(context, found.sku, found.category, size)
            price = money(context, found.price_cents, self.shop.currency)
            key = "price.one" if found.in_stock else "price.sold_out"
            said = text(context, key, name=self.shop.name(context, found), price=price)
            if size and found.in_stock:  # "how much is the bomber in L": and is L there?
                said += self._size_note(context, found, size)
            await context.send_activity(reply(said))
        return await step.end_dialog()

    @staticmethod
    def _size_note(context: TurnContext, product: ProductView, size: str) -> str:
        """Whether the size asked about is there: in which colours, sold out, or not made."""
        label = size_label(context, size)
        if not product.has_size(size):
            return text(context, "price.no_size", size=size, size_label=label)
        colours = product.colours(size=size)
        if not colours:
            return text(context, "price.size_sold_out", size=size, size_label=label)
        names = join_list(context, [colour_name(context, c) for c in colours])
        return text(context, "price.size_in_stock", size=size, size_label=label, colours=names)
