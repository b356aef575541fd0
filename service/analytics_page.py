"""The dashboard's HTML, rendered on the server: nine tiles with the change against the previous
period, per-day line charts and a funnel as inline SVG (nothing fetched from elsewhere, so it works
offline), and the tables the page shows and exports as CSV."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from bot.i18n import money

CHANNEL_NAMES = {"whatsapp": "WhatsApp", "sms": "SMS", "messenger": "Messenger", "web": "Web chat"}
CHART_W, CHART_H, PAD = 600, 160, 24
TILE_TITLES = {
    "self_resolution": "Self-resolution",
    "conversion": "Conversion",
    "cart_recovery": "Cart recovery",
    "aov": "AOV impact",
    "csat": "CSAT",
    "response": "Response speed",
    "retention": "Retention",
    "ctr": "Click-through",
    "efficiency": "Operational efficiency",
}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _money(cents: float | None, currency: str) -> str:
    return "–" if cents is None else money(round(cents), "en", currency)


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


# Each tile: its headline value (a number, for the change), how to show it, and the line under it.
Headline = tuple[float | None, Callable[[float | None], str], str, str]


def headlines(f: dict[str, Any], currency: str = "USD") -> dict[str, Headline]:
    """The tiles' figures; amounts in `currency` (CURRENCY)."""
    sr, cv, cr, aov, cs = f["self_resolution"], f["conversion"], f["cart_recovery"], f["aov"], f["csat"]
    rs, rt, ct, ef = f["response"], f["retention"], f["ctr"], f["efficiency"]
    return {
        "self_resolution": (sr["rate"], _pct, "pp", f"{sr['resolved']} of {sr['conversations']} conversations"),
        "conversion": (
            cv["order_rate"],
            _pct,
            "pp",
            f"ordered within 24 h; {_pct(cv['cart_rate'])} added to cart",
        ),
        "cart_recovery": (cr["rate"], _pct, "pp", f"{cr['recovered']} of {cr['reminded']} reminded carts"),
        "aov": (
            aov["uplift"],
            _pct,
            "pp",
            f"AOV {_money(aov['aov_with_cents'], currency)} with a recommended item, {_money(aov['aov_without_cents'], currency)} "
            f"without; {_money(aov['recommended_revenue_cents'], currency)} from recommendations",
        ),
        "csat": (
            cs["average"],
            lambda v: "–" if v is None else f"{v:.2f} / 5",
            "",
            f"{cs['answers']} answers",
        ),
        "response": (rs["p50_seconds"], _secs, "s", f"p50; p95 {_secs(rs['p95_seconds'])}"),
        "retention": (rt["rate_7"], _pct, "pp", f"back within 7 days; {_pct(rt['rate_30'])} within 30"),
        "ctr": (
            ct["recommendations"]["rate"],
            _pct,
            "pp",
            f"recommendations; campaign links {_pct(ct['campaign_links']['rate'])}, "
            f"offers {_pct(ct['offers']['rate'])} (codes used {_pct(ct['offers']['use_rate'])})",
        ),
        "efficiency": (
            ef["share_without_agent"],
            _pct,
            "pp",
            f"without an agent; {ef['agent_hours_saved']} agent hours saved, "
            f"{ef['agent_minutes_per_handoff'] if ef['agent_minutes_per_handoff'] is not None else '–'} "
            "agent minutes per handoff",
        ),
    }


def _change(now: float | None, before: float | None, unit: str) -> str:
    if now is None or before is None:
        return "no earlier figure"
    delta = now - before
    if unit == "pp":
        return f"{delta * 100:+.1f} pp vs previous period"
    if unit == "s":
        return f"{delta:+.2f} s vs previous period"
    return f"{delta:+.2f} vs previous period"


def line_chart(title: str, days: list[str], values: list[float | None], fmt: Callable[[float], str]) -> str:
    """A per-day line as SVG: one circle per day with a value, a polyline through them."""
    known = [v for v in values if v is not None]
    top = max(known) if known else 1.0
    top = top if top > 0 else 1.0
    step = (CHART_W - 2 * PAD) / max(1, len(days) - 1)
    points = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        if value is None:
            continue
        x = PAD + i * step
        y = CHART_H - PAD - (value / top) * (CHART_H - 2 * PAD)
        points.append((x, y, day, value))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
    dots = "".join(
        f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(day)}: {escape(fmt(v))}</title></circle>'
        for x, y, day, v in points
    )
    axis = (
        f'<line class="axis" x1="{PAD}" y1="{CHART_H - PAD}" x2="{CHART_W - PAD}" y2="{CHART_H - PAD}"/>'
        f'<text x="{PAD}" y="{CHART_H - 6}">{escape(days[0]) if days else ""}</text>'
        f'<text x="{CHART_W - PAD}" y="{CHART_H - 6}" text-anchor="end">{escape(days[-1]) if days else ""}</text>'
        f'<text x="{PAD}" y="14">{escape(fmt(top))}</text>'
    )
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{escape(title)} per day" '
        f'data-points="{len(points)}">{axis}'
        f'<polyline class="line" points="{line}" fill="none"/>{dots}</svg></figure>'
    )


def funnel(conversion: dict[str, Any]) -> str:
    steps = [
        ("Conversations", conversion["conversations"]),
        ("Added to cart", conversion["with_cart_add"]),
        ("Ordered within 24 h", conversion["with_order"]),
    ]
    top = max(1, steps[0][1])
    bars = "".join(
        f'<rect class="bar" x="0" y="{i * 34}" width="{max(1.0, 600 * n / top):.1f}" height="26"/>'
        f'<text x="8" y="{i * 34 + 18}">{escape(name)}: {n}</text>'
        for i, (name, n) in enumerate(steps)
    )
    return (
        '<figure class="chart funnel"><figcaption>Funnel</figcaption>'
        f'<svg viewBox="0 0 600 {34 * len(steps)}" role="img" aria-label="Funnel: conversations, carts, orders">'
        f"{bars}</svg></figure>"
    )


def tables(f: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The tables of the page, each exportable as CSV: (header, rows)."""
    split_header = ["conversations", "self_resolution", "cart_rate", "order_rate"]
    response = f["response"]["per_channel"]
    return {
        "daily": (
            ["date", "conversations", "resolved", "self_resolution", "with_cart_add", "with_order", "csat_average"],
            [
                [
                    d["date"],
                    d["conversations"],
                    d["resolved"],
                    d["self_resolution"],
                    d["with_cart_add"],
                    d["with_order"],
                    d["csat_average"],
                ]
                for d in f["daily"]
            ],
        ),
        "channels": (
            ["channel", *split_header, "p50_seconds", "p95_seconds"],
            [
                [
                    name,
                    *(row[k] for k in split_header),
                    response.get(name, {}).get("p50_seconds"),
                    response.get(name, {}).get("p95_seconds"),
                ]
                for name, row in f["per_channel"].items()
            ],
        ),
        "languages": (
            ["language", *split_header],
            [[name, *(row[k] for k in split_header)] for name, row in f["per_language"].items()],
        ),
        "not_understood": (
            ["count", "fallbacks", "handoffs", "example", "also_said"],
            [
                [g["count"], g["fallbacks"], g["handoffs"], g["example"], " | ".join(g["texts"][1:])]
                for g in f.get("not_understood", [])
            ],
        ),
    }


def _table(name: str, title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f'<th scope="col">{escape(h.replace("_", " "))}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('–' if v is None else str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return (
        f'<section class="panel table-panel" data-table="{name}"><h2>{escape(title)}</h2>'
        f'<button type="button" class="csv" data-table="{name}">Download CSV</button>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>'
    )


def _review_table(groups: list[dict[str, Any]], header: list[str], rows: list[list[Any]], choices: list[str]) -> str:
    """The not-understood groups, each with a choice of intent or FAQ entry to teach it as."""
    options = '<option value="">Teach as…</option>' + "".join(
        f'<option value="{escape(c)}">{escape(c.replace("intent:", "").replace("faq:", "FAQ: "))}</option>'
        for c in choices
    )
    head = "".join(f'<th scope="col">{escape(h.replace("_", " "))}</th>' for h in [*header, "teach"])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape(str(v))}</td>" for v in row)
        + f'<td><span class="teach" data-group="{g["group"]}" data-example="{escape(g["example"])}">'
        f'<select aria-label="Intent or FAQ entry for group {g["group"]}">{options}</select>'
        f'<button type="button" class="teach">Teach</button></span></td></tr>'
        for g, row in zip(groups, rows, strict=True)
    )
    title = "Not understood (fallbacks and handoffs, grouped by meaning; numbers and e-mails masked)"
    return (
        f'<section class="panel table-panel" data-table="not_understood"><h2>{escape(title)}</h2>'
        '<p class="hint">Teach a group as an intent or an FAQ entry: its messages become examples the bot '
        "understands from the next message on (messages with masked parts are left out).</p>"
        '<button type="button" class="csv" data-table="not_understood">Download CSV</button>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>'
    )


def render(
    current: dict[str, Any], previous: dict[str, Any], choices: list[str] | None = None, currency: str = "USD"
) -> str:
    """The dashboard for `current`, its tiles compared with `previous`; `choices` ("intent:NAME",
    "faq:KEY") are what a not-understood group can be taught as."""
    now, before = headlines(current, currency), headlines(previous, currency)
    definitions = current["definitions"]
    tiles = "".join(
        f'<article class="tile" data-figure="{key}"><h3>{escape(TILE_TITLES[key])}</h3>'
        f'<p class="value">{escape(fmt(value))}</p>'
        f'<p class="change">{escape(_change(value, before[key][0], unit))}</p>'
        f'<p class="detail">{escape(detail)}</p>'
        f"<details><summary>Definition</summary><p>{escape(definitions[key])}</p></details></article>"
        for key, (value, fmt, unit, detail) in now.items()
    )
    daily = current["daily"]
    days = [d["date"] for d in daily]
    charts = "".join(
        [
            line_chart("Conversations", days, [d["conversations"] for d in daily], lambda v: f"{v:.0f}"),
            line_chart("Self-resolution", days, [d["self_resolution"] for d in daily], lambda v: f"{v * 100:.0f}%"),
            line_chart("Orders after a conversation", days, [d["with_order"] for d in daily], lambda v: f"{v:.0f}"),
            line_chart("CSAT", days, [d["csat_average"] for d in daily], lambda v: f"{v:.1f}"),
        ]
    )
    made = tables(current)
    titles = {"daily": "Per day", "channels": "Per channel", "languages": "Per language"}
    channel_rows = [
        [CHANNEL_NAMES.get(r[0], r[0]), *r[1:]] for r in made["channels"][1]
    ]  # the page names channels; the CSV keeps their ids
    period = current["period"]
    return (
        f'<p class="period">{escape(period["from"])} to {escape(period["to"])}'
        f"{' · ' + escape(period['channel']) if period['channel'] else ''}"
        f"{' · ' + escape(period['language']) if period['language'] else ''}</p>"
        f'<section class="tiles" aria-label="Figures">{tiles}</section>'
        f'<section class="panel charts" aria-label="Per day">{charts}{funnel(current["conversion"])}</section>'
        + _table("channels", titles["channels"], made["channels"][0], channel_rows)
        + _table("languages", titles["languages"], made["languages"][0], made["languages"][1])
        + _table("daily", titles["daily"], made["daily"][0], made["daily"][1])
        + _review_table(current.get("not_understood", []), *made["not_understood"], choices or [])
    )
