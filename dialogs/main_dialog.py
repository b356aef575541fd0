"""The root dialog: routes each new intent to its journey, answers small talk, lets the shopper
change the subject mid-journey, and asks when it is unsure."""

from __future__ import annotations

from dataclasses import replace

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogContext, DialogTurnResult, DialogTurnStatus
from botbuilder.dialogs.prompts import ConfirmPrompt, Prompt

from bot.conversation import timezones
from bot.conversation.turn import FELL_BACK, RESUME, TURN_INFO_KEY, command, note, turn_info
from bot.i18n import MENU_LABELS, yes_no_zh
from bot.messages import Choice, reply
from bot.nlu import FALLBACK, Intent, normalise
from bot.store.models import utcnow
from dialogs.account_dialog import LinkDialog, PrivacyDialog
from dialogs.add_to_cart_dialog import AddToCartDialog
from dialogs.cancel_order_dialog import CancelOrderDialog
from dialogs.cart_dialog import CartDialog
from dialogs.checkout_dialog import CheckoutDialog
from dialogs.consent_dialog import ConsentDialog
from dialogs.discount_dialog import DiscountDialog
from dialogs.faq_dialog import FaqDialog
from dialogs.order_help_dialog import AddressChangeDialog, RefundStatusDialog
from dialogs.order_status_dialog import OrderStatusDialog
from dialogs.price_dialog import PriceDialog
from dialogs.return_dialog import ReturnDialog
from dialogs.search_dialog import SearchDialog
from dialogs.shop import ShopServices, language, menu_label, text
from dialogs.stock_dialog import StockDialog

# Answers that belong to a question, never a change of subject.
REPLY_INTENTS = {FALLBACK, "affirm", "deny", "greet", "thanks"}
# Intents that say nothing about what the shopper wants help with (left out of a handoff summary).
CHATTER = REPLY_INTENTS | {"goodbye", "human_agent", "restart"}
# Requests answered on the side: the journey in progress stays and asks its question again after.
SIDE_REQUESTS = {"link_account", "privacy_info", "prefer_channel", "faq"}
SWITCH_CONFIDENCE = 0.5
# Intents about a product, which "this", "the second one" or "in black" can complete.
PRODUCT_INTENTS = {"check_stock", "add_to_cart", "product_search", "recommend", "price_question"}
# Intents under which asking for an item the shop does not sell is told so, also while a question waits.
NOT_SOLD_INTENTS = PRODUCT_INTENTS | {FALLBACK, "faq"}
NOT_SOLD = ("", {})  # `_journey`: answered already, no dialog to start
CANDIDATES_KEY = "shop.candidates"  # products a follow-up narrows down, for this turn's journey
LABELS = {intent: labels["en"] for intent, labels in MENU_LABELS.items()}  # English titles by intent
MENU = ["product_search", "view_cart", "order_status", "faq"]


def menu(intents: list[str] = MENU, context: TurnContext | None = None) -> list[Choice]:
    """Menu buttons, titled in the shopper's language when `context` is given."""
    return [Choice(menu_label(context, i), command(i)) for i in intents if i in LABELS]


def _not_ours(intent: Intent) -> bool:
    """The message asks about another business, or about an item the shop does not sell: told so
    ("For Amazon, please contact them directly", "Sorry, we don't sell lipstick"), also while a
    question waits."""
    e = intent.entities
    return bool(e.other_business or (e.unknown_item and not e.product and intent.name in NOT_SOLD_INTENTS))


class MainDialog(ComponentDialog):
    """Stays at the root of every customer's dialog stack; journeys run as its children."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(MainDialog.__name__)
        self.shop = shop
        for dialog in (
            StockDialog(shop),
            PriceDialog(shop),
            SearchDialog(shop),
            AddToCartDialog(shop),
            CartDialog(shop),
            CheckoutDialog(shop),
            OrderStatusDialog(shop),
            CancelOrderDialog(shop),
            ReturnDialog(shop),
            FaqDialog(shop),
            LinkDialog(shop),
            PrivacyDialog(shop),
            ConsentDialog(shop),
            DiscountDialog(shop),
            RefundStatusDialog(shop),
            AddressChangeDialog(shop),
        ):
            self.add_dialog(dialog)

    async def on_begin_dialog(self, inner_dc: DialogContext, options: object) -> DialogTurnResult:
        if turn_info(inner_dc.context).intent.name == RESUME:  # nothing in progress to resume
            return DialogTurnResult(DialogTurnStatus.Waiting)
        await self.shop.note_tap(inner_dc.context)
        if await self._time_zone(inner_dc):
            return DialogTurnResult(DialogTurnStatus.Waiting)
        await self._resolve(inner_dc)
        if await self._hand_over(inner_dc):
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return await self._route(inner_dc)

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        intent = turn_info(inner_dc.context).intent
        if intent.name == RESUME:  # the conversation moved to this chat: ask its question here
            if inner_dc.active_dialog is not None:
                await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        await self.shop.note_tap(inner_dc.context)
        if await self._time_zone(inner_dc):  # on the side: the journey asks its question again
            if inner_dc.active_dialog is not None:
                await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        prompt = _active_prompt(inner_dc)
        # An answer to a question is the question's to read, except "the second one" when the
        # question does not list the products shown last (it asks a size, or yes or no).
        if prompt is None or await self._counts_shown_list(inner_dc, prompt):
            await self._resolve(inner_dc)
            intent = turn_info(inner_dc.context).intent
        if await self._hand_over(inner_dc):
            return DialogTurnResult(DialogTurnStatus.Waiting)
        if inner_dc.active_dialog is not None and _not_ours(intent):
            # "do you sell lipstick?", "where is my amazon order" while a question waits: answered,
            # then the question is asked again
            await self._side_request(inner_dc, intent)
            return DialogTurnResult(DialogTurnStatus.Waiting)
        if inner_dc.active_dialog is not None and self._changes_subject(inner_dc, intent):
            if intent.name in SIDE_REQUESTS:
                await self._side_request(inner_dc, intent)
                return DialogTurnResult(DialogTurnStatus.Waiting)
            await inner_dc.cancel_all_dialogs()
        if inner_dc.active_dialog is not None:
            await inner_dc.continue_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return await self._route(inner_dc)

    async def _time_zone(self, inner_dc: DialogContext) -> bool:
        """ "I'm in Taipei", "my time zone is Los Angeles", "我在台北": the shopper's zone changes,
        and the reply confirms it with the time there. True if the message said so."""
        context = inner_dc.context
        zone = timezones.recognise(context.activity.text or "")
        if zone is None:
            return False
        await self.shop.profiles.set_timezone(turn_info(context).customer_id, zone)
        await context.send_activity(
            reply(text(context, "timezone.set", zone=zone, time=timezones.local_time(zone, utcnow())))
        )
        return True

    async def _hand_over(self, inner_dc: DialogContext) -> bool:
        """Hand the conversation to a person when the shopper asks, a retailer's rule applies,
        the shopper is frustrated or the bot was unsure twice in a row. True if it did."""
        context = inner_dc.context
        info = turn_info(context)
        intent = info.intent
        if intent.name == FALLBACK and inner_dc.active_dialog is None:  # an answer is not the bot being unsure
            note(context, *FELL_BACK)
        handoff = self.shop.handoff
        if handoff is None:
            return False
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
        trigger = await handoff.triggered(
            info.customer_id, context.activity.text or "", intent, seen["fallbacks"], seen["repeats"]
        )
        if trigger is None:
            return False
        opened = await handoff.open(
            info.customer_id, trigger, language(context), list(seen["intents"]), seen.get("faq")
        )
        memory["handoff"] = {"fallbacks": 0, "last": "", "repeats": 0, "intents": []}
        await inner_dc.cancel_all_dialogs()
        if opened.staffed:
            await context.send_activity(reply(text(context, "handoff.queued")))
        else:
            await context.send_activity(reply(text(context, "handoff.offline", opens=opened.opens)))
        return True

    async def _resolve(self, inner_dc: DialogContext) -> None:
        """Complete a message that refers to what the shopper was shown: "the second one" (the
        last list), "this dress" (the dress looked at last), "in black" or "size 9 please" (the
        product in focus, or the list shown last, narrowed down). The turn's intent is replaced."""
        context = inner_dc.context
        info = turn_info(context)
        intent = info.intent
        e = intent.entities
        said = (context.activity.text or "").strip()
        if said.startswith("/") or e.product:
            if e.product and intent.name == FALLBACK:  # a product named and nothing else said
                name = "check_stock" if (e.size or e.colour) else "product_search"
                self._replace(context, replace(intent, name=name, confidence=SWITCH_CONFIDENCE))
            return
        focus, shown, shown_for = await self.shop.references(context)
        acting = intent.name in PRODUCT_INTENTS and intent.confidence >= SWITCH_CONFIDENCE
        if e.ordinal is not None and shown:
            index = e.ordinal - 1 if e.ordinal > 0 else len(shown) - 1
            if 0 <= index < len(shown):
                name = intent.name if acting else (shown_for or "check_stock")
                self._act_on(context, intent, name, product=shown[index], ordinal=None)
            return
        if intent.name not in PRODUCT_INTENTS | {FALLBACK}:
            return
        short = len(said.split()) <= 5 or (len(said) <= 12 and not said.isascii())
        follow_up = bool(e.size or e.colour) and short
        if not (follow_up or e.deictic):
            return
        name = intent.name if acting and intent.name != "product_search" else "check_stock"
        if intent.name == "product_search" and not follow_up:
            name = "product_search"
        if follow_up and not e.deictic and focus == "list" and shown and e.category is None:
            context.turn_state[CANDIDATES_KEY] = shown
            self._act_on(context, intent, name)
            return
        product = await self.shop.last_product(context, e.category)
        if product is not None:
            # "add 2 in black" or "add it to my cart" after "is the tee in size M?": the size asked
            # about still holds.
            keeps_size = e.colour or name == "add_to_cart"
            size = e.size or (await self.shop.size_asked(context, product) if keeps_size else None)
            self._act_on(context, intent, name, product=product, size=size)

    async def _counts_shown_list(self, inner_dc: DialogContext, prompt: dict) -> bool:
        if turn_info(inner_dc.context).intent.entities.ordinal is None:
            return False
        _, shown, _ = await self.shop.references(inner_dc.context)
        choices = getattr(prompt.get("options"), "choices", None) or []
        return bool(shown) and len(choices) != len(shown)

    @staticmethod
    def _replace(context: TurnContext, intent: Intent) -> None:
        context.turn_state[TURN_INFO_KEY] = replace(turn_info(context), intent=intent)

    @staticmethod
    def _act_on(context: TurnContext, intent: Intent, name: str, **entities: object) -> None:
        """Make the turn's intent `name`, confident enough to act on, with these entities changed."""
        changed = replace(intent.entities, **entities) if entities else intent.entities
        MainDialog._replace(
            context,
            replace(intent, name=name, confidence=max(intent.confidence, SWITCH_CONFIDENCE), entities=changed),
        )

    async def _side_request(self, inner_dc: DialogContext, intent: Intent) -> None:
        """Answer a request that does not replace the journey in progress ("continue on
        WhatsApp" during checkout): its dialog runs on top of the journey, which asks its own
        question again once that dialog ends; a one-line answer is followed by the question."""
        journey = await self._journey(inner_dc)
        if journey == NOT_SOLD:
            await inner_dc.reprompt_dialog()
        elif journey is None:
            await self._small_talk(inner_dc.context, intent)
            await inner_dc.reprompt_dialog()
        elif inner_dc.active_dialog.id == journey[0]:  # the same request again: start it afresh
            await inner_dc.replace_dialog(*journey)
        else:
            await inner_dc.begin_dialog(*journey)

    @staticmethod
    def _changes_subject(inner_dc: DialogContext, intent: Intent) -> bool:
        if intent.name in REPLY_INTENTS or intent.confidence < SWITCH_CONFIDENCE:
            return False
        if intent.name == "apply_discount" and inner_dc.active_dialog.id in (
            CheckoutDialog.__name__,
            DiscountDialog.__name__,
        ):
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
        # A yes/no question is answered yes or no (its prompt knows the words); anything else a
        # shopper asks for clearly is a new subject. A free-text prompt (an address) takes almost
        # anything; only a clear request interrupts it.
        return bool(choices) or prompt.get("confirm", False) or intent.confidence >= 0.8

    async def _route(self, inner_dc: DialogContext) -> DialogTurnResult:
        await self._resolve(inner_dc)
        journey = await self._journey(inner_dc)
        if journey == NOT_SOLD:
            return DialogTurnResult(DialogTurnStatus.Waiting)
        if journey is not None:
            await inner_dc.begin_dialog(*journey)
        else:
            await self._small_talk(inner_dc.context, turn_info(inner_dc.context).intent)
        return DialogTurnResult(DialogTurnStatus.Waiting)

    async def _journey(self, inner_dc: DialogContext) -> tuple[str, dict] | None:
        """The dialog (id and options) for this turn's intent, or None for small talk; NOT_SOLD
        once it has told the shopper the shop does not carry what they asked for."""
        context = inner_dc.context
        intent = turn_info(context).intent
        e = intent.entities
        options = {
            "product": e.product,
            "category": e.category,
            "size": e.size,
            "colour": e.colour,
            "quantity": e.quantity,
            "order_number": e.order_number,
            "faq": e.faq,
            "faqs": list(e.faqs),
            "channel": e.channel,
            "text": context.activity.text or "",
        }
        if context.turn_state.get(CANDIDATES_KEY):
            options["candidates"] = context.turn_state[CANDIDATES_KEY]
        if _not_ours(intent):
            if e.other_business:
                said = text(context, "other_business", business=e.other_business)
            else:
                said = text(context, "not_sold", item=e.unknown_item, range=await self.shop.range_sentence(context))
            # while a question waits, its own buttons follow; the menu's would crowd them
            quick = None if inner_dc.active_dialog is not None else menu(context=context)
            await context.send_activity(reply(said.strip(), quick=quick))
            return NOT_SOLD
        if e.product:
            await self.shop.remember_product(context, e.product, e.category)
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
            "opt_in": (ConsentDialog, {}),
            "apply_discount": (DiscountDialog, {"code": e.discount_code}),
            "refund_status": (RefundStatusDialog, {}),
            "change_address": (AddressChangeDialog, {}),
            "price_question": (PriceDialog, {}),
        }
        if intent.name not in journeys:
            return None
        dialog, extra = journeys[intent.name]
        return dialog.__name__, {**options, **extra}

    async def _small_talk(self, context: TurnContext, intent: Intent) -> None:
        customer_id = context.activity.from_property.id
        name = intent.name
        if name in ("greet", "restart"):
            info = turn_info(context)
            key = "greet.name" if info.returning else "greet.first_name"
            greeting = text(context, key, name=info.display_name) if info.display_name else text(context, "greet")
            await context.send_activity(reply(greeting, quick=menu(context=context)))
        elif name == "thanks":
            await context.send_activity(reply(text(context, "thanks")))
        elif name == "goodbye":
            await context.send_activity(reply(text(context, "goodbye")))
        elif name in ("affirm", "deny"):
            await context.send_activity(reply(text(context, "ok_menu"), quick=menu(context=context)))
        elif name == "opt_out":
            await self.shop.profiles.set_consent(customer_id, False)
            await context.send_activity(reply(text(context, "opt_out")))
        elif name == "prefer_channel":
            await self.shop.accounts.prefer_current(customer_id)
            await context.send_activity(reply(text(context, "prefer.done")))
        elif name == "human_agent":
            contact = self.shop.faq.answer("contact", language(context))
            await context.send_activity(reply(contact or text(context, "support")))
        elif name in ("account_help", "feedback"):  # a person handles it (a handoff rule, when configured)
            contact = self.shop.faq.answer("contact", language(context)) or text(context, "support")
            await context.send_activity(reply(text(context, name) + " " + contact))
        else:
            await self._clarify(context, intent)

    @staticmethod
    async def _clarify(context: TurnContext, intent: Intent) -> None:
        guesses = [name for name, score in intent.candidates if name in LABELS and score >= 0.1]
        if guesses:
            await context.send_activity(
                reply(
                    text(context, "clarify_guess"),
                    quick=menu(guesses + [m for m in MENU if m not in guesses], context)[:4],
                )
            )
        else:
            await context.send_activity(reply(text(context, "clarify"), quick=menu(context=context)))


def _active_prompt(inner_dc: DialogContext) -> dict | None:
    """The state of the prompt waiting for an answer, however deep it is nested."""
    dialogs, instance = inner_dc.dialogs, inner_dc.active_dialog
    while instance is not None:
        dialog = dialogs.find_dialog(instance.id)
        if isinstance(dialog, Prompt):
            return {**instance.state, "confirm": isinstance(dialog, ConfirmPrompt)}
        if not isinstance(dialog, ComponentDialog):
            return None
        stack = instance.state[ComponentDialog.persisted_dialog_state].dialog_stack
        # ComponentDialog keeps its children in `_dialogs`; botbuilder offers no public accessor.
        dialogs, instance = dialog._dialogs, (stack[0] if stack else None)
    return None
