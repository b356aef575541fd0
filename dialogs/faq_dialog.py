"""Shop policy questions answered from the FAQ entries."""
from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext

from bot.messages import Choice, reply
from bot.turn import command, turn_info
from dialogs.shop import ShopServices


class FaqDialog(ComponentDialog):
    """Options: faq (entry key) when the question matched one."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(FaqDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.answer_step]))
        self.initial_dialog_id = "steps"

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        key = (step.options or {}).get("faq")
        answer = self.shop.faq.answer(key, turn_info(step.context).language) if key else None
        if answer:
            await step.context.send_activity(reply(answer))
        else:
            await step.context.send_activity(
                reply("I can answer questions about these topics:",
                      quick=[Choice(title, command("faq", faq=k)) for k, title in self.shop.faq.topics()][:8])
            )
        return await step.end_dialog()
