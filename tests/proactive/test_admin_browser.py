"""The marketer page in headless Chromium: sign in with the admin token, preview a campaign,
create and schedule it, watch it reach a WhatsApp shopper who subscribed; then schedule, pause,
resume and cancel a weekly one from the list."""

from __future__ import annotations

from playwright.async_api import expect

from service.app import create_app
from tests.fakes.phone import TwilioShopper
from tests.proactive.test_campaigns import AUTH, HX, TOKEN, changed

NUMBER = "+14155550177"
TEXT = "Spring sale: 20% off all boots this week."


async def test_marketer_previews_creates_and_schedules_a_campaign(
    aiohttp_server, aiohttp_client, channel_settings, recognizer, fake_twilio, browser
):
    settings = changed(channel_settings, admin_token=TOKEN, quiet_hours="")
    server = await aiohttp_server(create_app(settings, recognizer))
    client = await aiohttp_client(server)
    shopper = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    await shopper.say("subscribe")  # opts in to marketing on WhatsApp
    await shopper.say("yes")  # a subscription is confirmed

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    admin_url = str(server.make_url("/admin/"))
    await page.goto(admin_url)
    notice = page.get_by_role("alert").first

    # a wrong token is refused, in words
    await page.get_by_label("Admin token").fill("not-the-token")
    await page.get_by_role("button", name="Use token").click()
    await expect(notice).to_contain_text("admin token was not accepted")

    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Use token").click()
    await expect(page.locator("#token-state")).to_have_text("Signed in.")
    await expect(notice).to_be_hidden()
    assert page.url == admin_url  # the token never goes in the address
    assert await page.evaluate("sessionStorage.getItem('shop_admin_token')") == TOKEN

    await page.get_by_label("Name", exact=True).fill("Spring boots")
    await page.get_by_label("WhatsApp", exact=True).check()
    await page.get_by_label("Message in English (en)").fill(TEXT)

    # the server's 400 reaches the marketer
    await page.get_by_label("Repeating").check()
    await page.get_by_label("Cron schedule").fill("every day")
    await page.get_by_role("button", name="Preview").click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Please fix: cron")
    await page.get_by_label("Now", exact=True).check()

    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#audience")).to_have_text("1")
    split = page.locator("#split-rows tr")
    await expect(split).to_have_count(1)
    await expect(split.first).to_contain_text("WhatsApp")
    await expect(page.locator("#samples .sample-text").first).to_have_text(TEXT)

    await page.get_by_role("button", name="Create and schedule").click()
    await expect(status).to_contain_text("Spring boots")
    card = page.locator("li.campaign", has_text="Spring boots")
    await expect(card.locator('[data-stat="sent"] dd')).to_have_text("1", timeout=10_000)
    await expect(card.locator('[data-stat="targeted"] dd')).to_have_text("1")
    await expect(card.locator(".status")).to_have_text("Done", timeout=5_000)
    await expect(card.get_by_role("button")).to_have_count(0)  # nothing left to pause or cancel

    got = [r for r in fake_twilio.delivered() if r["body"] == TEXT]
    assert len(got) == 1 and got[0]["to"] == f"whatsapp:{NUMBER}"
    await expect(page.locator("#outbox-rows")).to_contain_text("sent")

    # a weekly draft with a WhatsApp template: schedule, pause, resume, cancel from the list
    page.on("dialog", lambda dialog: dialog.accept())  # "Cancel ...?"
    await page.get_by_label("Name", exact=True).fill("Monday picks")
    await page.get_by_text("WhatsApp template (optional)").click()
    await page.get_by_label("Content SID").fill(HX)
    await page.get_by_label("Template variables").fill("1={name}")
    await page.get_by_label("Repeating").check()
    await page.get_by_label("Cron schedule").fill("0 10 * * MON")
    await page.get_by_role("button", name="Create draft").click()
    weekly = page.locator("li.campaign", has_text="Monday picks")
    await expect(weekly.locator(".status")).to_have_text("Draft")
    campaign_id = await weekly.get_attribute("data-id")
    resp = await client.get(f"/api/campaigns/{campaign_id}", headers=AUTH)
    stored = await resp.json()
    assert stored["cron"] == "0 10 * * MON" and stored["segment"] == {"channel": ["whatsapp"]}
    assert stored["templates"] == {"whatsapp": {"content_sid": HX, "variables": {"1": "{name}"}}}
    for button, state in [
        ("Schedule", "Scheduled"),
        ("Pause", "Paused"),
        ("Resume", "Scheduled"),
        ("Cancel", "Cancelled"),
    ]:
        await weekly.get_by_role("button", name=f"{button} Monday picks").click()
        await expect(weekly.locator(".status")).to_have_text(state)
    await expect(weekly.get_by_role("button")).to_have_count(0)
    assert not errors, errors
