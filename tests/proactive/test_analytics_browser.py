"""The analytics page in headless Chromium: signed in with the admin token as on the marketer page,
a week of known history shows nine tiles, per-day charts whose points are drawn (checked on
screenshots), the funnel and the tables, a CSV download, and fits a phone's width."""

from __future__ import annotations

from playwright.async_api import expect

from service.app import create_app
from service.keys import DB
from tests.proactive.test_campaigns import TOKEN, changed
from tests.test_analytics import history


async def test_the_dashboard_draws_a_known_week(aiohttp_server, settings, recognizer, browser):
    app = create_app(changed(settings, admin_token=TOKEN), recognizer)
    server = await aiohttp_server(app)
    await app[DB].run(history)
    url = str(server.make_url("/admin/analytics"))

    page = await browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    notice = page.get_by_role("alert").first

    await page.get_by_label("Admin token").fill("wrong")
    await page.get_by_role("button", name="Use token").click()
    await expect(notice).to_contain_text("admin token was not accepted")

    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Use token").click()
    await expect(page.locator("#token-state")).to_have_text("Signed in.")
    await page.get_by_label("From", exact=True).fill("2026-11-01")
    await page.get_by_label("To", exact=True).fill("2026-11-07")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(".period")).to_have_text("2026-11-01 to 2026-11-07")

    tiles = page.locator(".tile")
    await expect(tiles).to_have_count(9)
    await expect(page.locator('[data-figure="self_resolution"] .value')).to_have_text("50.0%")
    await expect(page.locator('[data-figure="csat"] .value')).to_have_text("3.00 / 5")
    await expect(page.locator('[data-figure="cart_recovery"] .detail')).to_have_text("1 of 2 reminded carts")
    await expect(page.locator('[data-figure="self_resolution"] .change')).to_have_text("no earlier figure")
    await expect(page.locator('[data-figure="self_resolution"] details')).to_contain_text("30 minutes")

    # the conversations chart has a point per day of the week, each drawn inside its chart
    chart = page.locator("figure.chart", has_text="Conversations").first
    points = chart.locator("circle.point")
    await expect(points).to_have_count(7)
    box = await chart.locator("svg").bounding_box()
    assert box is not None and box["width"] > 200
    for i in range(7):
        dot = await points.nth(i).bounding_box()
        assert dot is not None and dot["width"] > 0
        assert box["x"] <= dot["x"] <= box["x"] + box["width"] and box["y"] <= dot["y"] <= box["y"] + box["height"]
    heights = [(await points.nth(i).bounding_box() or {})["y"] for i in range(7)]
    assert heights[0] > heights[1]  # no conversations on 1 November, two on the 2nd: drawn higher
    await expect(page.locator("figure.chart", has_text="Self-resolution").locator("circle.point")).to_have_count(3)
    # what is drawn: the chart's pixels change when its line and points are hidden
    drawn = await chart.screenshot()
    await page.add_style_tag(content=".chart .line, .chart .point { visibility: hidden; }")
    blank = await chart.screenshot()
    assert drawn != blank
    await page.evaluate("document.querySelectorAll('style').forEach((s) => s.remove())")

    await expect(page.locator(".funnel")).to_contain_text("Conversations: 6")
    await expect(page.locator(".funnel")).to_contain_text("Added to cart: 1")
    await expect(page.locator(".funnel")).to_contain_text("Ordered within 24 h: 2")
    channel_rows = page.locator('[data-table="channels"] tbody tr')
    await expect(channel_rows).to_have_count(3)
    await expect(channel_rows.filter(has_text="WhatsApp")).to_contain_text("2")

    # tiles sit side by side on a wide screen
    first, second = await tiles.nth(0).bounding_box(), await tiles.nth(1).bounding_box()
    assert first and second and first["y"] == second["y"]

    async with page.expect_download() as waiting:
        await page.locator('button.csv[data-table="daily"]').click()
    download = await waiting.value
    assert download.suggested_filename == "analytics-daily-2026-11-01-2026-11-07.csv"
    with open(await download.path(), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("date,conversations") and len(lines) == 8

    # a phone: one column, nothing wider than the screen
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(tiles).to_have_count(9)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    first, second = await tiles.nth(0).bounding_box(), await tiles.nth(1).bounding_box()
    assert first and second and second["y"] > first["y"] and first["width"] > 300
    svg = await chart.locator("svg").bounding_box()
    assert svg is not None and 300 < svg["width"] <= 390

    # a bad period is told in words
    await page.get_by_label("From", exact=True).fill("2026-11-09")
    await page.get_by_role("button", name="Show").click()
    await expect(notice).to_contain_text("`to` is before `from`")
    assert errors == []
