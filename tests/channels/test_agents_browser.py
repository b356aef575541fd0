"""The agent console in headless Chromium: an agent signs in, claims a ticket raised from a
WhatsApp message, replies, and the fake Twilio server receives the reply."""

from __future__ import annotations

from pydantic import SecretStr

from service.app import create_app
from tests.fakes.phone import TwilioShopper

ADMIN_TOKEN = "admin-secret-for-browser"
NUMBER = "+14155550199"


async def test_agent_claims_a_whatsapp_ticket_and_replies(
    aiohttp_server, aiohttp_client, channel_settings, recognizer, fake_twilio, browser
):
    settings = channel_settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)})
    server = await aiohttp_server(create_app(settings, recognizer))
    client = await aiohttp_client(server)
    created = await client.post(
        "/api/handoffs/agents",
        json={"name": "Dana", "languages": ["en"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    token = (await created.json())["token"]
    wa = TwilioShopper(client, fake_twilio, "whatsapp", NUMBER)
    await wa.say("Where is my order?")
    assert "passing you to a member of our team" in await wa.say("I need to talk to a human")

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(server.make_url("/admin/agents")))
    await page.fill("#token", token)
    await page.click("#sign-in-button")
    await page.wait_for_function("document.getElementById('me-name').textContent.includes('Dana')")
    await page.locator("#queue button").first.click()
    await page.wait_for_function("document.getElementById('summary').textContent.includes('Where is my order?')")
    assert "order_status" in await page.locator("#summary").inner_text()
    assert "I need to talk to a human" in await page.locator("#transcript").inner_text()

    await page.click("#claim")
    await page.wait_for_function("document.getElementById('ticket-status').textContent.includes('assigned (Dana)')")
    await page.fill("#reply-text", "Hi, Dana here. Your parcel is on its way.")
    await page.click("#send-reply")
    # The console clears the box once the server has taken the reply (and queued it).
    await page.wait_for_function("document.getElementById('reply-text').value === ''")
    assert await wa.replies() == "Hi, Dana here. Your parcel is on its way."
    # The shopper's answer shows up in the console by itself (it polls).
    assert await wa.say("Great, thank you!") == ""
    await page.wait_for_function(
        "document.getElementById('transcript').textContent.includes('Great, thank you!')", timeout=10_000
    )
    assert not errors, errors
