"""Discount codes: "apply code WELCOME5" or "I have a coupon" puts a code on the open cart, and
the checkout takes it off; an unknown code gets a clear answer."""

from __future__ import annotations

import re

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions, TextPrompt

from bot.conversation.turn import turn_info
from bot.messages import reply
from bot.nlu import Intent, discount_code
from dialogs.shop import ShopServices, text

CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,31}")
# Below this an "apply_discount" guess with no code in it does not interrupt a checkout question
# (an address such as "12 Coupon Street" scores about 0.5).
INTERRUPT_CONFIDENCE = 0.6


def wants_discount(intent: Intent) -> bool:
    """Does the shopper ask to use a discount code (with a code, or to be asked for one)?"""
    return intent.name == "apply_discount" and (
        intent.entities.discount_code is not None or intent.confidence >= INTERRUPT_CONFIDENCE
    )


def code_in(answer: str) -> str | None:
    """The code in an answer to "What's the code?": "WELCOME5", "it's welcome5", "code WELCOME5"."""
    found = discount_code(answer)
    if found:
        return found
    words = answer.strip().split()
    return words[-1].upper() if words and CODE_RE.fullmatch(words[-1]) else None


class DiscountDialog(ComponentDialog):
    """Options: code (upper case). Asks for the code when none was given."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(DiscountDialog.__name__)
        self.shop = shop
        self.add_dialog(TextPrompt("code"))
        self.add_dialog(WaterfallDialog("steps", [self.ask_step, self.apply_step]))
        self.initial_dialog_id = "steps"

    async def ask_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        code = (step.options or {}).get("code")
        if code:
            return await step.next(code)
        return await step.prompt("code", PromptOptions(prompt=reply(text(step.context, "discount.ask"))))

    async def apply_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        ctx = step.context
        given = (step.options or {}).get("code")
        code = given or turn_info(ctx).intent.entities.discount_code or code_in(str(step.result or ""))
        if not code:
            await ctx.send_activity(reply(text(ctx, "discount.none_seen")))
            return await step.end_dialog()
        percent = await self.shop.carts.apply_code(ctx.activity.from_property.id, code)
        if percent is None:
            await ctx.send_activity(reply(text(ctx, "discount.unknown", code=code)))
        else:
            await ctx.send_activity(reply(text(ctx, "discount.applied", code=code, percent=percent)))
        return await step.end_dialog(percent)
