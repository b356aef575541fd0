"""What a shopper used to trip over, end to end through the web chat API and the fake providers:
false consent, quantity changes, references to what was shown, confident wrong answers, gaps in
Traditional Chinese, and greetings."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.store.models import Customer, Variant
from service.app import DB
from tests.fakes.phone import TwilioShopper
from tests.fakes.providers import twilio_form

NUMBER = "+14155550177"


async def consents(client) -> list[bool | None]:
    return await client.app[DB].run(
        lambda s: [c.marketing_consent for c in s.exec(select(Customer).where(Customer.id != "demo-shopper")).all()]
    )


async def stock(client, sku: str, count: int) -> None:
    def change(session):
        session.get(Variant, sku).stock = count

    await client.app[DB].run(change)


# --- consent ------------------------------------------------------------------------------------


async def test_ordinary_phrases_on_whatsapp_record_no_consent(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    for said in ("start over", "any deals for me?", "notify me when it's back"):
        out = await wa.say(said)
        assert "subscribed" not in out, (said, out)
    assert await consents(channel_client) == [None]


async def test_ordinary_phrases_on_the_web_record_no_consent(shopper, client):
    for said in ("any deals for me?", "notify me when it's back", "start over"):
        await shopper.say(said)
        assert "subscribed" not in shopper.texts(), (said, shopper.texts())
    assert await consents(client) == [None]


async def test_a_subscription_is_confirmed_before_it_counts(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    out = await wa.say("sign me up for offers")
    assert "Would you like to get our offers and reminders in this chat?" in out
    assert await consents(channel_client) == [None]
    out = await wa.say("1")  # the first option: Yes
    assert "You're subscribed" in out
    assert await consents(channel_client) == [True]
    customer = await channel_client.app[DB].run(
        lambda s: s.exec(select(Customer).where(Customer.id != "demo-shopper")).one()
    )
    assert customer.consent_updated_at is not None and customer.consent_source


async def test_declining_the_subscription_records_nothing(shopper, client):
    await shopper.say("subscribe")
    await shopper.tap("No")
    assert "no offers" in shopper.texts()
    assert await consents(client) == [None]


# --- quantities ---------------------------------------------------------------------------------


async def test_changing_the_quantity_keeps_the_item(shopper):
    await shopper.say("add 3 classic crew tees in size M black")
    assert "Added 3 × Classic Crew Tee (M, black)" in shopper.texts(), shopper.texts()
    await shopper.say("change quantity to 2")
    assert "Your cart is empty" not in shopper.texts()
    assert re.search(r"Classic Crew Tee \(M, black\) × 2", shopper.texts()), shopper.texts()
    await shopper.say("make it 1")
    assert re.search(r"Classic Crew Tee \(M, black\) × 1", shopper.texts()), shopper.texts()


async def test_asking_for_more_than_is_in_stock_says_so_and_offers_the_rest(shopper, client):
    await stock(client, "TEE-CLASSIC-M-BLK", 4)
    await shopper.say("add 50 classic crew tees in size M black")
    assert "only 4 more" in shopper.texts() and "Add 4?" in shopper.texts(), shopper.texts()
    await shopper.tap("Yes")
    assert "Added 4 × Classic Crew Tee (M, black)" in shopper.texts(), shopper.texts()


async def test_removing_some_of_a_line(shopper):
    await shopper.say("add 3 classic crew tees in size M black")
    await shopper.say("remove one of the tees")
    assert re.search(r"Classic Crew Tee \(M, black\) × 2", shopper.texts()), shopper.texts()


# --- references ---------------------------------------------------------------------------------


async def test_the_second_one_of_a_list(shopper):
    await shopper.say("show me running shoes")
    shown = shopper.cards()
    assert len(shown) >= 3, shown
    await shopper.say("the second one")
    assert shown[1] in shopper.texts(), (shown, shopper.texts())
    await shopper.say("show me the last one")
    assert shown[-1] in shopper.texts(), (shown, shopper.texts())


async def test_a_colour_narrows_the_list_shown(shopper):
    await shopper.say("show me running shoes")
    await shopper.say("in black")
    answer = shopper.texts() + " ".join(shopper.cards())
    assert "Jeans" not in answer and "Jacket" not in answer, answer
    assert "Runner" in answer and "black" in answer.lower(), answer


async def test_a_size_asks_about_the_product_in_focus(shopper):
    await shopper.say("show me the trail blazer runner")
    await shopper.say("size 9 please")
    assert "Trail Blazer Runner in size 9" in shopper.texts(), shopper.texts()


async def test_a_colour_after_a_size_question_keeps_the_size(shopper):
    await shopper.say("is the classic crew tee in size M?")
    await shopper.say("add 2 in black")
    assert "Added 2 × Classic Crew Tee (M, black)" in shopper.texts(), shopper.texts()


async def test_a_size_narrows_the_list_shown(shopper):
    await shopper.say("show me running shoes")
    shoes = set(shopper.cards())
    await shopper.say("size 9 please")
    assert shopper.cards() and set(shopper.cards()) <= shoes, (shoes, shopper.cards(), shopper.texts())
    assert "size 9" in shopper.texts(), shopper.texts()


async def test_a_named_product_wins_over_the_one_in_focus(shopper):
    await shopper.say("show me the cloudstep runner")
    await shopper.say("Add 2 classic tees in size M")
    while "Added" not in shopper.texts():
        assert shopper.buttons(), shopper.texts()
        await shopper.tap(shopper.buttons()[0])
    assert "Added 2 × Classic Crew Tee (M," in shopper.texts(), shopper.texts()


async def test_these_sneakers_are_the_ones_looked_at(shopper):
    await shopper.say("show me the trail blazer runner")
    await shopper.say("Do you have these sneakers in size 9?")
    assert "Trail Blazer Runner" in shopper.texts() and "Loafer" not in shopper.texts() + str(shopper.cards())


async def test_sneakers_are_not_loafers(shopper):
    await shopper.say("Do you have these sneakers in size 9?")
    assert shopper.cards(), shopper.texts()
    assert not any("Loafer" in card for card in shopper.cards()), shopper.cards()


async def test_this_dress_after_looking_at_something_else(shopper):
    await shopper.say("show me the midnight wrap dress")
    await shopper.say("show me the harbor canvas sneaker")
    await shopper.say("Is this dress available in other sizes?")
    assert "Midnight Wrap Dress" in shopper.texts() and "sizes" in shopper.texts(), shopper.texts()


# --- confident wrong answers --------------------------------------------------------------------


async def test_an_item_the_shop_does_not_sell(shopper):
    await shopper.say("do you sell surfboards?")
    assert "we don't sell surfboards" in shopper.texts(), shopper.texts()
    assert "gift card" not in shopper.texts().lower()


async def test_where_is_the_store(shopper):
    await shopper.say("where is your store?")
    assert "200 Harbour Street" in shopper.texts(), shopper.texts()


async def test_every_question_of_a_message_is_answered(shopper):
    await shopper.say("is shipping free? and can I return it if I don't like it?")
    answer = shopper.texts()
    assert "free on orders of $50 or more" in answer and "within 30 days" in answer, answer


async def test_a_fraud_report_shows_the_fraud_policy_to_the_agent(shopper, client):
    from bot.store.models import HandoffTicket

    await shopper.say("I think this is fraud, there's a charge on my card I didn't make")
    ticket = await client.app[DB].run(lambda s: s.exec(select(HandoffTicket)).one())
    assert ticket.topic == "fraud"
    assert ticket.summary["faq"]["key"] == "fraud", ticket.summary["faq"]


# --- Traditional Chinese ------------------------------------------------------------------------


async def test_numbered_choices_are_explained_in_chinese(channel_client, fake_twilio):
    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    out = await wa.say("你好")  # inside the window: a list picker whose button is labelled in Chinese
    assert "<請選擇>" in out and "Choose one" not in out and "Reply with a number" not in out, out
    sms = TwilioShopper(channel_client, fake_twilio, "sms", "+14155550178")
    out = await sms.say("你好")
    assert "請回覆選項的數字。" in out and "Reply with a number" not in out, out
    out = await sms.say("查看購物車")
    assert "Reply with a number" not in out, out


async def test_chinese_return_policy_question(shopper):
    await shopper.say("退貨政策是什麼?")
    assert "30 天內退貨" in shopper.texts(), shopper.texts()


async def test_chinese_product_names_are_understood(shopper):
    await shopper.say("Aero 跑鞋 9 號有貨嗎?")
    assert "Aero 跑鞋" in shopper.texts() and "請問您指的是哪一款" not in shopper.texts(), shopper.texts()
    await shopper.say("給我看午夜裹身洋裝")
    assert shopper.cards() == ["午夜裹身洋裝"], shopper.cards()
    await shopper.say("這件洋裝有其他尺寸嗎?")
    assert "午夜裹身洋裝" in shopper.texts() and "尺寸" in shopper.texts(), shopper.texts()


# --- greetings ----------------------------------------------------------------------------------


async def test_a_returning_shopper_is_greeted_by_name(channel_client, fake_twilio):
    from datetime import timedelta

    from bot.store.models import utcnow

    wa = TwilioShopper(channel_client, fake_twilio, "whatsapp", NUMBER)
    resp = await wa.post(twilio_form("whatsapp", NUMBER, "hi", ProfileName="Ana"))
    assert resp.status == 200
    first = await wa.replies()
    assert "Hi Ana!" in first and "welcome back" not in first, first

    def age(session):
        customer = session.exec(select(Customer).where(Customer.display_name == "Ana")).one()
        customer.created_at = utcnow() - timedelta(days=3)

    await channel_client.app[DB].run(age)
    assert "Hi Ana, welcome back!" in await wa.say("hi")
