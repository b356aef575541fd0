"""Teaching from the analytics page in headless Chromium: a group of the "not understood" table,
taught as an intent with its select and button, is understood on the shopper's next message."""

from __future__ import annotations

from playwright.async_api import expect

from service.app import create_app
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import TOKEN, changed
from tests.test_learning import NONSENSE, last_turn, own_recognizer


async def test_a_group_is_taught_from_the_page(
    aiohttp_server, aiohttp_client, settings, recognizer, nlu_cache_dir, browser
):
    settings = changed(settings, admin_token=TOKEN)
    server = await aiohttp_server(create_app(settings, own_recognizer(settings, recognizer, nlu_cache_dir)))
    client = await aiohttp_client(server)
    shopper = await WebShopper.start(client)
    await shopper.say(NONSENSE)
    assert (await last_turn(client)).outcome == "fallback"

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url("/admin/analytics")))
    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Use token").click()
    row = page.locator('[data-table="not_understood"] tbody tr', has_text=NONSENSE)
    await expect(row).to_have_count(1, timeout=60_000)

    await row.get_by_role("button", name="Teach").click()
    await expect(page.locator("#status")).to_contain_text("Choose an intent")
    await row.get_by_label("Intent or FAQ entry for group 1").select_option("intent:order_status")
    await row.get_by_role("button", name="Teach").click()
    await expect(page.locator("#status")).to_contain_text("Taught 1 new example(s) as order_status", timeout=120_000)

    await shopper.say(NONSENSE)
    turn = await last_turn(client)
    assert (turn.intent, turn.outcome) == ("order_status", "understood")
    assert errors == []
