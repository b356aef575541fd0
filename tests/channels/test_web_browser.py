"""The chat widget in headless Chromium: type, read the answer, tap a choice, see the cart change."""
from __future__ import annotations

from bot.server import create_app


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
