"""The scheduler: APScheduler with its jobs kept in the shop's database, so they survive
restarts. One process leads (a PostgreSQL advisory lock; SQLite serves one process); the others
only write jobs. Jobs missed during downtime run once (coalesce) if within the grace time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.delivery.clicks import ClickLinks
from bot.delivery.outbox import Outbox
from bot.delivery.policy import Policy
from bot.marketing import campaigns
from bot.marketing.campaigns import RunContext
from bot.marketing.reminders import ReminderSettings, notify_restocked, remind_carts
from bot.store.database import Database, make_engine, stored_secret
from bot.store.models import Campaign, MessageRecord, as_utc, utcnow

log = logging.getLogger(__name__)
LEADER_KEY = "scheduler-leader"
LEADER_RETRY_SECONDS = 5.0
JOB_POLL_SECONDS = 2.0
_current: ShopScheduler | None = None  # the jobs stored in the database name functions, not objects


@dataclass
class Proactive:
    """What the jobs need: the store, the gate, and a way to wake the outbox."""

    db: Database
    settings: Settings
    policy: Policy
    run_context: RunContext
    reminders: ReminderSettings


class ShopScheduler:
    def __init__(self, proactive: Proactive, lead: bool = True) -> None:
        self.p = proactive
        self.lead = lead
        settings = proactive.settings
        self.zone = ZoneInfo(settings.default_timezone)
        self.scheduler = AsyncIOScheduler(
            # Its own engine: the job store disposes of it when the scheduler shuts down.
            jobstores={"default": SQLAlchemyJobStore(engine=make_engine(proactive.db.url))},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": settings.scheduler_misfire_grace_seconds,
            },
            timezone=UTC,
        )
        self._leader_task: asyncio.Task | None = None
        self._runs: set[asyncio.Task] = set()
        self.leading = False
        self._periodic: dict[str, tuple[float, Callable[[], Awaitable[Any]]]] = {}

    def every(self, name: str, seconds: float, run: Callable[[], Awaitable[Any]]) -> None:
        """Run `run()` every `seconds` in the leading process (a job the wiring adds: the
        core does not know what it does, e.g. a commerce platform's reconcile)."""
        self._periodic[name] = (seconds, run)

    async def start(self, lead_later: bool = False) -> None:
        """Start writing jobs to the store; with `lead_later`, they run only once `start_leading()`
        is called (a campaign scheduled meanwhile is kept, not refused)."""
        global _current
        _current = self
        self.scheduler.start(paused=True)  # writes jobs; runs them only once leading
        if not lead_later:
            self.start_leading()

    def start_leading(self) -> None:
        """Take part in the leader election (once; a process that does not lead never does)."""
        if self.lead and self._leader_task is None:
            self._leader_task = asyncio.get_running_loop().create_task(self._lead())

    async def _lead(self) -> None:
        """Take the leader lock, lead while it is held, and take it again if it is lost: it is a
        session lock, and dies with its connection when the database restarts or fails over."""
        while True:
            await self._take_lead()
            try:
                await self._begin_leading()
                while await self._still_leading():
                    # Jobs written by other processes (the CLI, web workers) are seen within seconds.
                    await asyncio.sleep(JOB_POLL_SECONDS)
                    self.scheduler.wakeup()
                log.warning("scheduler lost its leader lock (its database connection was dropped); taking it again")
            except Exception:  # the database failed under us: stop leading, then try again
                log.exception("scheduler stopped leading after a database error")
            await self._stop_leading()
            await asyncio.sleep(1.0)

    async def _take_lead(self) -> None:
        db = self.p.db
        if db.is_sqlite:
            return
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await loop.run_in_executor(None, db.try_lock, LEADER_KEY):
                    return
            except Exception as exc:  # the database is unreachable: try again later
                log.warning("could not reach the database for the leader lock", extra={"error": type(exc).__name__})
            await asyncio.sleep(LEADER_RETRY_SECONDS)

    async def _still_leading(self) -> bool:
        db = self.p.db
        return db.is_sqlite or await asyncio.get_running_loop().run_in_executor(None, db.holds, LEADER_KEY)

    async def _begin_leading(self) -> None:
        db = self.p.db
        self.scheduler.add_job(
            "bot.marketing.scheduler:scan_job",
            "interval",
            seconds=self.p.settings.cart_scan_interval_seconds,
            id="cart-and-restock-scan",
            replace_existing=True,
        )
        for name, (seconds, _) in self._periodic.items():
            self.scheduler.add_job(
                "bot.marketing.scheduler:periodic_job",
                "interval",
                seconds=seconds,
                args=[name],
                id=name,
                replace_existing=True,
            )
        # A run cut short by a crash, a restart or a lost leadership carries on where it stopped.
        for campaign_id in await db.run(
            lambda s: list(s.exec(select(Campaign.id).where(Campaign.status == "running")).all())
        ):
            assert campaign_id is not None  # a primary key
            self.spawn(self.run_campaign(campaign_id, new_run=False))
        self.scheduler.resume()
        self.leading = True
        log.info("scheduler is leading")

    async def _stop_leading(self) -> None:
        """Another process may lead now: run no job here, and leave campaign runs to the leader."""
        self.leading = False
        if self.scheduler.running:
            self.scheduler.pause()
        for task in list(self._runs):
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def stop(self) -> None:
        global _current
        if self._leader_task is not None:
            self._leader_task.cancel()
        for task in list(self._runs):
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if _current is self:
            _current = None

    # --- campaigns

    def schedule(self, campaign: Campaign) -> datetime | None:
        """(Re)place the campaign's job; returns its next run time."""
        if campaign.cron:
            trigger = CronTrigger.from_crontab(campaign.cron, timezone=self.zone)
        else:
            # A time already past (a paused campaign resumed late) means now, not a missed run.
            trigger = DateTrigger(max(as_utc(campaign.send_at), utcnow()) if campaign.send_at else utcnow())
        job = self.scheduler.add_job(
            "bot.marketing.scheduler:campaign_job",
            trigger,
            args=[campaign.id],
            id=f"campaign:{campaign.id}",
            replace_existing=True,
        )
        self.scheduler.wakeup()
        return getattr(job, "next_run_time", None)

    def resume_now(self, campaign_id: int) -> None:
        """Carry on a run that was paused mid-way, in whichever process leads."""
        self.scheduler.add_job(
            "bot.marketing.scheduler:resume_job",
            DateTrigger(utcnow()),
            args=[campaign_id],
            id=f"campaign-resume:{campaign_id}",
            replace_existing=True,
        )
        self.scheduler.wakeup()

    def unschedule(self, campaign_id: int) -> None:
        try:
            self.scheduler.remove_job(f"campaign:{campaign_id}")
        except JobLookupError:
            pass

    def next_run(self, campaign_id: int) -> datetime | None:
        job = self.scheduler.get_job(f"campaign:{campaign_id}")
        return job.next_run_time if job is not None else None

    async def run_campaign(self, campaign_id: int, new_run: bool = True) -> None:
        """Queue one run in batches; stops early if the campaign is paused or cancelled."""
        db, ctx = self.p.db, self.p.run_context
        started = await db.run(lambda s: campaigns.start_run(s, campaign_id, new_run))
        if started is None:
            return
        run, cursor = started
        log.info("campaign run", extra={"campaign_id": campaign_id, "run": run, "resumed": cursor is not None})
        while True:
            result = await db.run(lambda s: campaigns.run_batch(s, ctx, campaign_id, run, cursor, utcnow()))
            if result is None:
                return
            cursor, counts = result
            ctx.on_batch()
            if cursor is None:
                log.info("campaign run queued", extra={"campaign_id": campaign_id, "run": run})
                return

    async def scan(self) -> dict[str, int]:
        now = utcnow()
        counts = await self.p.db.run(lambda s: remind_carts(s, self.p.policy, self.p.reminders, now))
        restock = await self.p.db.run(lambda s: notify_restocked(s, self.p.policy, self.p.reminders, now))
        for key, n in restock.items():
            counts[key] = counts.get(key, 0) + n
        if counts:
            log.info("proactive scan", extra={"counts": counts})
            self.p.run_context.on_batch()
        return counts


def hold(session: Session, campaign_id: int, held: bool) -> int:
    """Pausing holds a campaign's messages not yet sent; resuming releases them."""
    prefix = f"campaign:{campaign_id}:%"
    before, after = ("pending", "held") if held else ("held", "pending")
    return session.exec(
        update(MessageRecord)
        .where(col(MessageRecord.idempotency_key).like(prefix), col(MessageRecord.status) == before)
        .values(status=after)
    ).rowcount


def drop(session: Session, campaign_id: int) -> int:
    """Cancelling drops a campaign's messages not yet sent."""
    return session.exec(
        update(MessageRecord)
        .where(
            col(MessageRecord.idempotency_key).like(f"campaign:{campaign_id}:%"),
            col(MessageRecord.status).in_(["pending", "held"]),
        )
        .values(status="canceled", error_reason="campaign_cancelled")
    ).rowcount


async def campaign_job(campaign_id: int) -> None:
    if _current is not None:
        await _current.run_campaign(campaign_id)


async def resume_job(campaign_id: int) -> None:
    if _current is not None:
        await _current.run_campaign(campaign_id, new_run=False)


async def scan_job() -> None:
    if _current is not None:
        await _current.scan()


async def periodic_job(name: str) -> None:
    if _current is not None and name in _current._periodic:
        try:
            await _current._periodic[name][1]()
        except Exception:  # the next run tries again; the job must stay scheduled
            log.exception("periodic job failed", extra={"job": name})


def reminder_settings(settings: Settings, links: ClickLinks | None = None) -> ReminderSettings:
    """The reminders' delays, discount and templates; with `links`, each carries a tracked link."""
    return ReminderSettings(
        settings.reminder_delays,
        settings.discount,
        settings.whatsapp_cart_template_sid,
        settings.whatsapp_restock_template_sid,
        links,
    )


def proactive(settings: Settings, db: Database, outbox: Outbox) -> Proactive:
    """What scheduled jobs and campaigns need, wired to this store and outbox."""
    policy = Policy(settings)
    links = click_links(settings, db)
    run_context = RunContext(policy, links, settings.campaign_batch_size, outbox.notify)
    return Proactive(db, settings, policy, run_context, reminder_settings(settings, links))


def click_links(settings: Settings, db: Database) -> ClickLinks:
    """The tracked links of this shop's campaigns and reminders (`bot/delivery/clicks.py`)."""
    return ClickLinks(settings.base_url, stored_secret(db, "clicks"))
