"""Every page carries the security headers, and works in Chromium under its Content-Security-Policy
with no violation: the widget, the marketer page, the agent console and the pay page."""

from __future__ import annotations

import re

import pytest

from service.app import create_app
from tests.fakes.web_shopper import WebShopper
from tests.proactive.test_campaigns import TOKEN, changed

# Collects every violation the page reports, from its first script on.
CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


async def a_pay_path(client) -> str:
    shopper = await WebShopper.start(client)
    await shopper.say('/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}')
    await shopper.say("checkout")
    await shopper.say("221 Baker Street, London NW1 6XE")
    await shopper.say("skip")
    await shopper.say("yes")
    assert re.search(r"Order #\d+ is placed", " ".join(m["text"] for m in shopper.last))
    return re.sub(r"^https?://[^/]+", "", shopper.last[-1]["links"][0]["url"])


@pytest.fixture
async def shop(aiohttp_server, aiohttp_client, settings, recognizer):
    server = await aiohttp_server(create_app(changed(settings, admin_token=TOKEN), recognizer))
    return server, await aiohttp_client(server)


async def test_every_page_has_the_security_headers(shop):
    _, client = shop
    for path in ["/", "/admin/", "/admin/agents", await a_pay_path(client), "/static/widget.js", "/healthz"]:
        resp = await client.get(path)
        assert resp.status == 200, path
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["Referrer-Policy"] == "no-referrer", path


async def test_no_page_breaks_its_policy_in_chromium(shop, browser):
    server, client = shop
    pay = await a_pay_path(client)
    page = await browser.new_page(bypass_csp=False)
    await page.add_init_script(CSP_PROBE)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)

    async def violations(path: str, ready: str) -> list[str]:
        await page.goto(str(server.make_url(path)))
        await page.wait_for_selector(ready)
        await page.wait_for_timeout(300)  # late styles and pictures
        return await page.evaluate("window.__csp")

    assert await violations("/", "#chat-input") == []
    await page.fill("#chat-input", "show me running shoes")
    await page.click("#send")
    await page.locator(".card img").first.wait_for()  # product pictures load under img-src
    assert await page.evaluate("window.__csp") == []
    assert await violations("/admin/", "#token-state") == []
    assert await violations("/admin/agents", "body") == []
    assert await violations(pay, "main.pay-page") == []
    # The pay page is styled from the stylesheet, not inline: its width comes from widget.css.
    width = await page.evaluate("getComputedStyle(document.querySelector('main.pay-page')).maxWidth")
    assert width != "none"
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    assert await page.evaluate("window.__csp") == [] and console == [], console


async def test_a_page_cannot_be_framed(shop, browser):
    server, _ = shop
    page = await browser.new_page(bypass_csp=False)
    await page.set_content(f'<iframe id="f" src="{server.make_url("/")}"></iframe>')
    await page.wait_for_timeout(800)
    frame = page.frame_locator("#f")
    assert await frame.locator("#chat-input").count() == 0  # refused by frame-ancestors 'none'
