"""What every journey dialog is given: the shop's services and the phrasing they share, in the
language of the turn (the texts themselves are in `bot/i18n.py`)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from botbuilder.core import StatePropertyAccessor, TurnContext
from botbuilder.dialogs.choices import Choice as PromptChoice
from botbuilder.dialogs.choices import ListStyle
from botbuilder.dialogs.prompts import ChoicePrompt, ConfirmPrompt, PromptOptions, PromptRecognizerResult
from botbuilder.schema import ActivityTypes, CardAction

from bot import i18n
from bot.conversation.turn import TURN_INFO_KEY, command, note, parse_command
from bot.i18n import EN, ZH, text_in, yes_no_zh
from bot.messages import Choice, ProductCard, product_card
from integrations.cart import Carts, CartView
from integrations.catalog import Catalog, ProductView
from integrations.commerce.freshness import StockFreshness
from integrations.customers import ShopperCustomers
from integrations.orders import Orders
from integrations.payments import Payments
from integrations.shipping import Shipping

RECENT_PRODUCTS = 5
RECOMMENDED_KEPT = 20  # the products recommended last, whose taps and adds count as the recommendation's


class FaqAnswers(Protocol):
    def answer(self, key: str, language: str) -> str | None: ...
    def topics(self, language: str = "en") -> list[tuple[str, str]]: ...


class Profiles(Protocol):
    async def set_consent(self, customer_id: str, consent: bool) -> None: ...
    async def receipt_contact(self, customer_id: str) -> str | None: ...
    async def set_timezone(self, customer_id: str, zone: str) -> None: ...


class Accounts(Protocol):
    def channels(self) -> list[str]: ...
    async def offer(self, customer_id: str, channel: str): ...
    async def describe(self, customer_id: str) -> dict: ...
    async def forget(self, customer_id: str) -> dict[str, int]: ...
    async def prefer_current(self, customer_id: str) -> str | None: ...
    async def notice_channel(self, customer_id: str) -> str | None: ...


class Escalations(Protocol):
    """Handing a conversation to a person (bot/handoff.py)."""

    async def triggered(self, customer_id: str, text: str, intent, fallbacks: int, repeats: int): ...
    async def open(self, customer_id: str, trigger, language: str, intents: list[str], faq_key: str | None = None): ...


RANGE_NAMED = 6  # categories named in "We have ..."; a shop with more says "and more"


@dataclass
class ShopServices:
    catalog: Catalog
    carts: Carts
    orders: Orders
    payments: Payments
    shipping: Shipping
    faq: FaqAnswers
    profiles: Profiles
    accounts: Accounts
    memory: StatePropertyAccessor
    media_base: str
    currency: str  # CURRENCY (ISO 4217): what the catalog's prices are in
    handoff: Escalations | None = None  # None: the bot gives the contact details instead
    customers: ShopperCustomers | None = None  # the commerce platform's customers (COMMERCE_BACKEND=shopify)
    freshness: StockFreshness | None = None  # a platform's stock (COMMERCE_BACKEND other than store)

    async def remember_product(
        self, context: TurnContext, sku: str, category: str | None = None, size: str | None = None
    ) -> None:
        """The product the shopper is looking at now: what "this" and "in black" refer to, and the
        size they asked it in, which "add 2 in black" keeps."""
        memory = await self.memory.get(context, dict)
        if size:
            memory["last_size"] = [sku, size]
        elif (memory.get("last_size") or [None])[0] != sku:
            memory.pop("last_size", None)
        memory["last_product"] = sku
        memory["focus"] = "product"
        recent = [entry for entry in memory.get("recent", []) if entry[0] != sku]
        memory["recent"] = ([[sku, category]] + recent)[:RECENT_PRODUCTS]

    async def remember_shown(
        self,
        context: TurnContext,
        products: Sequence[ProductView],
        intent: str,
        focus: bool = True,
        recommended: bool = False,
    ) -> None:
        """A list of products just shown: what "the second one" refers to, and (with `focus`) what
        a follow-up such as "in black" narrows down. A list of one is that product. `recommended`:
        the bot suggested them (not what the shopper searched for), counted for the dashboard."""
        if recommended and products:
            memory = await self.memory.get(context, dict)
            skus = [p.sku for p in products]
            kept = [sku for sku in memory.get("recommended", []) if sku not in skus]
            memory["recommended"] = (kept + skus)[-RECOMMENDED_KEPT:]
            for sku in skus:
                note(context, "rec_shown", sku)
        if len(products) == 1 and focus:
            await self.remember_product(context, products[0].sku, products[0].category)
            return
        if not products:
            return
        memory = await self.memory.get(context, dict)
        memory["shown"] = {"skus": [p.sku for p in products], "for": intent}
        if focus:
            memory["focus"] = "list"

    async def range_sentence(self, context: TurnContext) -> str:
        """ "We have dresses, shoes and socks." from this shop's own catalog (empty without one)."""
        categories = await self.catalog.categories()
        if not categories:
            return ""
        names = [category_name(context, c) for c in categories[:RANGE_NAMED]]
        if len(categories) > RANGE_NAMED:  # "shoes, dresses, ... t-shirts and more"
            return text(context, "shop.range_more", categories=("、" if is_zh(context) else ", ").join(names))
        return text(context, "shop.range", categories=join_list(context, names))

    async def category_choices(self, context: TurnContext, count: int = 2) -> list[Choice]:
        """Buttons to browse the shop's largest categories."""
        return [
            Choice(category_name(context, c).capitalize(), command("product_search", category=c))
            for c in (await self.catalog.categories())[:count]
        ]

    async def note_tap(self, context: TurnContext) -> None:
        """A tapped button naming a product the bot recommended counts as a click on it."""
        tapped = parse_command(context.activity.text or "")
        product = tapped.entities.product if tapped is not None else None
        if product and product in (await self.memory.get(context, dict)).get("recommended", []):
            note(context, "rec_clicked", product)

    async def note_added(self, context: TurnContext, product_sku: str) -> None:
        """A product put in the cart: counted, and as a recommendation's if the bot suggested it."""
        note(context, "cart_add", product_sku)
        if product_sku in (await self.memory.get(context, dict)).get("recommended", []):
            note(context, "rec_added", product_sku)

    async def last_product(self, context: TurnContext, category: str | None = None) -> str | None:
        """The product the shopper looked at last, or the last one of `category` when they name
        a kind ("this dress" after a pair of shoes and the dress)."""
        memory = await self.memory.get(context, dict)
        if category is None:
            return memory.get("last_product")
        return next((sku for sku, kind in memory.get("recent", []) if kind == category), None)

    async def size_asked(self, context: TurnContext, sku: str) -> str | None:
        """The size the shopper asked `sku` in, while it is the product in focus."""
        memory = await self.memory.get(context, dict)
        asked = memory.get("last_size") or [None, None]
        return asked[1] if asked[0] == sku and memory.get("last_product") == sku else None

    async def references(self, context: TurnContext) -> tuple[str | None, list[str], str | None]:
        """(what was shown last: "product" or "list", the list's SKUs, the intent it answered)."""
        memory = await self.memory.get(context, dict)
        shown = memory.get("shown") or {}
        return memory.get("focus"), list(shown.get("skus", [])), shown.get("for")

    def name(self, context: TurnContext | None, product: ProductView) -> str:
        """The product's name in the shopper's language."""
        return product.name_zh if is_zh(context) and product.name_zh else product.name

    def description(self, context: TurnContext | None, product: ProductView) -> str:
        return product.description_zh if is_zh(context) and product.description_zh else product.description

    async def line_names(self, context: TurnContext, skus: Sequence[str]) -> dict[str, str]:
        """Product names by SKU in the shopper's language; empty for English (lines carry it)."""
        if not is_zh(context):
            return {}
        names: dict[str, str] = {}
        for sku in dict.fromkeys(skus):
            product = await self.catalog.product(sku)
            if product is not None and product.name_zh:
                names[sku] = product.name_zh
        return names

    async def cart_text(self, context: TurnContext, cart: CartView) -> str:
        """`cart_summary` in the shopper's language, with product names in it."""
        names = await self.line_names(context, [line.product_sku for line in cart.lines])
        return cart_summary(cart, context, names, currency=self.currency)

    def card(self, context: TurnContext | None, product: ProductView, size: str | None = None) -> ProductCard:
        sizes = product.sizes()
        price = money(context, product.price_cents, self.currency)
        separator = "、" if is_zh(context) else ", "
        subtitle = (
            text(context, "card.sizes", price=price, sizes=separator.join(sizes))
            if sizes
            else text(context, "card.sold_out", price=price)
        )
        return product_card(
            self.name(context, product),
            subtitle,
            product.image_url or f"{self.media_base}/static/products/{product.sku}.png",
            None,
            [
                Choice(text(context, "btn.add_to_cart"), command("add_to_cart", product=product.sku, size=size)),
                Choice(text(context, "btn.sizes_stock"), command("check_stock", product=product.sku)),
            ]
            if product.in_stock
            else [Choice(text(context, "btn.notify_me"), command("check_stock", product=product.sku))],
        )


def language(context: TurnContext | None) -> str:
    """The shopper's language this turn; English when nobody has said."""
    if context is None:
        return EN
    info = context.turn_state.get(TURN_INFO_KEY)
    return i18n.language_of(info.language if info is not None else EN)


def is_zh(context: TurnContext | None) -> bool:
    return language(context) == ZH


def text(context: TurnContext | None, key: str, /, **values: object) -> str:
    """The text for `key` in the shopper's language, filled with `values`."""
    return text_in(language(context), key, **values)


def menu_label(context: TurnContext | None, intent: str) -> str:
    return text_in(language(context), f"menu.{intent}")


def colour_name(context: TurnContext | None, colour: str | None) -> str:
    return i18n.colour_in(language(context), colour)


def category_name(context: TurnContext | None, category: str) -> str:
    return i18n.category_in(language(context), category)


def size_label(context: TurnContext | None, size: str | None) -> str:
    """A size as the shopper reads it: 9 號, M 號 in Chinese."""
    return i18n.size_in(language(context), size)


def join_list(context: TurnContext | None, items: Sequence[str]) -> str:
    """ "a, b and c" in English, "a、b和c" in Chinese."""
    return i18n.join_in(language(context), items)


def delivery_date(context: TurnContext | None, day) -> str:
    """A delivery date as the shopper reads it: "Thu 10 Dec", "12月10日（週四）"."""
    return i18n.date_text(language(context), day)


def money(context: TurnContext | None, cents: int, currency: str) -> str:
    """An amount in `currency` as the shopper's locale writes it ("$24.00", "US$24.00")."""
    return i18n.money(cents, language(context), currency)


def join_words(items: Sequence[str], context: TurnContext | None = None) -> str:
    """ "a, b and c"; in Chinese for a Chinese-speaking shopper when `context` is given."""
    return join_list(context, items)


def cart_summary(
    cart: CartView,
    context: TurnContext | None = None,
    names: dict[str, str] | None = None,
    total_key: str = "cart.total",
    *,
    currency: str,
) -> str:
    """The cart as text, amounts in `currency`; `names` (product SKU -> name) overrides the lines'
    own names, and `total_key` names its last line ("cart.subtotal" where shipping follows)."""
    if not cart.lines:
        return text(context, "cart.empty")
    names = names or {}
    lines = [
        text(
            context,
            "cart.line",
            i=i,
            name=names.get(line.product_sku, line.name),
            size=size_label(context, line.size),
            colour=colour_name(context, line.colour),
            quantity=line.quantity,
            total=money(context, line.total_cents, currency),
        )
        for i, line in enumerate(cart.lines, 1)
    ]
    count = cart.item_count
    total = text(
        context, total_key, total=money(context, cart.total_cents, currency), count=count, s="s" * (count != 1)
    )
    return text(context, "cart.header") + "\n" + "\n".join(lines) + "\n" + total


def prompt_choices(items: Sequence[str | tuple[str, str]]) -> list[PromptChoice]:
    """Choices for a botbuilder ChoicePrompt from titles or `(title, value)` pairs.

    The title is shown and is what a tap sends back; the prompt recognises it (and the value)
    and returns the stable `value`, whatever the shopper's language.
    """
    result = []
    for item in items:
        title, value = (item, item) if isinstance(item, str) else item
        # The engine NFKC-normalises what comes back (（，→ (,), so the tap sends that form.
        sent = unicodedata.normalize("NFKC", title)
        # "8號" typed for the button "8 號": the title without its spaces is a way to say it too
        synonyms = [s for s in dict.fromkeys((sent, sent.replace(" ", ""))) if s != title]
        result.append(
            PromptChoice(
                value=value,
                action=CardAction(type="imBack", title=title, value=sent),
                synonyms=synonyms or None,
            )
        )
    return result


async def say_not_understood(turn_context: TurnContext, options: PromptOptions, is_retry: bool) -> None:
    """Before a question is asked again because the answer was none of its choices (and the
    question has no retry text of its own), say so: asking the same thing again without a word
    reads as the bot not listening."""
    if is_retry and options.retry_prompt is None:
        await turn_context.send_activity(text(turn_context, "prompt.not_understood"))


class ShopChoicePrompt(ChoicePrompt):
    """A choice prompt that says it did not understand before asking again."""

    async def on_prompt(self, turn_context: TurnContext, state: dict, options: PromptOptions, is_retry: bool):
        await say_not_understood(turn_context, options, is_retry)
        return await super().on_prompt(turn_context, state, options, is_retry)


def choice_prompt(dialog_id: str) -> ChoicePrompt:
    prompt = ShopChoicePrompt(dialog_id)
    prompt.style = ListStyle.suggested_action
    return prompt


class ShopConfirmPrompt(ConfirmPrompt):
    """A yes/no prompt in the shopper's language.

    botbuilder picks the yes/no words from `activity.locale`, which the engine always sets to
    en-US; this one shows 是/否 to a Chinese-speaking shopper and understands Chinese yes and no
    (and still English "yes"/"no") from anyone.
    """

    async def on_prompt(self, turn_context: TurnContext, state: dict, options: PromptOptions, is_retry: bool):
        await say_not_understood(turn_context, options, is_retry)
        if not is_zh(turn_context):
            return await super().on_prompt(turn_context, state, options, is_retry)
        choices = [PromptChoice(text(turn_context, "btn.yes")), PromptChoice(text(turn_context, "btn.no"))]
        base = options.retry_prompt if is_retry and options.retry_prompt is not None else options.prompt
        defaults = self._default_choice_options[self._determine_culture(turn_context.activity)]
        choice_options = self.choice_options if self.choice_options is not None else defaults[2]
        prompt = self.append_choices(base, turn_context.activity.channel_id, choices, self.style, choice_options)
        await turn_context.send_activity(prompt)

    async def on_recognize(self, turn_context: TurnContext, state: dict, options: PromptOptions):
        if turn_context.activity.type == ActivityTypes.message:
            answer = yes_no_zh(turn_context.activity.text or "")
            if answer is not None:
                result = PromptRecognizerResult()
                result.succeeded = True
                result.value = answer
                return result
        return await super().on_recognize(turn_context, state, options)


def confirm_prompt(dialog_id: str) -> ConfirmPrompt:
    prompt = ShopConfirmPrompt(dialog_id)
    prompt.style = ListStyle.suggested_action
    return prompt
