"""Marketing consent: a subscription is asked for in so many words and confirmed before it counts."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions

from bot.messages import reply
from dialogs.shop import ShopServices, confirm_prompt, text


class ConsentDialog(ComponentDialog):
    """ "Get offers and reminders here? Yes / No": only a yes records consent (a consent record that
    an ordinary phrase made would be a false one; WhatsApp and US SMS rules need an explicit opt-in)."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(ConsentDialog.__name__)
        self.shop = shop
        self.add_dialog(confirm_prompt("confirm"))
        self.add_dialog(WaterfallDialog("steps", [self.ask_step, self.record_step]))
        self.initial_dialog_id = "steps"

    async def ask_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.prompt("confirm", PromptOptions(prompt=reply(text(step.context, "consent.ask"))))

    async def record_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.result:
            await self.shop.profiles.set_consent(step.context.activity.from_property.id, True)
            await step.context.send_activity(reply(text(step.context, "opt_in")))
        else:
            await step.context.send_activity(reply(text(step.context, "consent.declined")))
        return await step.end_dialog()
