"""The chat widget in headless Chromium: type, read the answer, tap a choice, see the cart change."""

from __future__ import annotations

import re

from service.app import create_app


async def test_widget_conversation_and_cart(aiohttp_server, settings, recognizer, browser):
    server = await aiohttp_server(create_app(settings, recognizer))
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url("/")))

    await page.fill("#chat-input", "Is the Linen Sundress available in size M?")
    await page.click("#send")
    answer = page.locator(".msg.bot").last
    await answer.wait_for()
    await page.wait_for_function("document.querySelectorAll('.msg.bot .choices button.choice').length > 0")
    assert "in stock" in (await page.locator(".msg.bot").last.inner_text())

    # tap the first colour; the cart now holds the dress
    await page.locator(".msg.bot .choices button.choice").first.click()
    await page.wait_for_function(
        "[...document.querySelectorAll('.msg.bot')].some(m => m.innerText.includes('Added 1 × Linen Sundress'))"
    )
    before = await page.locator(".msg.bot").count()
    await page.fill("#chat-input", "view cart")
    await page.click("#send")
    await page.wait_for_function(
        "n => [...document.querySelectorAll('.msg.bot')].slice(n).some(m => m.innerText.includes('Total:'))",
        arg=before,
    )
    last = await page.locator(".msg.bot").nth(before).inner_text()
    assert "Linen Sundress (M," in last and "(1 item)" in last

    # a product card's button works like a choice
    await page.fill("#chat-input", "show me running shoes")
    await page.click("#send")
    await page.locator(".card .card-button").first.wait_for()
    assert await page.locator(".card img").count() > 0
    assert not errors, errors


async def test_a_web_link_asks_in_the_browser_before_linking(
    aiohttp_server, aiohttp_client, channel_settings, recognizer, browser, fake_twilio
):
    """/?link=TOKEN (a "continue on the web" link asked for on WhatsApp): the widget sends it, the
    chat asks Yes/No, and only the Yes brings the WhatsApp cart into this browser."""
    import re

    from tests.fakes.phone import TwilioShopper

    server = await aiohttp_server(create_app(channel_settings, recognizer))
    wa = TwilioShopper(await aiohttp_client(server), fake_twilio, "whatsapp", "+447700900151")
    await wa.say('/add_to_cart {"product":"HAT-BEANIE","size":"OS","colour":"grey"}')
    token = re.search(r"\?link=([A-Za-z0-9_-]+)", await wa.say("continue on the web")).group(1)

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url(f"/?link={token}")))
    question = page.locator(".msg.bot", has_text="Link this chat with the WhatsApp chat +44•••51")
    await question.wait_for()
    assert "link=" not in await page.evaluate("location.search")  # dropped from the address bar
    assert await question.locator("button.choice").all_inner_texts() == ["Yes", "No"]
    await question.locator("button.choice", has_text="Yes").click()
    await page.locator(".msg.bot", has_text="You're linked").wait_for()
    await page.fill("#chat-input", "view cart")
    await page.click("#send")
    await page.locator(".msg.bot", has_text="Ribbed Knit Beanie").wait_for()
    assert not errors, errors


async def test_a_restock_notice_is_in_the_widget_on_the_next_visit(aiohttp_server, settings, recognizer, browser):
    import aiohttp

    from tests.proactive.test_campaigns import AUTH, TOKEN, changed

    server = await aiohttp_server(create_app(changed(settings, admin_token=TOKEN), recognizer))
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(str(server.make_url("/")))
    await page.fill("#chat-input", "Do you have the Aero Runner in size 9 in white?")
    await page.click("#send")
    await page.locator(".msg.bot .choices button.choice", has_text="Yes").click()
    await page.wait_for_function(
        "[...document.querySelectorAll('.msg.bot')].some(m => m.innerText.includes('waiting in this chat'))"
    )
    await page.close()  # the shopper leaves

    async with aiohttp.ClientSession() as http:
        resp = await http.put(str(server.make_url("/api/inventory/RUN-AERO-9-WHT")), json={"stock": 2}, headers=AUTH)
        assert (await resp.json())["waitlist"] == {"queued": 1}

    page = await context.new_page()  # and comes back another day: the widget loads the history
    await page.goto(str(server.make_url("/")))
    notice = page.locator(".msg.bot", has_text="Good news")
    await notice.wait_for()
    assert "Aero Runner (9, white)" in await notice.inner_text()
    await notice.locator("button.choice", has_text="Add to cart").click()
    await page.wait_for_function(
        "[...document.querySelectorAll('.msg.bot')].some(m => m.innerText.includes('Added 1 × Aero Runner'))"
    )
    await context.close()


async def test_an_empty_chat_opens_with_a_greeting_and_suggestions(aiohttp_server, settings, recognizer, browser):
    server = await aiohttp_server(create_app(settings, recognizer))
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url("/")))
    welcome = page.locator(".msg.welcome")
    await welcome.wait_for()
    suggestions = welcome.locator("button.suggestion")
    assert await suggestions.count() == 4
    first = (await suggestions.first.inner_text()).strip()
    await suggestions.first.click()  # sent like any choice: the shopper's bubble shows its title
    await page.locator(".msg.bot").first.wait_for()
    assert first in await page.locator(".msg.user").first.inner_text()
    # Back later: the chat has history now, so no greeting again.
    await page.reload()
    await page.locator(".msg.bot").first.wait_for()
    await page.wait_for_timeout(500)
    assert await page.locator(".msg.welcome").count() == 0
    assert not errors, errors


async def test_a_product_link_opens_the_chat_on_that_product(aiohttp_server, settings, recognizer, browser):
    server = await aiohttp_server(create_app(settings, recognizer))
    page = await browser.new_page()
    await page.goto(str(server.make_url("/?product=RUN-AERO")))
    await page.locator(".msg.bot").first.wait_for()
    assert "Aero Runner" in await page.locator(".msg.user").first.inner_text()  # the name, not a command
    assert "/product_search" not in await page.locator("#messages, body").first.inner_text()
    assert "product=" not in page.url  # a reload does not send it again
    assert await page.locator(".msg.welcome").count() == 0
    await page.wait_for_function("document.querySelectorAll('.msg.bot').length > 0")
    assert "Aero" in await page.locator(".msg.bot").first.inner_text()


async def test_the_widget_speaks_traditional_chinese_to_a_chinese_browser(
    aiohttp_server, settings, recognizer, browser
):
    server = await aiohttp_server(create_app(settings, recognizer))
    page = await browser.new_page(locale="zh-TW")
    await page.goto(str(server.make_url("/")))
    await page.locator(".msg.welcome").wait_for()
    assert await page.get_attribute("html", "lang") == "zh-TW"
    assert await page.get_attribute("#chat-input", "placeholder") == "輸入訊息…"
    assert (await page.inner_text("#send")).strip() == "傳送"
    assert (await page.inner_text(".hero h1")).strip() == "每條山徑，都準備好了。"  # the demo page's text too
    assert (await page.inner_text(".demo-badge")).strip() == "示範商店"
    greeting = await page.locator(".msg.welcome .bubble").inner_text()
    assert re.search(r"[\u4e00-\u9fff]", greeting), greeting  # the greeting too, from the server
