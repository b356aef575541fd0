"""Shop policy questions answered from the FAQ entries."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext

from bot.conversation.turn import command
from bot.messages import Choice, reply
from dialogs.shop import ShopServices, language, text


class FaqDialog(ComponentDialog):
    """Options: faq (entry key) when the question matched one."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(FaqDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.answer_step]))
        self.initial_dialog_id = "steps"

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options = step.options or {}
        # A message of several questions gets every answer, in the order asked.
        keys = options.get("faqs") or ([options["faq"]] if options.get("faq") else [])
        answers = [a for a in (self.shop.faq.answer(k, language(step.context)) for k in keys) if a]
        if answers:
            await step.context.send_activity(reply("\n\n".join(answers)))
        else:
            await step.context.send_activity(
                reply(
                    text(step.context, "faq.topics"),
                    quick=[
                        Choice(title, command("faq", faq=k))
                        for k, title in self.shop.faq.topics(language(step.context))
                    ][:8],
                )
            )
        return await step.end_dialog()
