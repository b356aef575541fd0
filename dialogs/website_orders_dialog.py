"""Orders placed on the shop's website: shown to a shopper matched to the platform's customer,
and, for one not matched yet, proving an e-mail address or phone number with a one-time code
first. Nothing of the platform's customer is shown before the code is right."""

from __future__ import annotations

import logging
import re

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext
from botbuilder.dialogs.prompts import PromptOptions, TextPrompt

from bot.messages import link, reply
from dialogs.checkout_dialog import receipt_contact
from dialogs.shop import ShopServices, is_zh, money, text
from integrations.customers import PlatformUnavailable, WebsiteOrder

log = logging.getLogger(__name__)

CODE_IN_TEXT = re.compile(r"(?<!\d)(\d{6})(?!\d)")
STATUSES = ("pending_payment", "paid", "shipped", "delivered", "cancelled")


def contact_of(answer: str) -> str | None:
    """An e-mail address (lower case) or a phone number in E.164 ("+" added when left out);
    "" for "skip"; None for anything else."""
    contact = receipt_contact(answer)
    if contact and "@" not in contact and not contact.startswith("+"):
        contact = "+" + contact
    return contact


def website_orders_reply(orders: list[WebsiteOrder], context: TurnContext | None):
    """The website orders, newest first, each with its status and the carrier's tracking."""
    lines = [text(context, "customers.website_orders")]
    links = []
    for order in orders:
        items = ("、" if is_zh(context) else ", ").join(
            text(context, "order.item", quantity=q, name=name) for q, name in order.items
        )
        status = text(context, f"order.status.{order.status}") if order.status in STATUSES else order.status
        line = text(context, "customers.order", name=order.name, date=order.created_at, status=status, items=items)
        if order.total_cents is not None and order.currency:
            line += text(context, "customers.order_total", total=money(context, order.total_cents, order.currency))
        if order.tracking_number:
            line += text(context, "order.tracking", carrier=order.carrier or "-", tracking=order.tracking_number)
            if order.tracking_url:
                links.append(link(f"{text(context, 'btn.track_parcel')} {order.name}", order.tracking_url))
        lines.append(line)
    return reply("\n".join(lines), links=links)


class VerifyContactDialog(ComponentDialog):
    """Asks the e-mail or phone used on the website, sends a code to it, checks the code typed
    back (a wrong one may be typed again, up to the limit), then shows the website orders."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(VerifyContactDialog.__name__)
        self.shop = shop
        self.add_dialog(TextPrompt("contact"))
        self.add_dialog(TextPrompt("code"))
        self.add_dialog(WaterfallDialog("steps", [self.ask_contact_step, self.send_code_step, self.check_code_step]))
        self.add_dialog(WaterfallDialog("again", [self.ask_again_step, self.check_code_step]))
        self.initial_dialog_id = "steps"

    async def ask_contact_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.prompt("contact", PromptOptions(prompt=reply(text(step.context, "customers.offer"))))

    async def send_code_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        customers = self.shop.customers
        assert customers is not None  # begun only when the shop has a platform's customers
        contact = contact_of(str(step.result or ""))
        if not contact:  # "skip", or another subject: the offer is not taken up
            await step.context.send_activity(reply(text(step.context, "customers.skipped")))
            return await step.end_dialog()
        sent = await customers.send_code(step.context.activity.from_property.id, contact)
        if sent.status != "sent":
            await step.context.send_activity(reply(text(step.context, f"customers.{sent.status}")))
            return await step.end_dialog()
        minutes = int(customers.ttl.total_seconds() // 60)
        return await step.prompt(
            "code",
            PromptOptions(prompt=reply(text(step.context, "customers.code_sent", contact=contact, minutes=minutes))),
        )

    async def ask_again_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        tries = (step.options or {}).get("tries", 0)
        return await step.prompt(
            "code", PromptOptions(prompt=reply(text(step.context, "customers.code_wrong", tries=tries)))
        )

    async def check_code_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        customers = self.shop.customers
        assert customers is not None
        customer_id = step.context.activity.from_property.id
        found = CODE_IN_TEXT.search(str(step.result or ""))
        try:
            result, matched = await customers.verify(customer_id, found.group(1) if found else "")
        except PlatformUnavailable as exc:  # the code was right; the match waits for the platform
            log.warning("platform customers unavailable", extra={"reason": str(exc)})
            await step.context.send_activity(reply(text(step.context, "customers.unavailable")))
            return await step.end_dialog()
        if result.status == "wrong":
            return await step.replace_dialog("again", {"tries": result.tries_left})
        if result.status != "verified":
            key = {"blocked": "customers.code_blocked", "expired": "customers.code_expired"}.get(
                result.status, "customers.code_expired"
            )
            await step.context.send_activity(reply(text(step.context, key)))
            return await step.end_dialog()
        orders: list[WebsiteOrder] = []
        if matched:
            try:
                orders = await customers.website_orders(customer_id) or []
            except PlatformUnavailable as exc:
                log.warning("website orders unavailable", extra={"reason": str(exc)})
                await step.context.send_activity(reply(text(step.context, "customers.unavailable")))
                return await step.end_dialog()
        if not orders:
            await step.context.send_activity(reply(text(step.context, "customers.none_found")))
        else:
            await step.context.send_activity(website_orders_reply(orders, step.context))
        return await step.end_dialog()
