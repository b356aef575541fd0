"""Stock questions: is a product in stock, in which sizes and colours; if not, similar items
and the restock waitlist."""

from __future__ import annotations

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.channel import pushable
from bot.conversation.turn import command
from bot.messages import Choice, reply
from dialogs.account_dialog import channel_name
from dialogs.add_to_cart_dialog import AddToCartDialog
from dialogs.shop import (
    ShopServices,
    choice_prompt,
    colour_name,
    confirm_prompt,
    is_zh,
    join_words,
    prompt_choices,
    size_label,
    text,
)
from integrations.catalog import ProductView

NO_THANKS = "No thanks"


async def find_asked(shop: ShopServices, context: TurnContext, options: dict) -> ProductView | list[ProductView] | None:
    """The product a question is about: the one named, one of the list shown last that fits the
    size or colour asked, the one looked at last, or else up to three found by the words said
    (a list). None: the product named is no longer in the catalog."""
    if options.get("product"):
        return await shop.catalog.product(options["product"])
    if options.get("candidates"):  # a follow-up narrowing the list shown last ("in black")
        found = [p for p in [await shop.catalog.product(sku) for sku in options["candidates"]] if p]
        fits = [
            p
            for p in found
            if (not options.get("size") or p.has_size(options["size"]))
            and (not options.get("colour") or options["colour"] in p.colours(in_stock=False))
        ]
        return fits[0] if len(fits) == 1 else (fits or found)
    last = await shop.last_product(context, options.get("category"))
    if last:
        product = await shop.catalog.product(last)
        if product:
            return product
    return await shop.catalog.search(options.get("text", ""), category=options.get("category"), limit=3)


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

    async def _find(self, step: WaterfallStepContext) -> ProductView | list[ProductView] | None:
        return await find_asked(self.shop, step.context, step.values)

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values.update(dict(step.options or {}))
        found = await self._find(step)
        if found is None:
            await step.context.send_activity(reply(text(step.context, "product_gone")))
            return await step.end_dialog()
        if isinstance(found, list):
            if not found:
                await step.context.send_activity(
                    reply(
                        text(
                            step.context, "stock.not_found", range=await self.shop.range_sentence(step.context)
                        ).strip()
                    )
                )
            else:
                await self.shop.remember_shown(step.context, found, "check_stock")
                ctx, asked = step.context, step.values
                narrowed = [
                    colour_name(ctx, asked.get("colour")),
                    text(ctx, "stock.what_size", size=asked["size"], size_label=size_label(ctx, asked["size"]))
                    if asked.get("size")
                    else "",
                ]
                which = (
                    text(ctx, "stock.which_in", what=("，" if is_zh(ctx) else " ").join(w for w in narrowed if w))
                    if asked.get("candidates") and any(narrowed)
                    else text(ctx, "stock.which")
                )
                await step.context.send_activity(
                    reply(which, cards=[self.shop.card(step.context, p, asked.get("size")) for p in found])
                )
            return await step.end_dialog()
        product = found
        ctx = step.context
        step.values["checked"] = await self._checked(ctx)
        name = self.shop.name(ctx, product)
        step.values["product"] = product.sku
        await self.shop.remember_product(step.context, product.sku, product.category, step.values.get("size"))
        size, colour = step.values.get("size"), step.values.get("colour")
        if colour and colour not in product.colours(in_stock=False):
            colour = step.values["colour"] = None
        if size and not product.has_size(size):
            await step.context.send_activity(
                reply(
                    text(
                        ctx,
                        "stock.no_such_size",
                        name=name,
                        size=size,
                        size_label=size_label(ctx, size),
                        sizes=join_words(product.sizes(in_stock=False), ctx),
                    )
                )
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
                            text(
                                ctx,
                                "stock.size_in_stock",
                                name=name,
                                size=size,
                                size_label=size_label(ctx, size),
                                colours=join_words([colour_name(ctx, c) for c in shown], ctx),
                            )
                            + step.values["checked"]
                        ),
                        choices=prompt_choices(
                            [(text(ctx, "btn.add_colour", colour=colour_name(ctx, c)), f"Add {c}") for c in shown]
                            + [(text(ctx, "btn.no_thanks"), NO_THANKS)]
                        ),
                    ),
                )
            return await self._sold_out(step, product, size, colour)
        sizes = product.sizes(colour=colour)
        if not sizes:
            return await self._sold_out(step, product, None, colour)
        in_colour = text(ctx, "stock.in_colour", colour=colour_name(ctx, colour)) if colour else ""
        sold_out = [s for s in product.sizes(in_stock=False) if s not in sizes]
        note = text(ctx, "stock.sold_out_note", sizes=join_words(sold_out, ctx)) if sold_out else ""
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(
                    text(
                        ctx,
                        "stock.sizes_in_stock",
                        name=name,
                        in_colour=in_colour,
                        size_word="size" if len(sizes) == 1 else "sizes",
                        sizes=join_words(sizes, ctx),
                        note=note,
                    )
                    + step.values["checked"]
                ),
                choices=prompt_choices(
                    [(text(ctx, "btn.size", size=s, size_label=size_label(ctx, s)), f"Size {s}") for s in sizes]
                    + [(text(ctx, "btn.no_thanks"), NO_THANKS)]
                ),
            ),
        )

    async def _checked(self, ctx: TurnContext) -> str:
        """ " Stock last checked 25 minutes ago." when the platform's stock was confirmed longer
        ago than STOCK_FRESH_MINUTES (the answer comes from the local copy); else nothing."""
        age = await self.shop.freshness.stale_for() if self.shop.freshness is not None else None
        if age is None:
            return ""
        minutes = int(age.total_seconds() // 60)
        if minutes < 120:
            return text(ctx, "stock.checked_minutes", n=minutes)
        return text(ctx, "stock.checked_hours", n=minutes // 60)

    async def _sold_out(self, step: WaterfallStepContext, product: ProductView, size: str | None, colour: str | None):
        ctx = step.context
        name = self.shop.name(ctx, product)
        parts = [
            text(ctx, "stock.what_size", size=size, size_label=size_label(ctx, size)) if size else "",
            colour_name(ctx, colour),
        ]
        what = ("，" if is_zh(ctx) else " ").join(x for x in parts if x)
        what = text(ctx, "stock.what", what=what) if what else ""
        sorry = text(ctx, "stock.sold_out", name=name, what=what) + step.values.get("checked", "")
        similar = await self.shop.catalog.similar_in_stock(product, size)
        step.values["waitlist"] = [
            v.sku
            for v in product.variants
            if v.stock <= 0 and (size is None or v.size == size) and (colour is None or v.colour == colour)
        ]
        if similar:
            await self.shop.remember_shown(ctx, similar, "check_stock", focus=False, recommended=True)
            these = (
                text(ctx, "stock.similar_size", size=size, size_label=size_label(ctx, size))
                if size
                else text(ctx, "stock.similar")
            )
            await step.context.send_activity(
                reply(sorry + these, cards=[self.shop.card(ctx, p, size) for p in similar])
            )
        else:
            await step.context.send_activity(reply(sorry))
        return await step.prompt(
            "confirm",
            PromptOptions(prompt=reply(text(ctx, "stock.waitlist_ask", name=name, what=what))),
        )

    async def follow_up_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if "waitlist" in step.values:
            if step.result:
                customer_id = step.context.activity.from_property.id
                await self.shop.catalog.join_waitlist(customer_id, step.values["waitlist"])
                await step.context.send_activity(await self._where_told(step, customer_id))
            else:
                await step.context.send_activity(reply(text(step.context, "stock.waitlist_no")))
            return await step.end_dialog()
        chosen = step.result.value
        if chosen == NO_THANKS:
            await step.context.send_activity(reply(text(step.context, "no_problem")))
            return await step.end_dialog()
        options = {
            "product": step.values["product"],
            "size": step.values.get("size"),
            "colour": step.values.get("colour"),
            "quantity": step.values.get("quantity"),
        }
        if chosen.startswith("Add "):
            options["colour"] = chosen.removeprefix("Add ")
        elif chosen.startswith("Size "):
            options["size"] = chosen.removeprefix("Size ")
        return await step.begin_dialog(AddToCartDialog.__name__, options)

    async def _where_told(self, step: WaterfallStepContext, customer_id: str):
        """Say truthfully where the notice will reach the shopper; one who can only be reached in
        the web chat is offered a phone channel instead (the continue-on-another-channel link)."""
        ctx = step.context
        where = await self.shop.accounts.notice_channel(customer_id)
        if where is not None and where in pushable():
            return reply(text(ctx, "stock.waitlist_done_on", channel=channel_name(ctx, where)))
        phones = [c for c in self.shop.accounts.channels() if c in pushable()]
        if not phones:
            return reply(text(ctx, "stock.waitlist_done_web"))
        return reply(
            text(ctx, "stock.waitlist_done_web") + " " + text(ctx, "stock.waitlist_phone_offer"),
            quick=[Choice(text(ctx, f"btn.notice_on.{c}"), command("link_account", channel=c)) for c in phones],
        )

    async def done_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.end_dialog()
