"""The agent console at phone width in headless Chromium: one column, nothing wider than the
screen, even with a long link in the conversation."""

from __future__ import annotations

from pydantic import SecretStr

from service.app import create_app
from tests.fakes.web_shopper import WebShopper

ADMIN_TOKEN = "admin-secret-for-phone"


async def test_the_console_fits_a_phone(aiohttp_server, aiohttp_client, settings, recognizer, browser):
    server = await aiohttp_server(
        create_app(settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)}), recognizer)
    )
    client = await aiohttp_client(server)
    shopper = await WebShopper.start(client)
    await shopper.say("I want to talk to a person")
    await shopper.say("my parcel https://example.com/track/" + "x" * 120 + " never came")

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await page.goto(str(server.make_url("/admin/agents")))
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("#sign-in-button")
    await page.locator("#queue button").first.click()
    await page.wait_for_function("document.getElementById('transcript').textContent.includes('never came')")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    transcript, queue = page.locator("#transcript"), page.locator("#queue")
    assert (await transcript.bounding_box())["y"] > (await queue.bounding_box())["y"]  # stacked, not side by side
    assert (await page.locator("#send-reply").bounding_box())["x"] + 10 < 390
