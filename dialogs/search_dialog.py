"""Browsing: search the catalog, and recommendations with add-ons from related products."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext

from bot.messages import reply
from dialogs.shop import ShopServices, category_name, colour_name, is_zh, size_label, text


class SearchDialog(ComponentDialog):
    """Options: text, category, colour, size, product, recommend (bool)."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(SearchDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.show_step]))
        self.initial_dialog_id = "steps"

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        o = dict(step.options or {})
        ctx = step.context
        if o.get("recommend"):
            return await self._recommend(step, o)
        if o.get("product"):
            product = await self.shop.catalog.product(o["product"])
            if product:
                await self.shop.remember_product(step.context, product.sku, product.category)
                await step.context.send_activity(
                    reply(
                        text(
                            ctx,
                            "search.product",
                            name=self.shop.name(ctx, product),
                            description=self.shop.description(ctx, product),
                        ),
                        cards=[self.shop.card(ctx, product)],
                    )
                )
                return await step.end_dialog()
        query = "" if o.get("category") else o.get("text", "")
        found = await self.shop.catalog.search(
            query, category=o.get("category"), colour=o.get("colour"), size=o.get("size"), limit=5
        )
        if not found:
            await step.context.send_activity(
                reply(
                    text(ctx, "search.nothing", range=await self.shop.range_sentence(ctx)).strip(),
                    quick=await self.shop.category_choices(ctx),
                )
            )
            return await step.end_dialog()
        await self.shop.remember_shown(step.context, found, "check_stock")
        category = category_name(ctx, o["category"]) if o.get("category") else text(ctx, "search.items")
        what = ("" if is_zh(ctx) else " ").join(x for x in (colour_name(ctx, o.get("colour")), category) if x)
        size = (
            text(ctx, "search.in_size", size=o["size"], size_label=size_label(ctx, o["size"])) if o.get("size") else ""
        )
        await step.context.send_activity(
            reply(
                text(ctx, "search.results", what=what, size=size),
                cards=[self.shop.card(ctx, p, o.get("size")) for p in found],
            )
        )
        return await step.end_dialog()

    async def _recommend(self, step: WaterfallStepContext, o: dict) -> DialogTurnResult:
        anchor = o.get("product") or await self.shop.last_product(step.context)
        if not anchor:
            cart = await self.shop.carts.get(step.context.activity.from_property.id)
            anchor = cart.lines[-1].product_sku if cart.lines else None
        if anchor and not o.get("category"):
            base = await self.shop.catalog.product(anchor)
            picks = await self.shop.catalog.related(anchor, limit=4)
            if base and picks:
                await self.shop.remember_shown(step.context, picks, "check_stock", focus=False, recommended=True)
                await step.context.send_activity(
                    reply(
                        text(step.context, "search.goes_with", name=self.shop.name(step.context, base)),
                        cards=[self.shop.card(step.context, p) for p in picks],
                    )
                )
                return await step.end_dialog()
        if not anchor and not o.get("category") and self.shop.customers is not None:
            shown = await self._for_returning_customer(step)
            if shown:
                return await step.end_dialog()
        picks = await self.shop.catalog.search(
            o.get("text", "") if not o.get("category") else "", category=o.get("category"), limit=4
        )
        picks = [p for p in picks if p.in_stock]
        await self.shop.remember_shown(step.context, picks, "check_stock", recommended=True)
        await step.context.send_activity(
            reply(text(step.context, "search.picks"), cards=[self.shop.card(step.context, p) for p in picks])
        )
        return await step.end_dialog()

    async def _for_returning_customer(self, step: WaterfallStepContext) -> bool:
        """Picks for a shopper matched to the website's customer: more of the kind they bought
        last, leaving out what they already bought. True if any were shown."""
        assert self.shop.customers is not None
        bought = await self.shop.customers.purchased(step.context.activity.from_property.id)
        last = await self.shop.catalog.product(bought[0]) if bought else None
        if last is None:
            return False
        found = await self.shop.catalog.search("", category=last.category, limit=4 + len(bought))
        picks = [p for p in found if p.in_stock and p.sku not in bought][:4]
        if not picks:
            return False
        await self.shop.remember_shown(step.context, picks, "check_stock")
        await step.context.send_activity(
            reply(text(step.context, "search.after_purchase"), cards=[self.shop.card(step.context, p) for p in picks])
        )
        return True
