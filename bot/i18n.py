"""Every shopper-facing text in English and Traditional Chinese (Taiwan), the shopper's language,
and money and dates as that shopper reads them (Babel's CLDR data, not the system's locales).

One table module rather than gettext catalogs: the texts are keyed by meaning, not by their
English wording, and two languages edited side by side in one file are easier to keep complete.

`text_in(language, key, **values)` fills the template with `str.format`; a language without a
translation falls back to English. Button *values* (command payloads, prompt choice values) never
come from here: only what is shown. Imports nothing of the project (settings validate with
`bot/handoff/hours.py`, which uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency

EN = "en"
ZH = "zh-TW"
# The Babel locale of each language: its currency symbols, digit grouping, day and month names.
LOCALES = {EN: "en_US", ZH: "zh_Hant_TW"}

# The main menu and "did you mean" buttons, by intent.
MENU_LABELS: dict[str, dict[str, str]] = {
    "product_search": {EN: "Browse products", ZH: "瀏覽商品"},
    "check_stock": {EN: "Check stock", ZH: "查詢庫存"},
    "recommend": {EN: "Recommendations", ZH: "為您推薦"},
    "add_to_cart": {EN: "Add to cart", ZH: "加入購物車"},
    "view_cart": {EN: "View my cart", ZH: "查看購物車"},
    "remove_from_cart": {EN: "Remove an item", ZH: "移除商品"},
    "checkout": {EN: "Checkout", ZH: "結帳"},
    "order_status": {EN: "Track an order", ZH: "追蹤訂單"},
    "cancel_order": {EN: "Cancel an order", ZH: "取消訂單"},
    "return_item": {EN: "Return an item", ZH: "退貨"},
    "faq": {EN: "Shipping & returns info", ZH: "運送與退貨資訊"},
    "human_agent": {EN: "Contact support", ZH: "聯絡客服"},
}

TEXTS: dict[str, dict[str, str]] = {
    # --- buttons and links shared by several dialogs
    "btn.checkout": {EN: "Checkout", ZH: "結帳"},
    "btn.view_cart": {EN: "View cart", ZH: "查看購物車"},
    "btn.change_quantity": {EN: "Change quantity", ZH: "修改數量"},
    "btn.remove_item": {EN: "Remove an item", ZH: "移除商品"},
    "btn.browse": {EN: "Browse products", ZH: "瀏覽商品"},
    "btn.add_to_cart": {EN: "Add to cart", ZH: "加入購物車"},
    "btn.sizes_stock": {EN: "Sizes & stock", ZH: "尺寸與庫存"},
    "btn.notify_me": {EN: "Notify me", ZH: "到貨通知我"},
    "btn.notify_size": {EN: "Notify me about {size}", ZH: "{size_label}到貨通知我"},
    "btn.pay_now": {EN: "Pay now", ZH: "立即付款"},
    "btn.track_parcel": {EN: "Track parcel", ZH: "追蹤包裹"},
    "btn.return_label": {EN: "Print return label", ZH: "列印退貨標籤"},
    "btn.no_thanks": {EN: "No thanks", ZH: "不用了"},
    "btn.add_colour": {EN: "Add {colour}", ZH: "加入{colour}"},
    "btn.size": {EN: "Size {size}", ZH: "{size_label}"},
    "btn.open_channel": {EN: "Open {name}", ZH: "開啟 {name}"},
    "btn.yes": {EN: "Yes", ZH: "是"},
    "btn.no": {EN: "No", ZH: "否"},
    # --- small talk (main dialog)
    "greet": {
        EN: "Hi! I'm the Northwind Outfitters assistant. I can find products, check sizes and stock, "
        "manage your cart and track your orders. What are you looking for?",
        ZH: "您好！我是 Northwind Outfitters 的購物小幫手，可以幫您找商品、查詢尺寸和庫存、管理購物車，"
        "以及追蹤訂單。請問您在找什麼呢？",
    },
    "thanks": {EN: "You're welcome! Anything else?", ZH: "不客氣！還有什麼需要幫忙的嗎？"},
    "goodbye": {
        EN: "Bye for now! Your cart is saved for when you're back.",
        ZH: "再見！您的購物車會幫您保留，歡迎隨時回來。",
    },
    "ok_menu": {EN: "OK! What can I do for you?", ZH: "好的！有什麼可以為您服務的嗎？"},
    "opt_out": {
        EN: "You're unsubscribed from offers and reminders. Send START to subscribe again.",
        ZH: "您已取消訂閱優惠和提醒訊息。如要重新訂閱，請傳送 START。",
    },
    "opt_in": {
        EN: "You're subscribed to offers and reminders. Send STOP at any time to unsubscribe.",
        ZH: "您已訂閱優惠和提醒訊息。隨時傳送 STOP 即可取消訂閱。",
    },
    "support": {EN: "Our support team will be glad to help.", ZH: "我們的客服團隊很樂意為您服務。"},
    "disclosure": {
        EN: "You're chatting with Northwind Outfitters' automated assistant; ask for a person at any time.",
        ZH: "您正在與 Northwind Outfitters 的自動化購物小幫手對話；隨時都可以要求轉接真人客服。",
    },
    "timezone.set": {
        EN: "Got it: you're on {zone} time, where it's {time} now. I'll keep reminders and offers to daytime there.",
        ZH: "好的，已將您的時區設為 {zone}，當地現在是 {time}。提醒和優惠訊息只會在當地白天傳送。",
    },
    "consent.ask": {
        EN: "Would you like to get our offers and reminders in this chat? You can stop them at any time "
        "by sending STOP.",
        ZH: "您想在這個對話中收到我們的優惠和提醒訊息嗎？隨時傳送 STOP 即可停止。",
    },
    "consent.declined": {
        EN: "OK, no offers. Anything else I can help with?",
        ZH: "好的，不會傳送優惠訊息。還有什麼需要幫忙的嗎？",
    },
    "greet.first_name": {
        EN: "Hi {name}! I'm the Northwind Outfitters assistant. I can find products, check sizes and stock, "
        "manage your cart and track your orders. What are you looking for?",
        ZH: "{name}您好！我是 Northwind Outfitters 的購物小幫手，可以幫您找商品、查詢尺寸和庫存、管理購物車，"
        "以及追蹤訂單。請問您在找什麼呢？",
    },
    "greet.name": {
        EN: "Hi {name}, welcome back! I can find products, check sizes and stock, manage your cart and "
        "track your orders. What are you looking for today?",
        ZH: "{name}您好，歡迎回來！我可以幫您找商品、查詢尺寸和庫存、管理購物車，以及追蹤訂單。今天想找什麼呢？",
    },
    "not_sold": {EN: "Sorry, we don't sell {item}. {range}", ZH: "抱歉，我們沒有販售{item}。{range}"},
    "other_business": {
        EN: "I can only help with this shop's own products and orders. For {business}, please contact them directly.",
        ZH: "我只能協助本店的商品和訂單；{business}的問題請直接聯絡他們。",
    },
    "shop.range": {EN: "We have {categories}.", ZH: "我們有{categories}。"},
    "shop.range_more": {EN: "We have {categories} and more.", ZH: "我們有{categories}等商品。"},
    # --- human handoff
    "handoff.queued": {
        EN: "I'm passing you to a member of our team. They'll see our conversation so far, so there's no need "
        "to repeat yourself. Someone will reply right here shortly.",
        ZH: "我幫您轉接給我們的專人。對方會看到我們目前的對話內容，您不需要再說明一次，請稍候，專人很快就會在這裡回覆您。",
    },
    "handoff.offline": {
        EN: "Our team is offline right now. I've passed your request on, and someone will reply right here "
        "from {opens}. There's no need to repeat yourself.",
        ZH: "目前客服人員不在線上。我已經幫您轉達需求，專人會在{opens}起於這裡回覆您，您不需要再說明一次。",
    },
    "handoff.requeued": {
        EN: "Sorry for the wait. The next available member of our team will pick up your conversation; "
        "they'll see everything you've written.",
        ZH: "抱歉讓您久等了。下一位有空的專人會接手您的對話，並且會看到您先前的所有訊息。",
    },
    "handoff.resolved": {
        EN: "Our team has marked your request as solved, and I'm back to help. Is there anything else I can do for you?",
        ZH: "客服人員已將您的問題標示為已解決，接下來由我繼續為您服務。還有什麼需要幫忙的嗎？",
    },
    "handoff.csat": {
        EN: "How did we do? Tap 1 to 5 stars (5 = great).",
        ZH: "您對這次的服務滿意嗎？請選擇 1 到 5 顆星（5 = 非常滿意）。",
    },
    "csat.bot": {
        EN: "How did I do? Tap 1 to 5 stars (5 = great).",
        ZH: "我這次的幫忙還滿意嗎？請選擇 1 到 5 顆星（5 = 非常滿意）。",
    },
    "handoff.csat_thanks": {
        EN: "Thank you for your feedback! Anything else I can help with?",
        ZH: "謝謝您的回饋！還有什麼需要幫忙的嗎？",
    },
    "clarify_guess": {
        EN: "Sorry, I'm not sure I understood. Did you mean one of these?",
        ZH: "抱歉，我不太確定您的意思。您是指下面其中一項嗎？",
    },
    "clarify": {
        EN: "Sorry, I didn't understand that. I can help with products, your cart and your orders.",
        ZH: "抱歉，我看不太懂。我可以協助您查詢商品、購物車和訂單。",
    },
    # --- product cards and the cart (shop.py)
    "card.sizes": {EN: "{price} · sizes {sizes}", ZH: "{price} · 尺寸 {sizes}"},
    "card.sold_out": {EN: "{price} · sold out", ZH: "{price} · 已售完"},
    "cart.empty": {EN: "Your cart is empty.", ZH: "您的購物車是空的。"},
    "cart.header": {EN: "Your cart:", ZH: "您的購物車："},
    "cart.line": {
        EN: "{i}. {name} ({size}, {colour}) × {quantity} — {total}",
        ZH: "{i}. {name}（{size}，{colour}）× {quantity} — {total}",
    },
    "cart.total": {EN: "Total: {total} ({count} item{s})", ZH: "合計：{total}（共 {count} 件）"},
    "item_title": {EN: "{name} ({size}, {colour})", ZH: "{name}（{size}，{colour}）"},
    # --- stock
    "product_gone": {EN: "Sorry, I can't find that product any more.", ZH: "抱歉，已經找不到這項商品了。"},
    "stock.not_found": {EN: "I couldn't find that product. {range}", ZH: "找不到這項商品。{range}"},
    "stock.which": {EN: "Which one do you mean?", ZH: "請問您指的是哪一款？"},
    "stock.which_in": {EN: "These come in {what}. Which one would you like?", ZH: "這些有{what}。您想要哪一款？"},
    "stock.no_such_size": {
        EN: "The {name} doesn't come in size {size}. It comes in {sizes}.",
        ZH: "{name}沒有 {size_label}，現有的尺寸是 {sizes}。",
    },
    "stock.size_in_stock": {
        EN: "Yes! The {name} in size {size} is in stock in {colours}. Add one to your cart?",
        ZH: "有的！{name} {size_label}目前有{colours}的現貨。要加一件到購物車嗎？",
    },
    "stock.sizes_in_stock": {
        EN: "Yes, the {name}{in_colour} is in stock in {size_word} {sizes}{note}. Add one to your cart?",
        ZH: "有的，{name}{in_colour}目前有尺寸 {sizes} 的現貨{note}。要加一件到購物車嗎？",
    },
    "stock.checked_minutes": {
        EN: " Stock last checked {n} minutes ago.",
        ZH: "（庫存資料為 {n} 分鐘前確認的。）",
    },
    "stock.checked_hours": {
        EN: " Stock last checked {n} hours ago.",
        ZH: "（庫存資料為 {n} 小時前確認的。）",
    },
    "stock.in_colour": {EN: " in {colour}", ZH: "（{colour}）"},
    "stock.sold_out_note": {EN: " ({sizes} sold out)", ZH: "（{sizes} 已售完）"},
    "stock.what_size": {EN: "size {size}", ZH: "{size_label}"},
    "stock.what": {EN: " in {what}", ZH: "（{what}）"},
    "stock.sold_out": {EN: "Sorry, the {name}{what} is sold out.", ZH: "抱歉，{name}{what}已售完。"},
    "stock.similar": {EN: " These are in stock:", ZH: "以下商品有現貨："},
    "stock.similar_size": {EN: " These are in stock in size {size}:", ZH: "以下商品有 {size_label}的現貨："},
    "stock.waitlist_ask": {
        EN: "Shall I let you know when the {name}{what} is back in stock?",
        ZH: "{name}{what}補貨時要通知您嗎？",
    },
    "stock.waitlist_done_on": {
        EN: "Done! I'll message you on {channel} as soon as it's back.",
        ZH: "好的！一補貨就會透過 {channel} 通知您。",
    },
    "stock.waitlist_done_web": {
        EN: "Done! When it's back, the notice will be waiting in this chat on our website: open the chat "
        "again to see it.",
        ZH: "好的！補貨時，通知會留在網站上的這個對話裡，再次打開對話就能看到。",
    },
    "stock.waitlist_phone_offer": {
        EN: "Would you rather get it on your phone?",
        ZH: "想改成傳到手機上嗎？",
    },
    "btn.notice_on.whatsapp": {EN: "Get it on WhatsApp", ZH: "用 WhatsApp 接收"},
    "btn.notice_on.messenger": {EN: "Get it on Messenger", ZH: "用 Messenger 接收"},
    "btn.notice_on.sms": {EN: "Get it by SMS", ZH: "用簡訊接收"},
    "stock.waitlist_no": {
        EN: "OK, no alert. Anything else I can help with?",
        ZH: "好的，不設到貨通知。還有什麼需要幫忙的嗎？",
    },
    "no_problem": {EN: "No problem. Anything else?", ZH: "沒問題。還需要什麼嗎？"},
    # --- search and recommendations
    "search.product": {EN: "{name}: {description}", ZH: "{name}：{description}"},
    "search.nothing": {EN: "I couldn't find anything like that. {range}", ZH: "找不到符合的商品。{range}"},
    "search.items": {EN: "items", ZH: "商品"},
    "search.in_size": {EN: " in size {size}", ZH: "（{size_label}）"},
    "search.results": {EN: "Here are some {what}{size}:", ZH: "為您找到這些{what}{size}："},
    "search.goes_with": {EN: "These go well with the {name}:", ZH: "這些和{name}很搭："},
    "search.picks": {EN: "Our picks for you:", ZH: "為您精選："},
    "search.after_purchase": {EN: "Picked for you, going by your past orders:", ZH: "依您過去的訂單為您挑選："},
    # --- adding to the cart
    "add.which_product": {
        EN: "Which product would you like? Try “show me running shoes”.",
        ZH: "您想要哪一項商品？可以試試「給我看跑鞋」。",
    },
    "add.which_one": {EN: "Which one would you like to add?", ZH: "您想加入哪一款？"},
    "add.sold_out": {EN: "Sorry, the {name} is sold out right now.", ZH: "抱歉，{name}目前已售完。"},
    "add.no_size": {
        EN: "The {name} doesn't come in size {size}. In stock: {sizes}.",
        ZH: "{name}沒有 {size_label}。有現貨的尺寸：{sizes}。",
    },
    "add.size_sold_out": {
        EN: "The {name} is sold out in size {size}. In stock: {sizes}.",
        ZH: "{name} {size_label}已售完。有現貨的尺寸：{sizes}。",
    },
    "add.which_size": {EN: "Which size of the {name}?", ZH: "{name}要哪個尺寸？"},
    "add.which_colour": {
        EN: "Size {size} is in stock in {colours}. Which colour?",
        ZH: "{size_label}有{colours}的現貨。要哪個顏色？",
    },
    "add.only_left": {
        EN: "Sorry, only {left} more of the {name} in {size}, {colour} can go in your cart.",
        ZH: "抱歉，{name}（{size}，{colour}）最多只能再加 {left} 件到購物車。",
    },
    "add.only_left_ask": {
        EN: "Sorry, only {left} more of the {name} in {size}, {colour} can go in your cart (you asked for "
        "{wanted}). Add {left}?",
        ZH: "抱歉，{name}（{size}，{colour}）最多只能再加 {left} 件到購物車（您要 {wanted} 件）。要加入 {left} 件嗎？",
    },
    "add.too_many": {
        EN: "You can add at most {most} of one item at a time. For a larger order, ask for a person.",
        ZH: "同一項商品一次最多只能加入 {most} 件。如需大量訂購，請聯絡專人。",
    },
    "add.all_taken": {
        EN: "Sorry, you already have all we have of the {name} in {size}, {colour}.",
        ZH: "抱歉，{name}（{size}，{colour}）的庫存已經全部在您的購物車裡了。",
    },
    "add.added": {
        EN: "Added {quantity} × {name} ({size}, {colour}) for {price}.\n{summary}",
        ZH: "已加入 {quantity} × {name}（{size}，{colour}），共 {price}。\n{summary}",
    },
    "add.goes_well": {EN: "Goes well with it:", ZH: "搭配推薦："},
    # --- the cart
    "cart.which_remove": {EN: "Which item do you want to remove?", ZH: "要移除哪一項商品？"},
    "cart.which_change": {EN: "Which item do you want to change?", ZH: "要修改哪一項商品的數量？"},
    "cart.how_many": {EN: "How many would you like? (0 removes it)", ZH: "您要幾件？（輸入 0 即移除）"},
    "prompt.not_understood": {
        EN: "Sorry, I didn't catch that. Please choose one of the options below, or ask me something else.",
        ZH: "抱歉，我沒看懂。請選擇下方的選項，或問我其他問題。",
    },
    "cart.number_retry": {EN: "Please send a number from 0 to 20.", ZH: "請輸入 0 到 20 之間的數字。"},
    "cart.removed": {EN: "Removed. ", ZH: "已移除。"},
    "cart.updated": {EN: "Updated. ", ZH: "已更新。"},
    "cart.only_in_stock": {EN: "Sorry, only {available} in stock. ", ZH: "抱歉，庫存只剩 {available} 件。"},
    # --- checkout
    "checkout.empty_yet": {
        EN: "Your cart is empty, so there's nothing to check out yet.",
        ZH: "您的購物車是空的，目前還沒有可以結帳的商品。",
    },
    "checkout.saved_address": {
        EN: "Shall we ship to your saved address: {address}?",
        ZH: "要寄送到您儲存的地址嗎：{address}？",
    },
    "checkout.ask_address": {
        EN: "What's the shipping address? (street and number, city, postcode)",
        ZH: "請提供收件地址（郵遞區號、縣市、路街和門牌號碼）。",
    },
    "checkout.address_unreadable": {
        EN: "Our carrier needs the address on one line as street and number, city, state and ZIP code, "
        "e.g. “179 N Harbor Dr, Redondo Beach, CA 90277”. What's the shipping address?",
        ZH: "物流公司需要一行完整的地址：路街和門牌號碼、城市、州和郵遞區號，"
        "例如「179 N Harbor Dr, Redondo Beach, CA 90277」。請問收件地址是？",
    },
    "checkout.address_undeliverable": {
        EN: "Our carrier can't find that address. Could you check the street, number and ZIP code and send it again?",
        ZH: "物流公司找不到這個地址。請確認路街、門牌號碼和郵遞區號後再傳一次好嗎？",
    },
    "checkout.bad_address": {
        EN: "That doesn't look like an address. Please send street and number, city and postcode.",
        ZH: "這看起來不像地址。請提供郵遞區號、縣市、路街和門牌號碼。",
    },
    "checkout.ask_contact": {
        EN: "Where should we send your receipt? Send an e-mail address or a phone number, or say “skip”.",
        ZH: "收據要寄到哪裡？請提供電子郵件地址或電話號碼，或輸入「跳過」。",
    },
    "checkout.bad_contact": {
        EN: "That doesn't look like an e-mail address or a phone number. Please send one, or say “skip”.",
        ZH: "這看起來不像電子郵件地址或電話號碼。請再提供一次，或輸入「跳過」。",
    },
    "checkout.saved_contact": {EN: "Send the receipt to {contact} again?", ZH: "收據一樣寄到 {contact} 嗎？"},
    "btn.skip": {EN: "Skip", ZH: "跳過"},
    "checkout.price_changed": {
        EN: "The price of {name} changed from {old} to {new}.",
        ZH: "{name}的價格已從 {old} 調整為 {new}。",
    },
    "checkout.confirm": {
        EN: "{summary}\n{charges}\nArrives by {date}\n{receipt}Shipping to: {address}\nPlace the order?",
        ZH: "{summary}\n{charges}\n預計 {date} 前送達\n{receipt}寄送地址：{address}\n確定要下單嗎？",
    },
    "checkout.receipt": {EN: "Receipt to: {contact}\n", ZH: "收據寄至：{contact}\n"},
    "checkout.discount_line": {
        EN: "Code {code} ({percent}% off): −{amount}",
        ZH: "優惠碼 {code}（{percent}% 折扣）：−{amount}",
    },
    "checkout.shipping_line": {EN: "Shipping: {fee}", ZH: "運費：{fee}"},
    "checkout.shipping_free": {EN: "Shipping: free", ZH: "運費：免運費"},
    "checkout.total_line": {EN: "Total: {total}", ZH: "總計：{total}"},
    "cart.subtotal": {EN: "Subtotal: {total} ({count} item{s})", ZH: "小計：{total}（共 {count} 件）"},
    "checkout.not_placed": {
        EN: "OK, I haven't placed it. Your cart is saved.",
        ZH: "好的，訂單尚未送出。您的購物車已幫您保留。",
    },
    "checkout.sold_out": {
        EN: "Sorry, an item in your cart just sold out. Please check your cart.",
        ZH: "抱歉，您購物車裡有商品剛剛售完，請查看購物車。",
    },
    "checkout.empty": {
        EN: "Your cart is empty, so there's nothing to check out.",
        ZH: "您的購物車是空的，沒有可以結帳的商品。",
    },
    "checkout.placed": {
        EN: "Order #{number} is placed: {total}. {shipping}It arrives by {date}. "
        "Pay securely with the link below and we'll confirm here as soon as it's paid.",
        ZH: "訂單 #{number} 已成立，金額 {total}。{shipping}預計 {date} 前送達。"
        "請透過下方連結安全付款，付款完成後我們會在這裡通知您。",
    },
    "checkout.pay_later": {
        EN: "Order #{number} is placed: {total}, and your items are held for you. Our payment service is "
        "slow to answer right now, so the link to pay will follow here in a moment: there's nothing "
        "you need to do.",
        ZH: "訂單 #{number} 已成立，金額 {total}，商品已為您保留。付款服務目前回應較慢，"
        "付款連結稍後會傳到這裡，您不需要做任何事。",
    },
    "order.pay_later": {
        EN: "Our payment service still isn't answering, sorry. Order #{number} is held for you: please try "
        "again in a minute.",
        ZH: "抱歉，付款服務仍然沒有回應。訂單 #{number} 已為您保留，請一分鐘後再試一次。",
    },
    "order.link_on_its_way": {
        EN: "Our payment service still isn't answering, sorry. Order #{number} is held for you, and the "
        "link to pay it comes here as soon as the service answers.",
        ZH: "抱歉，付款服務仍然沒有回應。訂單 #{number} 已為您保留，服務一有回應，付款連結就會傳到這裡。",
    },
    "order.link_ready": {
        EN: "Here is the link to pay order #{number} ({total}). Pay securely with the link below and we'll "
        "confirm here as soon as it's paid.",
        ZH: "這是訂單 #{number}（{total}）的付款連結。請透過下方連結安全付款，付款完成後我們會在這裡通知您。",
    },
    "order.link_gave_up": {
        EN: "Sorry, our payment service still isn't answering, so we couldn't make the link to pay order "
        "#{number}. Your items are still held, and a member of our team will get back to you here about it.",
        ZH: "抱歉，付款服務仍然沒有回應，我們無法產生訂單 #{number} 的付款連結。商品仍為您保留，"
        "我們的專人會在這裡與您聯繫。",
    },
    "pay.failed": {
        EN: "Your payment for order #{number} didn't go through, and nothing was charged. You can try again "
        "with the same pay link, with another card if you like.",
        ZH: "訂單 #{number} 的付款沒有成功，沒有扣款。您可以用同一個付款連結再試一次，也可以換一張卡。",
    },
    "pay.done.title": {EN: "Thank you", ZH: "謝謝您"},
    "pay.done": {
        EN: "We'll confirm your payment in the chat in a moment. You can close this page.",
        ZH: "我們稍後會在對話中確認您的付款。您可以關閉這個頁面。",
    },
    "pay.cancelled.title": {EN: "Payment not made", ZH: "尚未付款"},
    "pay.cancelled": {
        EN: "Nothing was charged. Your order is held for a while: go back to the chat to pay when you're ready.",
        ZH: "沒有扣款。您的訂單會保留一段時間，準備好時請回到對話中付款。",
    },
    "checkout.placed_shipping": {EN: "That includes {fee} shipping. ", ZH: "含運費 {fee}。"},
    "checkout.placed_free": {EN: "Shipping is free. ", ZH: "免運費。"},
    # --- discount codes
    "discount.ask": {EN: "What's the code?", ZH: "請問優惠碼是什麼？"},
    "discount.applied": {
        EN: "Code {code} is on your cart: {percent}% off, taken off when you check out.",
        ZH: "已將優惠碼 {code} 套用到您的購物車：結帳時享 {percent}% 折扣。",
    },
    "discount.unknown": {
        EN: "Sorry, {code} isn't a code we know. Check the spelling and try again, or carry on without one.",
        ZH: "抱歉，我們沒有 {code} 這個優惠碼。請確認拼字後再試一次，或不使用優惠碼繼續。",
    },
    "discount.none_seen": {
        EN: "I couldn't see a code in that. A code looks like WELCOME5; say “apply code” and the code.",
        ZH: "我沒有看到優惠碼。優惠碼看起來像 WELCOME5，請輸入「使用優惠碼」加上優惠碼。",
    },
    "checkout.discount": {EN: "Code {code} is applied.", ZH: "已套用優惠碼 {code}。"},
    # --- the sandbox payment page and the payment notice
    "pay.title": {EN: "Payment", ZH: "付款"},
    "pay.heading": {EN: "Pay for order #{number}", ZH: "支付訂單 #{number}"},
    "pay.amount": {EN: "Amount: {total}", ZH: "金額：{total}"},
    "pay.sandbox": {
        EN: "This is the sandbox payment provider: no card is charged.",
        ZH: "這是測試用的付款服務，不會向任何卡片收費。",
    },
    "pay.received.title": {EN: "Payment received", ZH: "已收到付款"},
    "pay.received": {
        EN: "Thank you! You can close this page and go back to the chat.",
        ZH: "謝謝您！您可以關閉這個頁面，回到對話中。",
    },
    "pay.refused.title": {EN: "Order #{number} can't be paid", ZH: "訂單 #{number} 無法付款"},
    "pay.refused.cancelled": {
        EN: "Order #{number} was cancelled, so it can't be paid. Nothing was charged.",
        ZH: "訂單 #{number} 已經取消，所以無法付款。沒有收取任何費用。",
    },
    "pay.refused.paid": {
        EN: "Order #{number} is already paid. Nothing more was charged.",
        ZH: "訂單 #{number} 已經付過款了，沒有再次收費。",
    },
    "pay.back": {EN: "You can close this page and go back to the chat.", ZH: "您可以關閉這個頁面，回到對話中。"},
    "pay.invalid.title": {EN: "This payment link is not valid", ZH: "這個付款連結無效"},
    "pay.invalid": {
        EN: "Nothing was charged. Open the link from the chat again, or ask there for a new one.",
        ZH: "沒有收取任何費用。請從對話中重新開啟連結，或在對話中要求新的連結。",
    },
    "pay.notice": {
        EN: "Payment received for order #{number} — thank you! We'll let you know when it ships.",
        ZH: "已收到訂單 #{number} 的付款，謝謝您！出貨時會再通知您。",
    },
    "pay.review": {
        EN: "Thank you! We're checking your payment for order #{number}; a person will confirm it here shortly.",
        ZH: "謝謝您！我們正在確認訂單 #{number} 的付款，稍後會有專人在這裡為您確認。",
    },
    # --- the order confirmation e-mail
    "mail.confirmation.subject": {EN: "Order #{number} confirmed", ZH: "訂單 #{number} 已確認"},
    "mail.confirmation.body": {
        EN: "Thank you for your order #{number}: we've received your payment.\n\n"
        "It arrives by {date}, shipping to:\n{address}\n\nWe'll let you know in the chat when it ships.",
        ZH: "感謝您訂購（訂單 #{number}），我們已收到您的付款。\n\n"
        "預計 {date} 前送達，寄送地址：\n{address}\n\n出貨時會在對話中通知您。",
    },
    "mail.line": {EN: "{quantity} × {name} ({size}, {colour})", ZH: "{quantity} × {name}（{size}，{colour}）"},
    "mail.discount": {EN: "Discount ({code})", ZH: "折扣（{code}）"},
    "mail.shipping": {EN: "Shipping", ZH: "運費"},
    "mail.total": {EN: "Total", ZH: "總計"},
    # --- orders: status, cancel, return
    "order.status.pending_payment": {EN: "is waiting for payment", ZH: "等待付款中"},
    "order.status.payment_review": {EN: "is paid; we're checking the payment", ZH: "已付款，正在確認付款"},
    "order.status.paid": {EN: "is paid and being packed", ZH: "已付款，正在包裝"},
    "order.status.shipped": {EN: "is on its way", ZH: "正在配送中"},
    "order.status.delivered": {EN: "was delivered", ZH: "已送達"},
    "order.status.cancelled": {EN: "was cancelled", ZH: "已取消"},
    "order.title": {EN: "#{number} ({created_at}, {total})", ZH: "#{number}（{created_at}，{total}）"},
    "order.item": {EN: "{quantity} × {name}", ZH: "{quantity} × {name}"},
    "order.status": {EN: "Order #{number} {status}. Items: {items}.", ZH: "訂單 #{number} {status}。商品：{items}。"},
    "order.arrives": {EN: " It arrives by {date}.", ZH: "預計 {date} 前送達。"},
    "order.arrival.pending_payment": {
        EN: "Order #{number} is waiting for payment. Paid when it was placed, it would arrive by {date}; "
        "we pack it once it's paid.",
        ZH: "訂單 #{number} 等待付款中。下單當天付款的話，預計 {date} 前送達；付款後我們就會包裝出貨。",
    },
    "order.arrival.paid": {
        EN: "Order #{number} is being packed and arrives by {date}.",
        ZH: "訂單 #{number} 正在包裝，預計 {date} 前送達。",
    },
    "order.arrival.shipped": {
        EN: "Order #{number} is on its way with {carrier} (tracking number {tracking}) and arrives by {date}.",
        ZH: "訂單 #{number} 已由 {carrier} 配送中（追蹤編號 {tracking}），預計 {date} 前送達。",
    },
    "order.arrival.shipped_no_date": {
        EN: "Order #{number} is on its way with {carrier}, tracking number {tracking}: the link below shows "
        "when it arrives.",
        ZH: "訂單 #{number} 已由 {carrier} 配送中，追蹤編號 {tracking}：點下方連結可查看送達時間。",
    },
    "order.arrival.delivered": {EN: "Order #{number} was delivered already.", ZH: "訂單 #{number} 已經送達了。"},
    "order.arrival.cancelled": {
        EN: "Order #{number} was cancelled, so it won't arrive.",
        ZH: "訂單 #{number} 已取消，所以不會寄出。",
    },
    "order.tracking": {
        EN: "\nCarrier: {carrier}, tracking number {tracking}.",
        ZH: "\n物流業者：{carrier}，追蹤編號 {tracking}。",
    },
    "order.not_found": {
        EN: "I couldn't find order #{number} on your account. Please check the number.",
        ZH: "您的帳戶裡找不到訂單 #{number}，請確認訂單編號。",
    },
    "order.none.check": {
        EN: "I can't find any order on your account that you can check.",
        ZH: "您的帳戶裡找不到可以查詢的訂單。",
    },
    "order.none.cancel": {
        EN: "I can't find any order on your account that you can cancel.",
        ZH: "您的帳戶裡找不到可以取消的訂單。",
    },
    "order.none.return": {
        EN: "I can't find any order on your account that you can return items from.",
        ZH: "您的帳戶裡找不到可以退貨的訂單。",
    },
    # --- refunds and address changes (order_help_dialog.py)
    "refund.none": {
        EN: "I can't find a return or a cancelled order on your account, so there is no refund on its way.",
        ZH: "您的帳戶裡沒有退貨或已取消的訂單，所以目前沒有處理中的退款。",
    },
    "refund.return": {
        EN: "Return {reference} for {item} (order #{number}), opened {opened}: the refund is made once the item reaches us.",
        ZH: "退貨 {reference}（訂單 #{number} 的 {item}，{opened} 申請）：商品寄回我們收到後就會退款。",
    },
    "refund.cancelled": {
        EN: "Order #{number} (placed {opened}) was cancelled: if it was paid, the money goes back the way you paid.",
        ZH: "訂單 #{number}（{opened} 下單）已取消：若已付款，款項會退回原付款方式。",
    },
    "refund.more": {
        EN: "If a refund is late or the amount looks wrong, our team can look into it. {contact}",
        ZH: "如果退款延遲或金額不對，客服團隊可以幫您查詢。{contact}",
    },
    "address.none": {
        EN: "I can't find an open order on your account whose address could be changed.",
        ZH: "您的帳戶裡找不到可以更改地址的訂單。",
    },
    "address.open": {
        EN: "Order #{number} hasn't shipped yet (it goes to {address}), so its address can still be changed; "
        "a person from our team makes the change. {contact}",
        ZH: "訂單 #{number} 尚未出貨（目前寄到 {address}），地址還可以更改，將由客服人員為您修改。{contact}",
    },
    "address.shipped": {
        EN: "Order #{number} has already left us, so its address can no longer be changed here. {contact}",
        ZH: "訂單 #{number} 已經出貨，無法在這裡更改地址。{contact}",
    },
    "price.one": {EN: "The {name} is {price}.", ZH: "{name}的價格是 {price}。"},
    "price.sold_out": {
        EN: "The {name} is {price}, but it is sold out right now.",
        ZH: "{name}的價格是 {price}，不過目前已售完。",
    },
    "price.size_in_stock": {EN: " Size {size} is in stock in {colours}.", ZH: "{size_label}有{colours}的現貨。"},
    "price.size_sold_out": {EN: " Size {size} is sold out right now.", ZH: "{size_label}目前已售完。"},
    "price.no_size": {EN: " It doesn't come in size {size}.", ZH: "這款沒有{size_label}。"},
    "price.which": {EN: "Here are their prices:", ZH: "以下是它們的價格："},
    "price.not_found": {
        EN: "Which product do you want the price of? Try “how much is the rain jacket”.",
        ZH: "想查哪一項商品的價格？可以試試「雨衣多少錢」。",
    },
    "feedback": {
        EN: "Thank you for telling us: a member of our team reads every comment and complaint.",
        ZH: "謝謝您告訴我們：每一則意見和客訴都會由客服團隊處理。",
    },
    "account_help": {
        EN: "Passwords, logins and account changes are handled by our team.",
        ZH: "密碼、登入和帳號變更由客服團隊協助處理。",
    },
    "order.which.check": {EN: "Which order do you want to check?", ZH: "要查詢哪一筆訂單？"},
    "order.which.cancel": {EN: "Which order do you want to cancel?", ZH: "要取消哪一筆訂單？"},
    "order.which.return": {EN: "Which order do you want to return items from?", ZH: "要退哪一筆訂單的商品？"},
    "cancel.why.shipped": {
        EN: "it has already shipped; you can return it once it arrives",
        ZH: "訂單已經出貨，到貨後可以申請退貨",
    },
    "cancel.why.delivered": {
        EN: "it was already delivered; you can start a return instead",
        ZH: "訂單已經送達，您可以改為申請退貨",
    },
    "cancel.why.cancelled": {EN: "it is already cancelled", ZH: "訂單已經取消了"},
    "cancel.why.other": {EN: "of its status", ZH: "目前的訂單狀態無法取消"},
    "cancel.not_possible": {EN: "Order #{number} can't be cancelled: {why}.", ZH: "訂單 #{number} 無法取消：{why}。"},
    "cancel.confirm": {EN: "Cancel order {title}?", ZH: "要取消訂單 {title} 嗎？"},
    "cancel.kept": {EN: "OK, order #{number} stays as it is.", ZH: "好的，訂單 #{number} 維持不變。"},
    "cancel.too_late": {
        EN: "Sorry, order #{number} can no longer be cancelled.",
        ZH: "抱歉，訂單 #{number} 已經無法取消。",
    },
    "cancel.done": {
        EN: "Order #{number} is cancelled. If you already paid, the refund reaches you in 3-5 business days.",
        ZH: "訂單 #{number} 已取消。如果您已付款，退款會在 3 到 5 個工作天內退回。",
    },
    "return.not_returnable": {
        EN: "Items from order #{number} can't be returned: returns open once an order is delivered, for 30 days.",
        ZH: "訂單 #{number} 的商品目前無法退貨：訂單送達後 30 天內才能申請退貨。",
    },
    "return.which_item": {EN: "Which item would you like to return?", ZH: "您要退哪一項商品？"},
    "return.reason": {EN: "What's the reason for the return?", ZH: "請問退貨的原因是什麼？"},
    "return.reason.Doesn't fit": {EN: "Doesn't fit", ZH: "尺寸不合"},
    "return.reason.Not as described": {EN: "Not as described", ZH: "與商品描述不符"},
    "return.reason.Arrived damaged": {EN: "Arrived damaged", ZH: "到貨時已損壞"},
    "return.reason.Changed my mind": {EN: "Changed my mind", ZH: "我改變主意了"},
    "return.too_late": {EN: "Sorry, that item can't be returned any more.", ZH: "抱歉，這項商品已經無法退貨。"},
    "return.opened": {
        EN: "Your return for the {name} is open. Reference: {reference}. "
        "Pack the item with the reference inside; the refund follows within 5 days of it reaching us.",
        ZH: "{name}的退貨申請已成立。退貨編號：{reference}。請把寫有退貨編號的紙條放進包裹一起寄回；"
        "我們收到商品後 5 天內會為您退款。",
    },
    "return.label": {
        EN: "Your return for the {name} is open. Reference: {reference}. Here is your prepaid return label (PDF). "
        "1. Print the label. 2. Pack the item with the reference inside and stick the label on the parcel. "
        "3. Hand it to the carrier or drop it off. Your refund starts as soon as the carrier scans it.",
        ZH: "{name}的退貨申請已成立。退貨編號：{reference}。這是預付郵資的退貨標籤（PDF）。"
        "1. 列印標籤。2. 把商品和寫有退貨編號的紙條一起包好，將標籤貼在包裹上。"
        "3. 交給物流公司或送到收件點。物流公司掃描包裹後，我們就會開始退款。",
    },
    "return.refunding": {
        EN: "The carrier has your return {reference} ({name}). Your refund of {amount} is on its way: "
        "it reaches you in 3-5 business days.",
        ZH: "物流公司已收到您的退貨 {reference}（{name}）。{amount} 的退款已經送出，會在 3 到 5 個工作天內退回。",
    },
    # --- account: other channels, privacy
    "channel.web": {EN: "Web chat", ZH: "網頁聊天"},
    "link.where": {EN: "Where would you like to continue?", ZH: "您想在哪裡繼續對話？"},
    "link.offer": {
        EN: "To continue on {name}, tap the link below and send the message it prepares, or send the code "
        "{code} there, then say yes when you're asked to confirm. It works once, for {minutes} minutes; "
        "don't share it with anyone. Your cart and this conversation come with you.",
        ZH: "要在 {name} 繼續，請點下方連結並送出預先填好的訊息，或在 {name} 傳送代碼 {code}，"
        "並在詢問是否連結時回答「是」。代碼只能使用一次，{minutes} 分鐘內有效，請勿提供給任何人。"
        "您的購物車和這段對話都會一起帶過去。",
    },
    "privacy.updates": {EN: "• Updates go to: {channel}", ZH: "• 通知會傳到：{channel}"},
    "prefer.button": {EN: "Send updates here", ZH: "通知傳到這裡"},
    "prefer.done": {
        EN: "Done: order updates and messages from us will come to this chat.",
        ZH: "好的：訂單通知和我們的訊息之後都會傳到這個對話。",
    },
    "privacy.header": {EN: "Here is what we keep about you:", ZH: "以下是我們保存的您的資料："},
    "privacy.chats": {EN: "• Chats: {channels}", ZH: "• 對話管道：{channels}"},
    "privacy.language": {EN: "• Language: {language}", ZH: "• 語言：{language}"},
    "privacy.address": {EN: "• Shipping address: {address}", ZH: "• 收件地址：{address}"},
    "privacy.marketing": {EN: "• Offers and reminders: {marketing}", ZH: "• 優惠和提醒訊息：{marketing}"},
    "privacy.counts": {EN: "• Messages: {messages}, orders: {orders}", ZH: "• 訊息：{messages} 則，訂單：{orders} 筆"},
    "privacy.how_to_forget": {
        EN: "Say “delete my data” if you want us to forget you.",
        ZH: "如果想要我們刪除您的資料，請說「刪除我的資料」。",
    },
    "privacy.none": {EN: "none", ZH: "無"},
    "privacy.none_saved": {EN: "none saved", ZH: "未儲存"},
    "privacy.marketing.subscribed": {EN: "subscribed", ZH: "已訂閱"},
    "privacy.marketing.unsubscribed": {EN: "unsubscribed", ZH: "已取消訂閱"},
    "privacy.marketing.not asked": {EN: "not asked", ZH: "尚未詢問"},
    "privacy.language.en": {EN: "en", ZH: "英文"},
    "privacy.language.zh-TW": {EN: "zh-TW", ZH: "繁體中文"},
    "privacy.confirm": {
        EN: "This deletes your chats, cart, saved address and contact details. Orders stay in our records "
        "without your personal details. Delete everything?",
        ZH: "這會刪除您的對話、購物車、儲存的地址和聯絡資料。訂單會留在我們的紀錄中，但不含您的個人資料。"
        "確定要全部刪除嗎？",
    },
    "privacy.kept": {EN: "OK, nothing was deleted.", ZH: "好的，沒有刪除任何資料。"},
    "privacy.erased": {
        EN: "Done: your details and {messages} messages are deleted. If you write again, we start fresh.",
        ZH: "完成：您的資料和 {messages} 則訊息都已刪除。如果您再次來訊，我們會從頭開始。",
    },
    # --- FAQ
    "faq.topics": {EN: "I can answer questions about these topics:", ZH: "我可以回答以下主題的問題："},
    # --- a shopper over SENDER_RATE_LIMIT (bot/sender_limit.py): their flood runs no turns
    "turn_failed": {
        EN: "Sorry, something went wrong on our side. Please try again.",
        ZH: "抱歉，我們這邊出了點問題。請再試一次。",
    },
    "rate_limited": {
        EN: "You're sending messages faster than I can read them. Please wait a moment, then send me "
        "your latest message again.",
        ZH: "您傳訊息的速度比我讀得還快。請稍候片刻，再把最新的訊息傳一次給我。",
    },
    # --- linking two chats (bot/conversation/linking.py)
    "link.expired": {
        EN: "That link has expired. Ask for a new one in the chat you came from.",
        ZH: "這個連結已過期，請在原本的對話中重新索取。",
    },
    "link.used": {
        EN: "That link was already used. Ask for a new one in the chat you came from.",
        ZH: "這個連結已經用過了，請在原本的對話中重新索取。",
    },
    "link.invalid": {
        EN: "That code isn't right. Check it and try again, or ask for a new one.",
        ZH: "驗證碼不正確，請確認後再試一次，或重新索取。",
    },
    "link.blocked": {
        EN: "That code no longer works: it was tried too often where it does not belong. "
        "Ask for a new one in the chat you came from.",
        ZH: "這個代碼在其他地方被嘗試太多次，已經失效。請在原本的對話中重新索取。",
    },
    "link.rate_limited": {
        EN: "Too many wrong codes from this chat. Please wait {minutes} minute{s} and try again.",
        ZH: "這個對話輸入錯誤的代碼太多次了，請 {minutes} 分鐘後再試。",
    },
    "link.confirm": {
        EN: "Link this chat with {other} that asked for a link at {time}? It will share your cart, "
        "orders and saved address. Only say yes if you asked for this yourself.",
        ZH: "要把這個對話和{other}連結嗎？那邊在 {time} 索取了連結。連結後會共用購物車、訂單和儲存的地址。"
        "只有在是您本人要求的情況下才回答「是」。",
    },
    "link.declined": {
        EN: "OK, nothing was linked. If someone else sent you that link or code, you can ignore it.",
        ZH: "好的，沒有連結任何對話。如果連結或代碼是別人傳給您的，不必理會。",
    },
    "link.stale": {
        EN: "That link request is no longer open. Ask for a new link in the chat you came from.",
        ZH: "這個連結要求已經失效，請在原本的對話中重新索取連結。",
    },
    "link.linked": {
        EN: "You're linked: this chat carries on from {where}. {cart}"
        "Say “checkout” to finish your order, or ask me anything.",
        ZH: "已連結：這裡接續您在{where}的對話。{cart}輸入「結帳」即可完成訂單，或隨時問我任何問題。",
    },
    "link.linked_resume": {
        EN: "You're linked: this chat carries on from {where}. {cart}Let's pick up where you left off.",
        ZH: "已連結：這裡接續您在{where}的對話。{cart}我們從剛才中斷的地方繼續。",
    },
    "link.cart": {EN: "Your cart has {items} item{s}. ", ZH: "您的購物車有 {items} 件商品。"},
    # The chat a shopper carries on from, in a sentence.
    "link.from.whatsapp": {EN: "WhatsApp", ZH: "WhatsApp"},
    "link.from.whatsapp_cloud": {EN: "WhatsApp", ZH: "WhatsApp"},  # Meta's Cloud API: WhatsApp to the shopper
    "link.from.messenger": {EN: "Messenger", ZH: "Messenger"},
    "link.from.sms": {EN: "SMS", ZH: "簡訊"},
    "link.from.web": {EN: "web chat", ZH: "網頁聊天"},
    "link.from.phone": {EN: "phone (WhatsApp/SMS)", ZH: "手機（WhatsApp／簡訊）"},
    "link.from.other": {EN: "your other chat", ZH: "另一個對話"},
    # The chat that asked for a link, as the confirmation question names it: a phone by its masked number.
    "link.asked.web": {EN: "the web chat", ZH: "網頁聊天"},
    "link.asked.messenger": {EN: "the Messenger chat", ZH: "Messenger 對話"},
    "link.asked.whatsapp": {EN: "the WhatsApp chat {address}", ZH: "WhatsApp 對話 {address}"},
    "link.asked.sms": {EN: "the SMS chat {address}", ZH: "簡訊對話 {address}"},
    "link.asked.other": {EN: "another chat", ZH: "另一個對話"},
    # --- channels by name, on buttons and in lists (English: the link prompt's values)
    "channel.whatsapp": {EN: "WhatsApp", ZH: "WhatsApp"},
    "channel.whatsapp_cloud": {EN: "WhatsApp", ZH: "WhatsApp"},
    "channel.messenger": {EN: "Messenger", ZH: "Messenger"},
    "channel.sms": {EN: "SMS", ZH: "SMS"},
    # --- a channel's own words around a message (channels/twilio.py, channels/messenger.py)
    "render.reply_with_number": {EN: "Reply with a number.", ZH: "請回覆選項的數字。"},
    "render.links": {EN: "Links", ZH: "連結"},
    "render.choose": {EN: "Choose one:", ZH: "請選擇："},
    # --- cart reminders and back-in-stock notices (bot/marketing/reminders.py)
    "reminder.cart1": {
        EN: "You left {items} in your cart. Shall we finish your order?",
        ZH: "您的購物車裡還有 {items}，要完成訂單嗎？",
    },
    "reminder.cart2": {
        EN: "Your cart is still waiting: {items}. Here's {percent}% off with code {code} — it is "
        "applied when you check out.",
        ZH: "您的購物車還在等您：{items}。使用優惠碼 {code} 享 {percent}% 折扣，結帳時自動套用。",
    },
    "reminder.checkout": {EN: "Check out", ZH: "結帳"},
    "reminder.open_shop": {EN: "Open the shop", ZH: "前往商店"},
    "reminder.restock": {
        EN: "Good news: {name} ({size}, {colour}) is back in stock.",
        ZH: "好消息：{name}（{size}，{colour}）已補貨。",
    },
    # --- the shipping notice (integrations/shipments.py)
    "shipment.shipped": {
        EN: "Good news: order #{number} has shipped with {carrier}, tracking number {tracking}. It arrives by {date}.",
        ZH: "好消息：訂單 #{number} 已由 {carrier} 出貨，追蹤編號 {tracking}，預計 {date} 前送達。",
    },
    # --- the carrier's tracking updates (integrations/shipments.py, SHIPPING=easypost)
    "shipment.out_for_delivery": {
        EN: "Order #{number} is out for delivery with {carrier} and should reach you today.",
        ZH: "訂單 #{number} 已由 {carrier} 開始配送，今天就會送達。",
    },
    "shipment.pickup": {
        EN: "Order #{number} is waiting for you at the {carrier} pickup point (tracking number {tracking}).",
        ZH: "訂單 #{number} 已到達 {carrier} 的取貨點，等您領取（追蹤編號 {tracking}）。",
    },
    "shipment.delivered": {
        EN: "Order #{number} has been delivered. Enjoy! If something isn't right, you can return it within 30 days.",
        ZH: "訂單 #{number} 已送達，祝您使用愉快！如有任何問題，30 天內都可以退貨。",
    },
    "shipment.problem": {
        EN: "{carrier} reports a problem delivering order #{number} (tracking number {tracking}). "
        "We're looking into it and will be in touch; you can also reply here.",
        ZH: "{carrier} 回報訂單 #{number} 配送時發生問題（追蹤編號 {tracking}）。"
        "我們正在處理，會再與您聯絡；您也可以直接在這裡回覆。",
    },
    "customers.offer": {
        EN: "To see orders from the website, tell me the e-mail or phone you used.",
        ZH: "若要查看在網站下的訂單，請告訴我您當時使用的電子郵件或電話。",
    },
    "customers.skipped": {EN: "Alright. Anything else I can help with?", ZH: "好的。還有什麼可以幫您的嗎？"},
    "customers.code_sent": {
        EN: "I've sent a 6-digit code to {contact}. Please type it here; it expires in {minutes} minutes.",
        ZH: "我已將 6 位數驗證碼傳送到 {contact}。請在這裡輸入，驗證碼 {minutes} 分鐘後失效。",
    },
    "customers.no_way": {
        EN: "I can't send a code to that right now. Please tell me the other one you used (e-mail or phone).",
        ZH: "目前無法傳送驗證碼到這個聯絡方式。請改用您使用過的另一個（電子郵件或電話）。",
    },
    "customers.too_many": {
        EN: "Several codes were sent already. Please try again in an hour.",
        ZH: "已經傳送了多組驗證碼。請一小時後再試。",
    },
    "customers.code_wrong": {
        EN: "That code isn't right. Please try again ({tries} tries left).",
        ZH: "驗證碼不正確。請再試一次（還剩 {tries} 次）。",
    },
    "customers.code_blocked": {
        EN: 'That was too many wrong codes, so I can\'t show those orders. Ask "where is my order?" to get a new code.',
        ZH: "錯誤次數過多，無法顯示這些訂單。請問「我的訂單在哪？」以取得新的驗證碼。",
    },
    "customers.code_expired": {
        EN: 'That code has expired. Ask "where is my order?" to get a new one.',
        ZH: "驗證碼已失效。請問「我的訂單在哪？」以取得新的驗證碼。",
    },
    "customers.none_found": {
        EN: "Thanks, that's confirmed. I find no orders from the website for it.",
        ZH: "謝謝，已確認。但找不到這個聯絡方式在網站上的訂單。",
    },
    "customers.website_orders": {EN: "Your orders from the website:", ZH: "您在網站上的訂單："},
    "customers.order": {
        EN: "Order {name} ({date}) {status}. Items: {items}.",
        ZH: "訂單 {name}（{date}）{status}。商品：{items}。",
    },
    "customers.order_total": {EN: " Total: {total}.", ZH: "總額：{total}。"},
    "customers.unavailable": {
        EN: "I can't reach the website's orders right now. Please try again in a few minutes.",
        ZH: "目前無法讀取網站上的訂單。請幾分鐘後再試。",
    },
    "customers.code_subject": {EN: "Your verification code", ZH: "您的驗證碼"},
    "customers.code_message": {
        EN: "Your verification code is {code}. It expires in {minutes} minutes. If you didn't ask for it, ignore this message.",
        ZH: "您的驗證碼是 {code}，{minutes} 分鐘後失效。若您沒有要求驗證碼，請忽略此訊息。",
    },
}
TEXTS.update({f"menu.{intent}": labels for intent, labels in MENU_LABELS.items()})

COLOURS_ZH = {
    "black": "黑色",
    "white": "白色",
    "blue": "藍色",
    "navy": "海軍藍",
    "grey": "灰色",
    "gray": "灰色",
    "green": "綠色",
    "beige": "米色",
    "pink": "粉紅色",
    "red": "紅色",
    "brown": "棕色",
    "yellow": "黃色",
    "purple": "紫色",
    "orange": "橘色",
}
CATEGORIES_ZH = {
    "dresses": "洋裝",
    "shoes": "鞋款",
    "socks": "襪子",
    "t-shirts": "T恤",
    "jeans": "牛仔褲",
    "jackets": "外套",
    "hoodies": "連帽上衣",
    "hats": "帽子",
    "bags": "包包",
}

# What a shopper may answer to a yes/no question in Chinese (punctuation stripped first).
YES_ZH = frozenset(
    {"是", "是的", "對", "對的", "好", "好的", "好啊", "要", "要的", "可以", "確定", "沒問題", "當然", "嗯"}
)
NO_ZH = frozenset({"否", "不", "不是", "不要", "不用", "不用了", "不了", "算了", "先不要", "不必", "不好"})


# How a delivery date and a day of the week read (Babel date patterns).
DATE_PATTERNS = {EN: "EEE d MMM", ZH: "M月d日（EEE）"}  # "Thu 10 Dec", "12月10日（週四）"
WEEKDAY_PATTERNS = {EN: "EEEE", ZH: "EEE"}  # "Monday", "週一"


def language_of(tag: str | None) -> str:
    """EN or ZH for a language tag ("zh-TW", "zh-Hant", "en-GB", None): any Chinese reads
    Traditional Chinese, everything else English."""
    return ZH if (tag or "").lower().startswith("zh") else EN


def has_text(key: str) -> bool:
    """Whether a text has this key (for keys built from data: a channel, a status)."""
    return key in TEXTS


def text_in(language: str, key: str, /, **values: object) -> str:
    """The text for `key` in `language` (English when it has no translation), filled with `values`.

    Raises:
        KeyError: no text has that key.
    """
    entry = TEXTS.get(key)
    if entry is None:
        raise KeyError(f"no text {key!r}")
    template = entry.get(language_of(language)) or entry[EN]
    return template.format(**values)


def channel_name(language: str, channel: str) -> str:
    """A channel's name on a button or in a list ("Web chat", "網頁聊天"); an unknown one as it is."""
    key = f"channel.{channel}"
    return text_in(language, key) if key in TEXTS else channel


def money(cents: int, language: str, currency: str) -> str:
    """An amount held in hundredths of `currency` (ISO 4217, CURRENCY), as the shopper's locale
    writes it: USD is "$24.00" in English and "US$24.00" in Chinese, TWD "NT$24.00" and "$24.00"."""
    return format_currency(Decimal(cents).scaleb(-2), currency, locale=LOCALES[language_of(language)])


def date_text(language: str, day: date) -> str:
    """A delivery date as the shopper reads it: "Thu 10 Dec", "12月10日（週四）"."""
    lang = language_of(language)
    return format_date(day, DATE_PATTERNS[lang], locale=LOCALES[lang])


def weekday_name(language: str, day: date) -> str:
    """The day of the week of `day`: "Monday", "週一"."""
    lang = language_of(language)
    return format_date(day, WEEKDAY_PATTERNS[lang], locale=LOCALES[lang])


def colour_in(language: str, colour: str | None) -> str:
    if not colour:
        return ""
    return COLOURS_ZH.get(colour.lower(), colour) if language_of(language) == ZH else colour


def category_in(language: str, category: str) -> str:
    return CATEGORIES_ZH.get(category, category) if language_of(language) == ZH else category


def size_in(language: str, size: str | None) -> str:
    """A size as a shopper in Taiwan reads it: 9 號, M 號; "OS" is one size."""
    if not size:
        return ""
    if language_of(language) != ZH:
        return size
    return "單一尺寸" if size.upper() == "OS" else f"{size} 號"


def join_in(language: str, items: Sequence[str]) -> str:
    """ "a, b and c" in English, "a、b和c" in Chinese."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    if language_of(language) == ZH:
        return "、".join(items[:-1]) + "和" + items[-1]
    return ", ".join(items[:-1]) + " and " + items[-1]


def yes_no_zh(utterance: str) -> bool | None:
    """True for a Chinese yes, False for a Chinese no, None otherwise."""
    word = "".join(c for c in (utterance or "").strip() if c not in " 。！!？?～~，,.")
    if word in YES_ZH:
        return True
    if word in NO_ZH:
        return False
    return None
