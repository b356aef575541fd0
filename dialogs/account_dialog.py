"""The shopper's account: continue on another channel, see what we keep, be forgotten."""
from __future__ import annotations

import re

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import link, reply
from dialogs.shop import ShopServices, choice_prompt, confirm_prompt, prompt_choices

NAMES = {"whatsapp": "WhatsApp", "messenger": "Messenger", "sms": "SMS", "web": "Web chat"}
MENTIONS = [
    ("whatsapp", r"whats\s*app|\bwa\b"),
    ("messenger", r"messenger|facebook|\bfb\b"),
    ("sms", r"\bsms\b|\btext\b|my phone|\bphone\b"),
    ("web", r"\bweb\b|website|browser|computer|laptop"),
]


def mentioned_channel(text: str, available: list[str]) -> str | None:
    for channel, pattern in MENTIONS:
        if channel in available and re.search(pattern, text, re.I):
            return channel
    return None


class LinkDialog(ComponentDialog):
    """Options: text. Offers a one-tap link and a code to carry on elsewhere."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(LinkDialog.__name__)
        self.shop = shop
        self.add_dialog(choice_prompt("choice"))
        self.add_dialog(WaterfallDialog("steps", [self.channel_step, self.offer_step]))
        self.initial_dialog_id = "steps"

    async def channel_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        available = self.shop.accounts.channels()
        chosen = mentioned_channel((step.options or {}).get("text", ""), available)
        if chosen:
            return await step.next(chosen)
        step.values["available"] = available
        return await step.prompt(
            "choice",
            PromptOptions(prompt=reply("Where would you like to continue?"),
                          choices=prompt_choices([NAMES[c] for c in available])),
        )

    async def offer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        channel = step.result if isinstance(step.result, str) else step.values["available"][step.result.index]
        offer = await self.shop.accounts.offer(step.context.activity.from_property.id, channel)
        name = NAMES[channel]
        text = (f"To continue on {name}, tap the link below and send the message it prepares, or send the code "
                f"{offer.code} there. It works once, for {offer.minutes} minutes. Your cart and this "
                "conversation come with you.")
        await step.context.send_activity(reply(text, links=[link(f"Open {name}", offer.url)] if offer.url else None))
        return await step.end_dialog()


class PrivacyDialog(ComponentDialog):
    """Options: forget (bool). Shows what we keep, or erases it after the shopper confirms."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(PrivacyDialog.__name__)
        self.shop = shop
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(WaterfallDialog("steps", [self.start_step, self.erase_step]))
        self.initial_dialog_id = "steps"

    async def start_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        customer_id = step.context.activity.from_property.id
        if not (step.options or {}).get("forget"):
            data = await self.shop.accounts.describe(customer_id)
            lines = [
                "Here is what we keep about you:",
                f"• Chats: {', '.join(data['channels']) or 'none'}",
                f"• Language: {data['language']}",
                f"• Shipping address: {data['shipping_address'] or 'none saved'}",
                f"• Offers and reminders: {data['marketing']}",
                f"• Messages: {data['messages']}, orders: {data['orders']}",
                "Say “delete my data” if you want us to forget you.",
            ]
            await step.context.send_activity(reply("\n".join(lines)))
            return await step.end_dialog()
        return await step.prompt(
            "confirm",
            PromptOptions(prompt=reply(
                "This deletes your chats, cart, saved address and contact details. Orders stay in our records "
                "without your personal details. Delete everything?")),
        )

    async def erase_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if not step.result:
            await step.context.send_activity(reply("OK, nothing was deleted."))
            return await step.end_dialog()
        counts = await self.shop.accounts.forget(step.context.activity.from_property.id)
        await self.shop.memory.delete(step.context)
        await step.context.send_activity(
            reply(f"Done: your details and {counts['messages']} messages are deleted. If you write again, "
                  "we start fresh.")
        )
        return await step.end_dialog()
