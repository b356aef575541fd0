"""The sandbox pay page on a phone (390 px wide) in Chromium: the text keeps off the screen's edges,
nothing scrolls sideways, and Pay now is a button a thumb can hit."""

from __future__ import annotations

from service.app import create_app
from tests.channels.test_page_security import a_pay_path


async def test_the_pay_page_fits_a_phone(aiohttp_server, aiohttp_client, settings, recognizer, browser):
    server = await aiohttp_server(create_app(settings, recognizer))
    pay = await a_pay_path(await aiohttp_client(server))
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await page.goto(str(server.make_url(pay)))
    heading = await page.locator("main.pay-page h1").bounding_box()
    button = await page.locator("#pay").bounding_box()
    assert heading is not None and button is not None
    assert heading["x"] >= 16, heading  # not flush with the screen's edge
    assert button["x"] >= 16 and button["height"] >= 44, button  # a touch target
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
