"""The bot: each message continues the customer's dialog stack under `MainDialog`."""

from __future__ import annotations

from botbuilder.core import ActivityHandler, BotState, TurnContext
from botbuilder.dialogs import DialogSet, DialogTurnStatus

from dialogs.main_dialog import MainDialog


class ShopBot(ActivityHandler):
    def __init__(self, conversation_state: BotState, main_dialog: MainDialog) -> None:
        self._dialogs = DialogSet(conversation_state.create_property("DialogState"))
        self._dialogs.add(main_dialog)
        self._main_id = main_dialog.id

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        dc = await self._dialogs.create_context(turn_context)
        result = await dc.continue_dialog()
        if result.status == DialogTurnStatus.Empty:
            await dc.begin_dialog(self._main_id)
