"""What every journey dialog is given: the shop's services and the phrasing they share."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from botbuilder.core import StatePropertyAccessor, TurnContext
from botbuilder.dialogs.choices import Choice as PromptChoice
from botbuilder.dialogs.choices import ListStyle
from botbuilder.dialogs.prompts import ChoicePrompt, ConfirmPrompt
from botbuilder.schema import CardAction

from bot.messages import Choice, ProductCard, product_card
from bot.turn import command
from integrations.cart import CartView, Carts
from integrations.catalog import Catalog, ProductView
from integrations.orders import Orders
from integrations.payments import Payments


class FaqAnswers(Protocol):
    def answer(self, key: str, language: str) -> str | None: ...
    def topics(self) -> list[tuple[str, str]]: ...


class Profiles(Protocol):
    async def set_consent(self, customer_id: str, consent: bool) -> None: ...


class Accounts(Protocol):
    def channels(self) -> list[str]: ...
    async def offer(self, customer_id: str, channel: str): ...
    async def describe(self, customer_id: str) -> dict: ...
    async def forget(self, customer_id: str) -> dict[str, int]: ...


@dataclass
class ShopServices:
    catalog: Catalog
    carts: Carts
    orders: Orders
    payments: Payments
    faq: FaqAnswers
    profiles: Profiles
    accounts: Accounts
    memory: StatePropertyAccessor
    media_base: str

    async def remember_product(self, context: TurnContext, sku: str) -> None:
        memory = await self.memory.get(context, dict)
        memory["last_product"] = sku

    async def last_product(self, context: TurnContext) -> str | None:
        memory = await self.memory.get(context, dict)
        return memory.get("last_product")

    def card(self, product: ProductView, size: str | None = None) -> ProductCard:
        sizes = product.sizes()
        stock_note = f"sizes {', '.join(sizes)}" if sizes else "sold out"
        return product_card(
            product.name,
            f"{money(product.price_cents)} · {stock_note}",
            f"{self.media_base}/static/products/{product.sku}.png",
            None,
            [
                Choice("Add to cart", command("add_to_cart", product=product.sku, size=size)),
                Choice("Sizes & stock", command("check_stock", product=product.sku)),
            ]
            if product.in_stock
            else [Choice("Notify me", command("check_stock", product=product.sku))],
        )


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def join_words(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def cart_summary(cart: CartView) -> str:
    if not cart.lines:
        return "Your cart is empty."
    lines = [
        f"{i}. {line.name} ({line.size}, {line.colour}) × {line.quantity} — {money(line.total_cents)}"
        for i, line in enumerate(cart.lines, 1)
    ]
    count = cart.item_count
    return "Your cart:\n" + "\n".join(lines) + f"\nTotal: {money(cart.total_cents)} ({count} item{'s' * (count != 1)})"


def prompt_choices(titles: Sequence[str]) -> list[PromptChoice]:
    """Choices for a botbuilder ChoicePrompt; the title is also what comes back."""
    return [PromptChoice(value=t, action=CardAction(type="imBack", title=t, value=t)) for t in titles]


def choice_prompt(dialog_id: str) -> ChoicePrompt:
    prompt = ChoicePrompt(dialog_id)
    prompt.style = ListStyle.suggested_action
    return prompt


def confirm_prompt(dialog_id: str) -> ConfirmPrompt:
    prompt = ConfirmPrompt(dialog_id)
    prompt.style = ListStyle.suggested_action
    return prompt
