"""Checkout: shipping address (remembered), a receipt contact (remembered, optional), a discount
code at any point, the confirmation with shipping, total and delivery date, the order and its
payment link."""

from __future__ import annotations

import logging
import re
from datetime import date

from botbuilder.dialogs import (
    ComponentDialog,
    DialogContext,
    DialogTurnResult,
    WaterfallDialog,
    WaterfallStepContext,
)
from botbuilder.dialogs.prompts import PromptOptions, PromptValidatorContext, TextPrompt

from bot.conversation.turn import command, turn_info
from bot.messages import Choice, link, reply
from bot.store.models import utcnow
from dialogs.discount_dialog import DiscountDialog, wants_discount
from dialogs.shop import ShopServices, cart_summary, confirm_prompt, delivery_date, money, text
from integrations.cart import OutOfStock
from integrations.orders import OrderError, Quote
from integrations.shipping import AddressCheck, ShippingUnavailable

log = logging.getLogger(__name__)

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"\+?\d{7,15}")
SKIP_WORDS = {"skip", "no", "none", "no thanks", "nope", "n/a", "跳過", "略過", "不用", "不用了", "不要", "否"}
SKIPPED = ""  # the shopper gave no receipt contact


async def plausible_address(prompt: PromptValidatorContext) -> bool:
    text = (prompt.recognized.value or "").strip()
    return (
        prompt.recognized.succeeded
        and 8 <= len(text) <= 300
        and bool(re.search(r"\d", text))
        and bool(re.search(r"[^\W\d_]{2,}", text))
    )


def receipt_contact(answer: str) -> str | None:
    """An e-mail address (lower case) or a phone number (digits, with its +), SKIPPED for
    "skip", None for anything else."""
    answer = answer.strip()
    if answer.lower().strip(" .!。！") in SKIP_WORDS:
        return SKIPPED
    if len(answer) <= 254 and EMAIL_RE.fullmatch(answer):
        return answer.lower()
    phone = re.sub(r"[\s().-]", "", answer)
    return phone if PHONE_RE.fullmatch(phone) else None


async def valid_contact(prompt: PromptValidatorContext) -> bool:
    return prompt.recognized.succeeded and receipt_contact(prompt.recognized.value or "") is not None


class CheckoutDialog(ComponentDialog):
    """Options: resume (address and contact already given, when a discount code interrupted)."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(CheckoutDialog.__name__)
        self.shop = shop
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(TextPrompt("address", plausible_address))
        self.add_dialog(TextPrompt("contact", valid_contact))
        self.add_dialog(DiscountDialog(shop))
        self.add_dialog(
            WaterfallDialog(
                "steps",
                [
                    self.discount_step,
                    self.saved_address_step,
                    self.ask_address_step,
                    self.saved_contact_step,
                    self.ask_contact_step,
                    self.confirm_step,
                    self.place_order_step,
                ],
            )
        )
        self.initial_dialog_id = "steps"

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        """ "Apply code X" at any question of the checkout: apply it, then carry on from where the
        shopper was, with what they had answered, and show the new total."""
        intent = turn_info(inner_dc.context).intent
        answering_for_code = inner_dc.active_dialog is not None and inner_dc.active_dialog.id == DiscountDialog.__name__
        if answering_for_code or not wants_discount(intent):
            return await super().on_continue_dialog(inner_dc)
        waterfall = inner_dc.stack[-1]  # the bottom of the stack: our steps, under their prompt
        answered = {
            k: v
            for k, v in (waterfall.state.get(WaterfallDialog.PersistedValues) or {}).items()
            if k in ("address", "contact", "arrives_by")
        }
        await inner_dc.cancel_all_dialogs()
        return await inner_dc.begin_dialog(
            "steps", {"resume": answered, "discount": intent.entities.discount_code or ""}
        )

    async def discount_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options = step.options or {}
        step.values.update(options.get("resume") or {})
        if "discount" in options:
            return await step.begin_dialog(DiscountDialog.__name__, {"code": options["discount"] or None})
        return await step.next(None)

    async def saved_address_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        cart = await self.shop.carts.get(step.context.activity.from_property.id)
        if not cart.lines:
            await step.context.send_activity(
                reply(
                    text(step.context, "checkout.empty_yet"),
                    quick=[Choice(text(step.context, "btn.browse"), command("product_search"))],
                )
            )
            return await step.end_dialog()
        if "address" in step.values:
            return await step.next(True)
        saved = turn_info(step.context).shipping_address
        if not saved and self.shop.customers is not None:  # a returning customer of the shop's website
            saved = await self.shop.customers.saved_address(step.context.activity.from_property.id)
        if saved and "address_problem" not in step.values:
            step.values["saved"] = saved
            return await step.prompt(
                "confirm", PromptOptions(prompt=reply(text(step.context, "checkout.saved_address", address=saved)))
            )
        return await step.next(False)

    async def ask_address_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if "address" in step.values:
            return await step.next(step.values["address"])
        if step.result and "saved" in step.values:
            return await step.next(step.values["saved"])
        problem = step.values.get("address_problem")  # the carrier service could not use the last one
        return await step.prompt(
            "address",
            PromptOptions(
                prompt=reply(text(step.context, f"checkout.address_{problem}" if problem else "checkout.ask_address")),
                retry_prompt=reply(text(step.context, "checkout.bad_address")),
            ),
        )

    async def saved_contact_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        address = " ".join(str(step.result).split())
        if "arrives_by" not in step.values or step.values.get("address") != address:
            check = await self._check(address)
            if check.problem:  # ask again, saying what the carrier service needs
                kept = {k: v for k, v in step.values.items() if k == "contact"}
                return await step.replace_dialog("steps", {"resume": {**kept, "address_problem": check.problem}})
            address = check.address
            step.values["arrives_by"] = check.arrives_by.isoformat() if check.arrives_by else None
        step.values["address"] = address
        step.values.pop("address_problem", None)
        if "contact" in step.values:
            return await step.next(True)
        saved = await self.shop.profiles.receipt_contact(step.context.activity.from_property.id)
        if saved:
            step.values["saved_contact"] = saved
            return await step.prompt(
                "confirm", PromptOptions(prompt=reply(text(step.context, "checkout.saved_contact", contact=saved)))
            )
        return await step.next(False)

    async def _check(self, address: str) -> AddressCheck:
        try:
            return await self.shop.shipping.check_address(address, utcnow())
        except ShippingUnavailable as exc:  # checkout goes on: the shop's own estimate, unchecked
            log.warning("carrier service unavailable at checkout", extra={"reason": str(exc)})
            return AddressCheck(address)

    async def ask_contact_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if "contact" in step.values:
            return await step.next(step.values["contact"])
        if step.result and "saved_contact" in step.values:
            return await step.next(step.values["saved_contact"])
        skip = [Choice(text(step.context, "btn.skip"), text(step.context, "btn.skip"))]
        return await step.prompt(
            "contact",
            PromptOptions(
                prompt=reply(text(step.context, "checkout.ask_contact"), quick=skip),
                retry_prompt=reply(text(step.context, "checkout.bad_contact"), quick=skip),
            ),
        )

    async def confirm_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        contact = receipt_contact(str(step.result or ""))
        step.values["contact"] = contact if contact is not None else SKIPPED
        ctx = step.context
        quote = await self.shop.orders.quote(ctx.activity.from_property.id)
        names = await self.shop.line_names(ctx, [line.product_sku for line in quote.cart.lines])
        receipt = text(ctx, "checkout.receipt", contact=step.values["contact"]) if step.values["contact"] else ""
        summary = cart_summary(quote.cart, ctx, names, "cart.subtotal", currency=self.shop.currency)
        changed = [
            text(
                ctx,
                "checkout.price_changed",
                name=names.get(line.product_sku, line.name),
                old=money(ctx, line.seen_price_cents or 0, self.shop.currency),
                new=money(ctx, line.unit_price_cents, self.shop.currency),
            )
            for line in quote.cart.lines
            if line.price_changed
        ]
        if changed:  # told before the total they confirm, which is at the new price
            await self.shop.carts.accept_prices(ctx.activity.from_property.id)
            summary = "\n".join(changed) + "\n" + summary
        return await step.prompt(
            "confirm",
            PromptOptions(
                prompt=reply(
                    text(
                        ctx,
                        "checkout.confirm",
                        summary=summary,
                        charges=charges(ctx, quote, self.shop.currency),
                        date=delivery_date(ctx, arrives_by(step.values) or quote.arrives_by),
                        receipt=receipt,
                        address=step.values["address"],
                    )
                )
            ),
        )

    async def place_order_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if not step.result:
            await step.context.send_activity(reply(text(step.context, "checkout.not_placed")))
            return await step.end_dialog()
        customer_id = step.context.activity.from_property.id
        try:
            order = await self.shop.orders.place(
                customer_id,
                step.values["address"],
                self.shop.payments,
                step.values["contact"] or None,
                arrives_by(step.values),
            )
        except OutOfStock:
            await step.context.send_activity(
                reply(
                    text(step.context, "checkout.sold_out"),
                    quick=[Choice(text(step.context, "btn.view_cart"), command("view_cart"))],
                )
            )
            return await step.end_dialog()
        except OrderError:
            await step.context.send_activity(reply(text(step.context, "checkout.empty")))
            return await step.end_dialog()
        ctx, currency = step.context, self.shop.currency
        shipping = (
            text(ctx, "checkout.placed_shipping", fee=money(ctx, order.shipping_cents, currency))
            if order.shipping_cents
            else text(ctx, "checkout.placed_free")
        )
        total = money(ctx, order.total_cents, currency)
        if not order.payment_url:  # the payment provider is down: the order waits for its link
            await ctx.send_activity(reply(text(ctx, "checkout.pay_later", number=order.number, total=total)))
            return await step.end_dialog()
        await ctx.send_activity(
            reply(
                text(
                    ctx,
                    "checkout.placed",
                    number=order.number,
                    total=total,
                    shipping=shipping,
                    date=delivery_date(ctx, order.estimated_delivery),
                )
                + (" " + text(ctx, "checkout.discount", code=order.discount_code) if order.discount_code else ""),
                links=[link(text(ctx, "btn.pay_now"), order.payment_url)],
            )
        )
        return await step.end_dialog()


def arrives_by(values: dict) -> date | None:
    """The carrier's delivery date for the checked address, if the carrier service gave one."""
    day = values.get("arrives_by")
    return date.fromisoformat(day) if isinstance(day, str) else None


def charges(context, quote: Quote, currency: str) -> str:
    """The discount, shipping and total lines of a confirmation, amounts in `currency`."""
    lines = []
    if quote.discount_code:
        lines.append(
            text(
                context,
                "checkout.discount_line",
                code=quote.discount_code,
                percent=quote.discount_percent,
                amount=money(context, quote.discount_cents, currency),
            )
        )
    lines.append(
        text(context, "checkout.shipping_line", fee=money(context, quote.shipping_cents, currency))
        if quote.shipping_cents
        else text(context, "checkout.shipping_free")
    )
    lines.append(text(context, "checkout.total_line", total=money(context, quote.total_cents, currency)))
    return "\n".join(lines)
