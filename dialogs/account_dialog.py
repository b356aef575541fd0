"""The shopper's account: continue on another channel, see what we keep, be forgotten."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.channel import named_in
from bot.conversation.turn import command
from bot.i18n import EN, has_text
from bot.i18n import channel_name as channel_name_in
from bot.messages import Choice, link, reply
from dialogs.shop import ShopServices, choice_prompt, confirm_prompt, language, prompt_choices, text


def mentioned_channel(text: str, available: list[str]) -> str | None:
    """The channel the shopper's words name, among those they can continue on."""
    return named_in(text, available)


def channel_name(context, channel: str) -> str:
    """A channel's name as the shopper reads it."""
    return channel_name_in(language(context), channel)


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
        options = step.options or {}
        named = options.get("channel")
        chosen = named if named in available else mentioned_channel(options.get("text", ""), available)
        if chosen:
            return await step.next(chosen)
        step.values["available"] = available
        return await step.prompt(
            "choice",
            PromptOptions(
                prompt=reply(text(step.context, "link.where")),
                choices=prompt_choices([(channel_name(step.context, c), channel_name_in(EN, c)) for c in available]),
            ),
        )

    async def offer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        channel = step.result if isinstance(step.result, str) else step.values["available"][step.result.index]
        offer = await self.shop.accounts.offer(step.context.activity.from_property.id, channel)
        name = channel_name(step.context, channel)
        message = text(step.context, "link.offer", name=name, code=offer.code, minutes=offer.minutes)
        links = [link(text(step.context, "btn.open_channel", name=name), offer.url)] if offer.url else None
        await step.context.send_activity(reply(message, links=links))
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
            ctx = step.context

            def known(prefix: str, value: str) -> str:
                return text(ctx, f"{prefix}.{value}") if has_text(f"{prefix}.{value}") else value

            lines = [
                text(ctx, "privacy.header"),
                text(ctx, "privacy.chats", channels=", ".join(data["channels"]) or text(ctx, "privacy.none")),
                text(ctx, "privacy.language", language=known("privacy.language", data["language"])),
                text(ctx, "privacy.address", address=data["shipping_address"] or text(ctx, "privacy.none_saved")),
                text(ctx, "privacy.marketing", marketing=known("privacy.marketing", data["marketing"])),
                text(ctx, "privacy.counts", messages=data["messages"], orders=data["orders"]),
                text(ctx, "privacy.updates", channel=channel_name_in(EN, data["updates"]) if data["updates"] else "-"),
                text(ctx, "privacy.how_to_forget"),
            ]
            await step.context.send_activity(
                reply("\n".join(lines), quick=[Choice(text(ctx, "prefer.button"), command("prefer_channel"))])
            )
            return await step.end_dialog()
        return await step.prompt(
            "confirm",
            PromptOptions(prompt=reply(text(step.context, "privacy.confirm"))),
        )

    async def erase_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if not step.result:
            await step.context.send_activity(reply(text(step.context, "privacy.kept")))
            return await step.end_dialog()
        counts = await self.shop.accounts.forget(step.context.activity.from_property.id)
        await self.shop.memory.delete(step.context)
        await step.context.send_activity(reply(text(step.context, "privacy.erased", messages=counts["messages"])))
        return await step.end_dialog()
