"""`python app.py campaign ...`: the marketer API's operations from the terminal. Changes go to
the store and its job store; the leading scheduler sees them within seconds."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from bot.config import Settings
from bot.marketing import campaigns
from bot.marketing.campaigns import CampaignError
from bot.marketing.scheduler import ShopScheduler
from bot.store.database import Database
from bot.store.models import Campaign, utcnow
from service.marketing_api import apply_change


def add_parser(sub) -> None:
    cmd = sub.add_parser("campaign", help="create, preview, schedule, pause, resume, cancel campaigns")
    ops = cmd.add_subparsers(dest="campaign_command", required=True)
    ops.add_parser("list", help="all campaigns with their status and stats")
    create = ops.add_parser("create", help="create a campaign from a JSON file (- for standard input)")
    create.add_argument("file")
    for name, text in (
        ("preview", "audience size and a rendered sample"),
        ("stats", "delivery statistics"),
        ("pause", "pause (messages not yet sent are held)"),
        ("resume", "resume a paused campaign"),
        ("cancel", "cancel (messages not yet sent are dropped)"),
    ):
        ops.add_parser(name, help=text).add_argument("id", type=int)
    schedule = ops.add_parser("schedule", help="send now, at a time, or on a cron schedule")
    schedule.add_argument("id", type=int)
    when = schedule.add_mutually_exclusive_group()
    when.add_argument("--at", help="ISO 8601 time, e.g. 2026-12-01T10:00:00Z")
    when.add_argument("--cron", help="crontab expression in the shop's time zone, e.g. '0 10 * * MON'")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from service.wiring import build

    # Campaign runs are the leading scheduler's; this one only writes and reads their jobs.
    services = build(settings, lead=False, channels={})
    db, scheduler = services.db, services.scheduler
    await scheduler.start()
    try:
        return await _run(settings, db, scheduler, args)
    except CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LookupError:
        print(f"error: no campaign {args.id}", file=sys.stderr)
        return 2
    finally:
        await services.close()


async def _run(settings: Settings, db: Database, scheduler: ShopScheduler, args: argparse.Namespace) -> int:
    op = args.campaign_command
    window = timedelta(days=settings.conversion_window_days)
    if op == "list":
        rows = await db.run(
            lambda s: [
                {**campaigns.view(c), "stats": campaigns.stats(s, c.id, window)}
                for c in s.exec(select(Campaign).order_by(Campaign.id)).all()
            ]
        )
        _print({"campaigns": rows})
    elif op == "create":
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CampaignError(f"not JSON: {exc}") from None
        spec = campaigns.parse_spec(data)
        _print(campaigns.view(await db.run(lambda s: campaigns.create(s, spec))))
    elif op in ("preview", "stats"):

        def load(session):
            campaign = session.get(Campaign, args.id)
            if campaign is None:
                raise LookupError(args.id)
            if op == "preview":
                return campaigns.preview(session, campaign, scheduler.p.policy, utcnow(), 3)
            return campaigns.stats(session, args.id, window)

        _print(await db.run(load))
    else:
        send_at = campaigns.parse_time(args.at, "--at") if getattr(args, "at", None) else None
        cron = getattr(args, "cron", None)
        if cron:
            campaigns.parse_when(None, cron)
        _print(await apply_change(db, scheduler, args.id, op, send_at, cron))
    return 0


def _print(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
