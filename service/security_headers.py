"""Security headers on every response: a Content-Security-Policy that the widget, the agent
console, the marketer page and the pay page keep with no inline script or style, and no framing,
no content sniffing, no referrer."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web


def content_security_policy(base_url: str) -> str:
    """Our own scripts, styles and API only. Pictures may come from any https address (a
    catalog's CDN) and from the shop's public URL, which serves product pictures and may be
    plain http in a demo."""
    parts = urlsplit(base_url)
    own = f" {parts.scheme}://{parts.netloc}" if parts.scheme == "http" and parts.netloc else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: https:{own}",
            f"media-src 'self' https:{own}",
            "connect-src 'self'",
            "form-action 'self'",  # the pay page posts to itself
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )


def security_headers(base_url: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(base_url),
        "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
        "X-Content-Type-Options": "nosniff",
        # Pay links carry their signature in the query, and admin pages are nobody's business.
        "Referrer-Policy": "no-referrer",
    }


def add_security_headers(app: web.Application, base_url: str) -> None:
    """Set the headers on every response the app prepares: pages, static files, API answers and
    errors alike (a response that sets one itself keeps its own)."""
    headers = security_headers(base_url)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in headers.items():
            response.headers.setdefault(name, value)

    app.on_response_prepare.append(on_prepare)
