"""Every shopper journey end to end through the web chat API, on the real app and store."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.store.models import Variant, WaitlistEntry
from service.app import DB


async def test_stock_in_stock_offers_colours_and_adds_to_cart(shopper):
    await shopper.say("Do you have the Trail Blazer Runner in size 9?")
    assert "in stock" in shopper.texts()
    colour_buttons = [b for b in shopper.buttons() if b.startswith("Add ")]
    assert colour_buttons, shopper.buttons()
    await shopper.tap(colour_buttons[0])
    assert "Added 1 × Trail Blazer Runner (9," in shopper.texts()
    # add-ons from related products: running socks with running shoes
    assert any("Sock" in title for title in shopper.cards()), shopper.cards()


async def test_stock_sold_out_offers_similar_and_waitlist(shopper, client):
    await shopper.say("do you have the aero runner in size 9?")
    assert "sold out" in shopper.texts()
    assert shopper.cards() and "Aero Runner" not in shopper.cards()
    assert "Trail Blazer Runner" in shopper.cards()
    await shopper.tap("Yes")
    # No phone channel is configured here: the notice can only wait in this chat, and it says so.
    assert "the notice will be waiting in this chat" in shopper.texts()
    assert not shopper.buttons()
    db = client.app[DB]
    entries = await db.run(lambda s: s.exec(select(WaitlistEntry)).all())
    assert sorted(e.variant_sku for e in entries) == ["RUN-AERO-9-BLK", "RUN-AERO-9-BLU", "RUN-AERO-9-WHT"]


async def test_this_dress_other_sizes_uses_the_conversation(shopper):
    await shopper.say("show me the midnight wrap dress")
    assert shopper.cards() == ["Midnight Wrap Dress"]
    await shopper.say("Is this dress available in other sizes?")
    assert re.search(r"in stock in sizes .*M.*L", shopper.texts()), shopper.texts()
    assert "S sold out" in shopper.texts()
    await shopper.tap("Size M")
    assert "Which colour" in shopper.texts() or "Added" in shopper.texts()
    if "Which colour" in shopper.texts():
        await shopper.tap(shopper.buttons()[0])
    assert "Added 1 × Midnight Wrap Dress (M," in shopper.texts()


async def test_search_and_recommendations(shopper):
    await shopper.say("show me black dresses")
    assert shopper.cards() and "dresses" in shopper.texts()
    await shopper.say("what socks go with the aero runner?")
    assert any("Sock" in c for c in shopper.cards()), (shopper.texts(), shopper.cards())


async def test_cart_add_view_change_remove(shopper):
    await shopper.say("add 2 classic tees in size M")
    while "Added" not in shopper.texts():
        assert shopper.buttons(), shopper.texts()
        await shopper.tap(shopper.buttons()[0])
    assert "× 2" in shopper.texts()
    await shopper.say("add the trail blazer runner size 10")
    while "Added" not in shopper.texts():
        await shopper.tap(shopper.buttons()[0])
    await shopper.say("view cart")
    assert "Total:" in shopper.texts() and "(3 items)" in shopper.texts()
    await shopper.tap("Change quantity")
    await shopper.tap(shopper.buttons()[0])
    assert "How many" in shopper.texts()
    await shopper.say("1")
    assert "Updated" in shopper.texts() and "(2 items)" in shopper.texts()
    await shopper.tap("Remove an item")
    await shopper.tap([b for b in shopper.buttons() if b.startswith("Trail Blazer")][0])
    assert "Removed" in shopper.texts() and "Trail Blazer" not in shopper.texts()


async def test_checkout_pay_and_confirmation_then_address_remembered(shopper, client):
    await shopper.say("add the linen sundress size S")
    while "Added" not in shopper.texts():
        await shopper.tap(shopper.buttons()[0])
    await shopper.tap("Checkout")
    assert "shipping address" in shopper.texts()
    await shopper.say("hmm")
    assert "doesn't look like an address" in shopper.texts()
    await shopper.say("221 Baker Street, London NW1 6XE")
    assert "Where should we send your receipt?" in shopper.texts()
    await shopper.tap("Skip")
    assert "Place the order?" in shopper.texts()
    await shopper.tap("Yes")
    match = re.search(r"Order #(\d+) is placed", shopper.texts())
    assert match, shopper.texts()
    pay_url = shopper.last[-1]["links"][0]["url"]
    assert pay_url.startswith("http://shop.test/pay/")
    path = pay_url.removeprefix("http://shop.test")
    page = await client.get(path)
    assert page.status == 200 and "Pay for order" in await page.text()
    forged = await client.get(re.sub(r"sig=\w+", "sig=deadbeef", path))
    assert forged.status == 403 and "This payment link is not valid" in await forged.text()
    # a broken link is explained in the browser's language, on the page's own stylesheet
    forged = await client.get(re.sub(r"sig=\w+", "sig=deadbeef", path), headers={"Accept-Language": "zh-TW,zh;q=0.9"})
    assert forged.status == 403 and forged.content_type == "text/html"
    page_text = await forged.text()
    assert "這個付款連結無效" in page_text and 'lang="zh-TW"' in page_text and "/static/widget.css" in page_text
    sig = path.split("sig=")[1]
    paid = await client.post(path.split("?")[0], data={"sig": sig})
    assert paid.status == 200
    await client.post(path.split("?")[0], data={"sig": sig})  # a second click sends nothing twice
    history = await shopper.history()
    notices = [m for m in history if m["text"] and "Payment received" in m["text"]]
    assert len(notices) == 1
    await shopper.say(f"where is order {match.group(1)}")
    assert "is paid" in shopper.texts()
    # a returning customer is offered the saved address
    await shopper.say("add the linen sundress size M")
    while "Added" not in shopper.texts():
        await shopper.tap(shopper.buttons()[0])
    await shopper.say("checkout")
    assert "221 Baker Street" in shopper.texts()


async def test_order_status_own_orders_only(client):
    from tests.fakes.web_shopper import WebShopper

    alice, bob = await WebShopper.start(client), await WebShopper.start(client)
    await alice.say("add the linen sundress size S")
    while "Added" not in alice.texts():
        await alice.tap(alice.buttons()[0])
    await alice.say("checkout")
    await alice.say("1 Main Street, Springfield 12345")
    await alice.say("skip")
    await alice.tap("Yes")
    number = re.search(r"Order #(\d+)", alice.texts()).group(1)
    await bob.say(f"where is my order #{number}?")
    assert f"couldn't find order #{number}" in bob.texts()
    await bob.say("where is order 99999?")
    assert "couldn't find order #99999" in bob.texts()
    await bob.say("where is my order?")
    assert "can't find any order" in bob.texts()


async def test_demo_shopper_tracking_cancel_and_return(client, settings, recognizer):
    from bot.messages import InboundMessage
    from service.app import ENGINE

    engine = client.app[ENGINE]

    async def say(text: str) -> str:
        _, replies = await engine.handle(InboundMessage("web", "demo-shopper", text + str(id(text)), text))
        return (
            "\n".join(r.text or "" for r in replies)
            + "|"
            + "|".join(c["title"] for r in replies for c in (r.payload or {}).get("choices", []))
        )

    assert "on its way" in await say("where is order 1002?")
    out = await say("where is order 1002?")
    assert "tracking number 1Z999AA10123456784" in out
    assert "already shipped" in await say("cancel order 1002")
    assert "Cancel order #1003" in await say("I want to cancel order 1003")
    assert "is cancelled" in await say("yes")
    assert "can't be returned" in await say("return an item from order 1002")
    out = await say("I want to return something from order 1001")
    assert "Which item" in out
    out = await say("1")
    assert "reason" in out
    out = await say("Doesn't fit")
    assert re.search(r"Reference: R-1001-[0-9A-F]{6}", out), out


async def test_faq_answers_from_entries(shopper):
    await shopper.say("how long does shipping take?")
    assert "3-5 business days" in shopper.texts()
    await shopper.say("what payment methods do you accept")
    assert "PayPal" in shopper.texts() or "Visa" in shopper.texts()


async def test_unknown_product_and_gibberish_get_clear_replies(shopper):
    await shopper.say("do you sell the xyzzy quantum toaster 3000 in size 9")
    assert shopper.last and shopper.texts().strip()
    await shopper.say("asdkjh qwpoeiru zmxncb")
    assert "not sure" in shopper.texts() or "didn't understand" in shopper.texts()
    assert shopper.buttons()


async def test_change_of_subject_mid_journey(shopper):
    await shopper.say("is the midnight wrap dress in stock?")
    assert shopper.buttons()
    await shopper.say("actually, where is my order?")
    assert "order" in shopper.texts().lower() and "Size" not in " ".join(shopper.buttons())


async def test_a_side_question_mid_checkout_keeps_the_checkout(shopper):
    """A request that does not replace the journey is answered, then the journey asks again."""
    await shopper.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await shopper.say("checkout")
    assert "shipping address" in shopper.texts()
    await shopper.say("how long does shipping take?")
    assert "3-5 business days" in shopper.texts()
    assert shopper.last[-1]["text"].startswith("What's the shipping address?")
    await shopper.say("what do you know about me?")
    assert "Here is what we keep" in shopper.texts() and "shipping address?" in shopper.last[-1]["text"]
    await shopper.say("1 Castle Street, Edinburgh EH1 2NG")
    await shopper.say("skip")  # no receipt contact
    await shopper.say("yes")
    assert re.search(r"Order #\d+ is placed", shopper.texts())


async def test_an_answer_that_is_none_of_the_choices_is_said_before_asking_again(shopper):
    await shopper.say("is the rain jacket in stock in large?")
    assert "in stock" in shopper.texts() and "Add one to your cart?" in shopper.texts()
    buttons = shopper.buttons()
    await shopper.say("what is the capital of france")
    assert shopper.last[0]["text"].startswith("Sorry, I didn't catch that."), shopper.texts()
    assert "Add one to your cart?" in shopper.last[-1]["text"] and shopper.buttons() == buttons
    await shopper.tap(buttons[0])
    assert "Added 1 × Storm Shell Rain Jacket (L," in shopper.texts()


async def test_opt_out_and_in(shopper, client):
    from bot.store.models import Customer

    await shopper.say("STOP")
    assert "unsubscribed" in shopper.texts()
    consents = await client.app[DB].run(lambda s: [c.marketing_consent for c in s.exec(select(Customer)).all()])
    assert False in consents
    await shopper.say("START")  # a subscription is confirmed before it counts
    assert "Would you like to get our offers" in shopper.texts()
    consents = await client.app[DB].run(lambda s: [c.marketing_consent for c in s.exec(select(Customer)).all()])
    assert True not in consents
    await shopper.tap("Yes")
    assert "subscribed" in shopper.texts()
    consents = await client.app[DB].run(lambda s: [c.marketing_consent for c in s.exec(select(Customer)).all()])
    assert True in consents


async def test_sold_out_variant_cannot_be_over_added(shopper, client):
    db = client.app[DB]

    def set_two(session):
        session.get(Variant, "TEE-CLASSIC-M-WHT").stock = 2

    await db.run(set_two)
    await shopper.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white","quantity":2}')
    assert "Added 2" in shopper.texts()
    await shopper.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    assert "already have all we have" in shopper.texts()


async def test_a_size_typed_the_chinese_way_answers_the_size_question(shopper):
    await shopper.say("加入購物車 Aero跑鞋")
    assert "8 號" in shopper.buttons(), shopper.buttons()
    await shopper.say("8號")  # the button says "8 號"
    assert "8 號有" in shopper.texts() and "要哪個顏色" in shopper.texts(), shopper.texts()


async def test_add_it_keeps_the_size_just_asked_about(shopper):
    await shopper.say("is the aero runner in stock in size 8?")
    assert "size 8 is in stock" in shopper.texts(), shopper.texts()
    await shopper.say("add it to my cart")
    assert "Which size" not in shopper.texts() and "Size 8 is in stock" in shopper.texts(), shopper.texts()


async def test_another_business_named_is_told_apart(shopper):
    await shopper.say("where is my amazon order")
    assert "I can only help with this shop's own products and orders. For Amazon" in shopper.texts()
    await shopper.say("is the rain jacket in stock in large?")
    buttons = shopper.buttons()
    await shopper.say("蝦皮的訂單一直沒出貨")  # while a question waits: answered, then asked again
    assert "蝦皮的問題請直接聯絡他們" in shopper.last[0]["text"], shopper.texts()
    assert "Add one to your cart?" in shopper.last[-1]["text"] and shopper.buttons() == buttons
