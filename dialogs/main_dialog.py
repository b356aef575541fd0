"""The root dialog: routes each new intent to its journey, answers small talk, lets the shopper
change the subject mid-journey, and asks when it is unsure."""
from __future__ import annotations

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogContext, DialogTurnResult, DialogTurnStatus
from botbuilder.dialogs.prompts import Prompt

from bot.messages import Choice, reply
from bot.nlu import FALLBACK, Intent, normalise
from bot.turn import command, turn_info
from dialogs.account_dialog import LinkDialog, PrivacyDialog
from dialogs.add_to_cart_dialog import AddToCartDialog
from dialogs.cancel_order_dialog import CancelOrderDialog
from dialogs.cart_dialog import CartDialog
from dialogs.checkout_dialog import CheckoutDialog
from dialogs.discount_dialog import DiscountDialog
from dialogs.faq_dialog import FaqDialog
from dialogs.order_status_dialog import OrderStatusDialog
from dialogs.return_dialog import ReturnDialog
from dialogs.search_dialog import SearchDialog
from dialogs.shop import ShopServices
from dialogs.stock_dialog import StockDialog
from dialogs.texts import MENU_LABELS, language, menu_label, text, yes_no_zh

# Answers that belong to a question, never a change of subject.
REPLY_INTENTS = {FALLBACK, "affirm", "deny", "greet", "thanks"}
# Intents that say nothing about what the shopper wants help with (left out of a handoff summary).
CHATTER = REPLY_INTENTS | {"goodbye", "human_agent"}
SWITCH_CONFIDENCE = 0.5
LABELS = {intent: labels["en"] for intent, labels in MENU_LABELS.items()}  # English titles by intent
MENU = ["product_search", "view_cart", "order_status", "faq"]


def menu(intents: list[str] = MENU, context: TurnContext | None = None) -> list[Choice]:
    """Menu buttons, titled in the shopper's language when `context` is given."""
    return [Choice(menu_label(context, i), command(i)) for i in intents if i in LABELS]


class MainDialog(ComponentDialog):
    """Stays at the root of every customer's dialog stack; journeys run as its children."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(MainDialog.__name__)
        self.shop = shop
        for dialog in (
            StockDialog(shop), SearchDialog(shop), AddToCartDialog(shop), CartDialog(shop),
            CheckoutDialog(shop), OrderStatusDialog(shop), CancelOrderDialog(shop), ReturnDialog(shop),
            FaqDialog(shop), LinkDialog(shop), PrivacyDialog(shop), DiscountDialog(shop),
        ):
            self.add_dialog(dialog)

    async def on_begin_dialog(self, inner_dc: DialogContext, options: object) -> DialogTurnResult:
        if await self._hand_over(inner_dc):
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return await self._route(inner_dc)

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        if await self._hand_over(inner_dc):
            return DialogTurnResult(DialogTurnStatus.Waiting)
        intent = turn_info(inner_dc.context).intent
        if inner_dc.active_dialog is not None and self._changes_subject(inner_dc, intent):
            await inner_dc.cancel_all_dialogs()
        if inner_dc.active_dialog is not None:
            await inner_dc.continue_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return await self._route(inner_dc)

    async def _hand_over(self, inner_dc: DialogContext) -> bool:
        """Hand the conversation to a person when the shopper asks, a retailer's rule applies,
        the shopper is frustrated or the bot was unsure twice in a row. True if it did."""
        handoff = self.shop.handoff
        if handoff is None:
            return False
        context = inner_dc.context
        info = turn_info(context)
        intent = info.intent
        said = normalise(context.activity.text or "").strip().lower()
        memory = await self.shop.memory.get(context, dict)
        seen = memory.setdefault("handoff", {"fallbacks": 0, "last": "", "repeats": 0, "intents": []})
        # The same words again and again, not a "yes" to several questions or a tapped button.
        if len(said) >= 4 and not said.startswith("/") and intent.name not in REPLY_INTENTS - {FALLBACK}:
            seen["repeats"] = seen["repeats"] + 1 if said == seen["last"] else 1
            seen["last"] = said
        if intent.name != FALLBACK:
            seen["fallbacks"] = 0
        elif inner_dc.active_dialog is None:  # an answer to a question is not the bot being unsure
            seen["fallbacks"] += 1
        if intent.name not in CHATTER:
            seen["intents"] = (seen["intents"] + [intent.name])[-5:]
        if intent.entities.faq:
            seen["faq"] = intent.entities.faq
        trigger = await handoff.triggered(info.customer_id, context.activity.text or "", intent,
                                          seen["fallbacks"], seen["repeats"])
        if trigger is None:
            return False
        opened = await handoff.open(info.customer_id, trigger, language(context), list(seen["intents"]),
                                    seen.get("faq"))
        memory["handoff"] = {"fallbacks": 0, "last": "", "repeats": 0, "intents": []}
        await inner_dc.cancel_all_dialogs()
        if opened.staffed:
            await context.send_activity(reply(text(context, "handoff.queued")))
        else:
            await context.send_activity(reply(text(context, "handoff.offline", opens=opened.opens)))
        return True

    @staticmethod
    def _changes_subject(inner_dc: DialogContext, intent: Intent) -> bool:
        if intent.name in REPLY_INTENTS or intent.confidence < SWITCH_CONFIDENCE:
            return False
        if intent.name == "apply_discount" and inner_dc.active_dialog.id in (CheckoutDialog.__name__,
                                                                            DiscountDialog.__name__):
            return False  # the checkout takes the code and carries on; a code answers "What's the code?"
        text = (inner_dc.context.activity.text or "").strip().lower()
        if text.startswith("/"):
            return True
        prompt = _active_prompt(inner_dc)
        if prompt is None:
            return True
        if yes_no_zh(text) is not None:  # 是/否 to a question
            return False
        choices = getattr(prompt.get("options"), "choices", None) or []
        values = {str(getattr(c, "value", c)).lower() for c in choices}
        # What a tap sends back is the button's title, which may be in the shopper's language.
        for choice in choices:
            action = getattr(choice, "action", None)
            values |= {str(v).lower() for v in (getattr(action, "title", None), getattr(action, "value", None)) if v}
        if text in values or (text.isascii() and text.isdecimal() and 0 < int(text) <= len(values)):
            return False
        # A free-text prompt (an address) takes almost anything; only a clear request interrupts.
        return bool(choices) or intent.confidence >= 0.8

    async def _route(self, inner_dc: DialogContext) -> DialogTurnResult:
        context = inner_dc.context
        intent = turn_info(context).intent
        e = intent.entities
        options = {
            "product": e.product, "category": e.category, "size": e.size, "colour": e.colour,
            "quantity": e.quantity, "order_number": e.order_number, "faq": e.faq, "channel": e.channel,
            "text": context.activity.text or "",
        }
        if e.product:
            await self.shop.remember_product(context, e.product)
        journeys = {
            "check_stock": (StockDialog, {}),
            "product_search": (SearchDialog, {}),
            "recommend": (SearchDialog, {"recommend": True}),
            "add_to_cart": (AddToCartDialog, {}),
            "view_cart": (CartDialog, {"mode": "view"}),
            "remove_from_cart": (CartDialog, {"mode": "remove"}),
            "change_quantity": (CartDialog, {"mode": "quantity"}),
            "checkout": (CheckoutDialog, {}),
            "order_status": (OrderStatusDialog, {}),
            "cancel_order": (CancelOrderDialog, {}),
            "return_item": (ReturnDialog, {}),
            "faq": (FaqDialog, {}),
            "link_account": (LinkDialog, {}),
            "privacy_info": (PrivacyDialog, {}),
            "forget_me": (PrivacyDialog, {"forget": True}),
            "apply_discount": (DiscountDialog, {"code": e.discount_code}),
        }
        if intent.name in journeys:
            dialog, extra = journeys[intent.name]
            await inner_dc.begin_dialog(dialog.__name__, {**options, **extra})
        else:
            await self._small_talk(context, intent)
        return DialogTurnResult(DialogTurnStatus.Waiting)

    async def _small_talk(self, context: TurnContext, intent: Intent) -> None:
        customer_id = context.activity.from_property.id
        name = intent.name
        if name == "greet":
            await context.send_activity(reply(text(context, "greet"), quick=menu(context=context)))
        elif name == "thanks":
            await context.send_activity(reply(text(context, "thanks")))
        elif name == "goodbye":
            await context.send_activity(reply(text(context, "goodbye")))
        elif name in ("affirm", "deny"):
            await context.send_activity(reply(text(context, "ok_menu"), quick=menu(context=context)))
        elif name == "opt_out":
            await self.shop.profiles.set_consent(customer_id, False)
            await context.send_activity(reply(text(context, "opt_out")))
        elif name == "opt_in":
            await self.shop.profiles.set_consent(customer_id, True)
            await context.send_activity(reply(text(context, "opt_in")))
        elif name == "prefer_channel":
            await self.shop.accounts.prefer_current(customer_id)
            await context.send_activity(reply(text(context, "prefer.done")))
        elif name == "human_agent":
            contact = self.shop.faq.answer("contact", language(context))
            await context.send_activity(reply(contact or text(context, "support")))
        else:
            await self._clarify(context, intent)

    @staticmethod
    async def _clarify(context: TurnContext, intent: Intent) -> None:
        guesses = [name for name, score in intent.candidates if name in LABELS and score >= 0.1]
        if guesses:
            await context.send_activity(
                reply(text(context, "clarify_guess"),
                      quick=menu(guesses + [m for m in MENU if m not in guesses], context)[:4])
            )
        else:
            await context.send_activity(reply(text(context, "clarify"), quick=menu(context=context)))


def _active_prompt(inner_dc: DialogContext) -> dict | None:
    """The state of the prompt waiting for an answer, however deep it is nested."""
    dialogs, instance = inner_dc.dialogs, inner_dc.active_dialog
    while instance is not None:
        dialog = dialogs.find_dialog(instance.id)
        if isinstance(dialog, Prompt):
            return instance.state
        if not isinstance(dialog, ComponentDialog):
            return None
        stack = instance.state[ComponentDialog.persisted_dialog_state].dialog_stack
        # ComponentDialog keeps its children in `_dialogs`; botbuilder offers no public accessor.
        dialogs, instance = dialog._dialogs, (stack[0] if stack else None)
    return None
