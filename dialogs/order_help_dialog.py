"""Questions about an order that need an answer rather than a journey: where a refund is, and
changing the address an order goes to."""

from __future__ import annotations

from botbuilder.dialogs import ComponentDialog, DialogTurnResult, WaterfallDialog, WaterfallStepContext

from bot.messages import reply
from dialogs.shop import ShopServices, language, text
from integrations.orders import CANCELLABLE


class RefundStatusDialog(ComponentDialog):
    """The shopper's latest returns and cancelled orders, and what happens to their money."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(RefundStatusDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.answer_step]))
        self.initial_dialog_id = "steps"

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        context = step.context
        refunds = await self.shop.orders.refunds(context.activity.from_property.id)
        if not refunds:
            await context.send_activity(reply(text(context, "refund.none")))
            return await step.end_dialog()
        lines = [
            text(context, "refund.return", number=r.number, item=r.item, reference=r.reference, opened=r.opened)
            if r.kind == "return"
            else text(context, "refund.cancelled", number=r.number, opened=r.opened)
            for r in refunds
        ]
        contact = self.shop.faq.answer("contact", language(context)) or text(context, "support")
        await context.send_activity(reply("\n".join(lines) + "\n\n" + text(context, "refund.more", contact=contact)))
        return await step.end_dialog()


class AddressChangeDialog(ComponentDialog):
    """Options: order_number. An order not yet shipped can have its address changed by a person;
    one on its way cannot."""

    def __init__(self, shop: ShopServices) -> None:
        super().__init__(AddressChangeDialog.__name__)
        self.shop = shop
        self.add_dialog(WaterfallDialog("steps", [self.answer_step]))
        self.initial_dialog_id = "steps"

    async def answer_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        context = step.context
        number = (step.options or {}).get("order_number")
        orders = await self.shop.orders.recent(context.activity.from_property.id, limit=5)
        if number is not None:
            orders = [o for o in orders if o.number == number]
        live = [o for o in orders if o.status != "cancelled"]
        contact = self.shop.faq.answer("contact", language(context)) or text(context, "support")
        if not live:
            await context.send_activity(reply(text(context, "address.none")))
        elif live[0].status in CANCELLABLE:
            order = live[0]
            await context.send_activity(
                reply(
                    text(context, "address.open", number=order.number, address=order.shipping_address, contact=contact)
                )
            )
        else:
            order = live[0]
            await context.send_activity(reply(text(context, "address.shipped", number=order.number, contact=contact)))
        return await step.end_dialog()
