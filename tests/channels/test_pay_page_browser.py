"""The pages in Chromium: the sandbox pay page on a phone (390 px wide) keeps its text off the edges,
nothing scrolls sideways, and Pay now is a button a thumb can hit; no page asks for a missing file."""

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


async def test_no_page_asks_for_a_file_the_server_does_not_have(
    aiohttp_server, aiohttp_client, settings, recognizer, browser
):
    """Each page names its icon, so Chromium does not ask for /favicon.ico and log a 404."""
    server = await aiohttp_server(create_app(settings, recognizer))
    pay = await a_pay_path(await aiohttp_client(server))
    for path in ["/", "/admin/", "/admin/agents", "/admin/analytics", pay]:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(str(server.make_url(path)))
        await page.wait_for_timeout(1500)  # the icon is asked for after the page has loaded
        assert errors == [], (path, errors)
        await page.close()
