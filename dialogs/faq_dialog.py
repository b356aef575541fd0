"""Shop policy questions answered from the FAQ entries."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext

from bot.messages import Choice, reply
from bot.turn import command
from dialogs.shop import ShopServices
from dialogs.texts import language, text


class FaqDialog(ComponentDialog):
    """Options: faq (entry key) when the question matched one."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(FaqDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.answer_step]))
        self.initial_dialog_id = "steps"

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        key = (step.options or {}).get("faq")
        answer = self.shop.faq.answer(key, language(step.context)) if key else None
        if answer:
            await step.context.send_activity(reply(answer))
        else:
            await step.context.send_activity(
                reply(text(step.context, "faq.topics"),
                      quick=[Choice(title, command("faq", faq=k)) for k, title in self.shop.faq.topics(language(step.context))][:8])
            )
        return await step.end_dialog()
