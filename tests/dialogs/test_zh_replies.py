"""Replies in Traditional Chinese (zh-TW) for a shopper who writes Chinese, end to end through the
web chat API on the real app; an English shopper still gets English."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.i18n import EN, TEXTS, ZH, yes_no_zh
from bot.store.models import Customer, WaitlistEntry
from service.app import DB

ZH_MENU = ["瀏覽商品", "查看購物車", "追蹤訂單", "運送與退貨資訊"]
EN_MENU = ["Browse products", "View my cart", "Track an order", "Shipping & returns info"]


async def languages(client) -> list[str]:
    return await client.app[DB].run(lambda s: [c.language for c in s.exec(select(Customer)).all()])


async def test_greeting_and_menu_in_chinese(shopper, client):
    await shopper.say("你好")
    assert "您好！我是 Northwind Outfitters 的購物小幫手" in shopper.texts()
    assert shopper.buttons() == ZH_MENU
    assert "zh-TW" in await languages(client)
    await shopper.tap("查看購物車")
    assert shopper.texts() == "您的購物車是空的。"
    assert shopper.buttons() == ["瀏覽商品"]


async def test_stock_add_to_cart_view_cart_and_checkout_in_chinese(shopper):
    await shopper.say("Trail Blazer Runner 跑鞋有沒有9號的現貨？")
    assert "有的！Trail Blazer 越野跑鞋 9 號目前有" in shopper.texts(), shopper.texts()
    assert "要加一件到購物車嗎？" in shopper.texts()
    add_buttons = [b for b in shopper.buttons() if b.startswith("加入")]
    assert add_buttons and all(re.fullmatch(r"加入\w+色|加入海軍藍", b) for b in add_buttons), shopper.buttons()
    assert shopper.buttons()[-1] == "不用了"

    await shopper.tap(add_buttons[0])  # sends the Chinese title; the prompt maps it to its stable value
    assert re.search(r"已加入 1 × Trail Blazer 越野跑鞋（9 號，\w+色）", shopper.texts()), shopper.texts()
    assert "您的購物車：" in shopper.texts() and "合計：" in shopper.texts() and "（共 1 件）" in shopper.texts()
    assert "$" in shopper.texts() and "Added" not in shopper.texts()
    assert shopper.buttons() == ["結帳", "查看購物車"]
    # add-ons from related products: running socks, as Chinese product cards
    assert any("襪" in title for title in shopper.cards()), shopper.cards()
    card_buttons = [b["title"] for m in shopper.last for c in m["cards"] for b in c["buttons"]]
    assert "加入購物車" in card_buttons and "Add to cart" not in card_buttons

    await shopper.tap("查看購物車")
    assert re.search(r"您的購物車：\n1\. Trail Blazer 越野跑鞋（9 號，\w+色）× 1 — US\$\d+\.\d\d", shopper.texts())
    assert shopper.buttons() == ["結帳", "修改數量", "移除商品"]

    await shopper.tap("結帳")
    assert "請提供收件地址" in shopper.texts()
    await shopper.say("嗯")
    assert "這看起來不像地址" in shopper.texts()
    await shopper.say("台北市信義區松仁路100號")
    assert "收據要寄到哪裡？" in shopper.texts() and shopper.buttons() == ["跳過"]
    await shopper.tap("跳過")
    assert "寄送地址：台北市信義區松仁路100號\n確定要下單嗎？" in shopper.texts(), shopper.texts()
    assert shopper.buttons() == ["是", "否"]
    await shopper.tap("是")
    match = re.search(r"訂單 #(\d+) 已成立，金額 US\$\d+\.\d\d。", shopper.texts())
    assert match, shopper.texts()
    assert shopper.last[-1]["links"][0]["title"] == "立即付款"

    await shopper.say(f"我的訂單{match.group(1)}在哪裡")
    # the order's items by their Chinese names, as in the cart
    assert f"訂單 #{match.group(1)} 等待付款中。商品：1 × Trail Blazer 越野跑鞋。" in shopper.texts(), shopper.texts()

    # the saved address is offered next time; tapping 否 asks for another one
    await shopper.say("Trail Blazer Runner 跑鞋有沒有10號的現貨？")
    await shopper.tap([b for b in shopper.buttons() if b.startswith("加入")][0])
    assert "已加入 1 × Trail Blazer 越野跑鞋（10 號" in shopper.texts()
    await shopper.tap("結帳")
    assert "要寄送到您儲存的地址嗎：台北市信義區松仁路100號？" in shopper.texts()
    assert shopper.buttons() == ["是", "否"]
    await shopper.tap("否")
    assert "請提供收件地址" in shopper.texts()


async def test_size_that_does_not_exist_in_chinese(shopper):
    await shopper.say("Trail Blazer Runner 跑鞋有沒有12號的現貨？")
    assert shopper.texts() == "Trail Blazer 越野跑鞋沒有 12 號，現有的尺寸是 7、8、9、10和11。"


async def test_sold_out_waitlist_confirmed_with_chinese_yes(shopper, client):
    await shopper.say("Aero Runner 跑鞋有沒有9號的現貨？")
    assert "抱歉，Aero 跑鞋（9 號）已售完。以下商品有 9 號的現貨：" in shopper.texts(), shopper.texts()
    assert "Trail Blazer 越野跑鞋" in shopper.cards()
    assert "Aero 跑鞋（9 號）補貨時要通知您嗎？" in shopper.texts()
    assert shopper.buttons() == ["是", "否"]
    await shopper.tap("是")
    assert shopper.texts() == "好的！補貨時，通知會留在網站上的這個對話裡，再次打開對話就能看到。"
    entries = await client.app[DB].run(lambda s: s.exec(select(WaitlistEntry)).all())
    assert sorted(e.variant_sku for e in entries) == ["RUN-AERO-9-BLK", "RUN-AERO-9-BLU", "RUN-AERO-9-WHT"]


async def test_the_waitlist_offers_a_phone_channel_in_chinese(channel_client):
    from tests.fakes.web_shopper import WebShopper

    shopper = await WebShopper.start(channel_client)
    await shopper.say("Aero Runner 跑鞋有沒有9號的現貨？")
    await shopper.tap("是")
    assert "通知會留在網站上的這個對話裡" in shopper.texts() and "想改成傳到手機上嗎？" in shopper.texts()
    assert shopper.buttons() == ["用 WhatsApp 接收", "用簡訊接收"]  # Messenger needs MESSENGER_PAGE_NAME
    await shopper.tap("用 WhatsApp 接收")
    assert re.search(r"要在 WhatsApp 繼續，.*代碼 \d{6}", shopper.texts()), shopper.texts()


async def test_card_buttons_keep_chinese(shopper, client):
    """A tap on a card button sends a command payload such as `/check_stock {"product":...}`;
    the replies stay in Chinese and so do the replies to the taps after it."""
    await shopper.say("給我看洋裝")
    assert shopper.texts().startswith("為您找到這些洋裝：")
    assert "午夜裹身洋裝" in shopper.cards(), shopper.cards()
    card = next(c for m in shopper.last for c in m["cards"] if c["title"] == "午夜裹身洋裝")
    assert card["subtitle"].startswith("US$") and "尺寸" in card["subtitle"]
    stock_button = next(b for b in card["buttons"] if b["title"] == "尺寸與庫存")
    await shopper.say(stock_button["value"])
    assert "有的，午夜裹身洋裝目前有尺寸" in shopper.texts(), shopper.texts()
    assert "（S 已售完）" in shopper.texts()
    assert "M 號" in shopper.buttons() and "Size M" not in shopper.buttons()
    await shopper.tap("M 號")
    if "要哪個顏色" in shopper.texts():
        assert set(shopper.buttons()) <= {
            "黑色",
            "白色",
            "藍色",
            "海軍藍",
            "灰色",
            "綠色",
            "米色",
            "粉紅色",
            "紅色",
            "不用了",
        }
        await shopper.tap(shopper.buttons()[0])
    assert "已加入 1 × 午夜裹身洋裝（M 號" in shopper.texts(), shopper.texts()
    # remove it again through the menu payloads: still Chinese
    await shopper.say("/remove_from_cart")
    assert "已移除。您的購物車是空的。" in shopper.texts(), shopper.texts()
    assert shopper.buttons() == ["瀏覽商品"]


async def test_quantity_prompt_in_chinese(shopper):
    await shopper.say("Trail Blazer Runner 跑鞋有沒有9號的現貨？")
    await shopper.tap([b for b in shopper.buttons() if b.startswith("加入")][0])
    await shopper.tap("查看購物車")
    await shopper.tap("修改數量")
    assert "您要幾件？（輸入 0 即移除）" in shopper.texts(), shopper.texts()
    await shopper.say("三十")
    assert "請輸入 0 到 20 之間的數字。" in shopper.texts()
    await shopper.say("2")  # says nothing about language: the reply stays Chinese
    assert "已更新。您的購物車：" in shopper.texts() and "（共 2 件）" in shopper.texts(), shopper.texts()


async def test_cancel_and_return_in_chinese(client):
    from bot.messages import InboundMessage
    from service.app import ENGINE

    engine = client.app[ENGINE]

    async def say(text: str) -> tuple[str, list[str]]:
        _, replies = await engine.handle(InboundMessage("web", "demo-shopper", text + str(id(text)), text))
        buttons = [c["title"] for r in replies for c in (r.payload or {}).get("choices", [])]
        return "\n".join(r.text or "" for r in replies), buttons

    out, _ = await say("我的訂單1002在哪裡")
    assert "訂單 #1002 正在配送中" in out and "追蹤編號 1Z999AA10123456784" in out, out
    out, _ = await say("取消訂單1002")
    assert "訂單 #1002 無法取消：訂單已經出貨" in out, out
    out, buttons = await say("取消訂單1003")
    assert "要取消訂單 #1003（" in out and buttons == ["是", "否"], (out, buttons)
    out, _ = await say("是")
    assert "訂單 #1003 已取消" in out, out

    out, buttons = await say("訂單1001我想退貨")
    assert "您要退哪一項商品？" in out, (out, buttons)
    assert buttons and all(re.search(r"[\u4e00-\u9fff]", b.split("（")[0]) for b in buttons), buttons  # Chinese names
    chosen = buttons[0]
    out, buttons = await say(chosen)
    assert "請問退貨的原因是什麼？" in out, (chosen, out, buttons)
    assert buttons == ["尺寸不合", "與商品描述不符", "到貨時已損壞", "我改變主意了"]
    out, _ = await say("尺寸不合")
    assert re.search(r"退貨編號：R-1001-[0-9A-F]{6}", out), out


async def test_english_shopper_still_gets_english(shopper, client):
    await shopper.say("hello")
    assert shopper.texts().startswith("Hi! I'm the Northwind Outfitters assistant.")
    assert shopper.buttons() == EN_MENU
    await shopper.say("do you have the aero runner in size 9?")
    assert "Sorry, the Aero Runner in size 9 is sold out. These are in stock in size 9:" in shopper.texts()
    assert "Trail Blazer Runner" in shopper.cards()
    assert shopper.buttons() == ["Yes", "No"]
    await shopper.tap("No")
    assert shopper.texts() == "OK, no alert. Anything else I can help with?"
    assert "zh-TW" not in await languages(client)


async def test_shopper_switching_back_to_english(shopper):
    await shopper.say("你好")
    assert shopper.buttons() == ZH_MENU
    await shopper.say("Hello, can you show me your black dresses please?")
    assert "Here are some black dresses:" in shopper.texts(), shopper.texts()
    assert all(not re.search(r"[\u4e00-\u9fff]", title) for title in shopper.cards())


def test_every_text_has_both_languages():
    for key, entry in TEXTS.items():
        assert entry.get(EN) and entry.get(ZH), key
        assert not re.search(r"[\u4e00-\u9fff]", entry[EN]), key


def test_chinese_yes_and_no():
    assert yes_no_zh("是") is True and yes_no_zh("好的！") is True
    assert yes_no_zh("否") is False and yes_no_zh("不用了。") is False
    assert yes_no_zh("是什麼") is None and yes_no_zh("yes") is None


async def test_faq_topics_and_link_result_in_chinese(client):
    from tests.fakes.web_shopper import WebShopper

    web = await WebShopper.start(client)
    await web.say("/faq")
    assert web.buttons()  # English shopper: English topics
    assert all(not any("\u4e00" <= ch <= "\u9fff" for ch in b) for b in web.buttons())
    zh = await WebShopper.start(client)
    await zh.say("你好")
    await zh.say("/faq")
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in b) for b in zh.buttons()), zh.buttons()
    await zh.say("Link code: notarealtoken1234567")
    assert "驗證碼不正確" in zh.texts()
