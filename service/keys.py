"""The keys of what the aiohttp application holds (settings, store, engine, channels, outbox...),
in one module that every handler module reads them from."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.config import Settings
from bot.conversation.engine import Engine
from bot.conversation.linking import ShopperAccounts
from bot.delivery.outbox import Outbox
from bot.marketing.scheduler import ShopScheduler
from bot.metrics import Metrics
from bot.store.database import Database
from channels.web import WebChannel
from integrations.catalog import StoreCatalog
from integrations.orders import StoreOrders
from integrations.payments import Payments
from service.wiring import Services

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
ENGINE = web.AppKey("engine", Engine)
WEB = web.AppKey("web", WebChannel)
ORDERS = web.AppKey("orders", StoreOrders)
PAYMENTS = web.AppKey("payments", Payments)  # type: ignore[type-abstract]
CATALOG = web.AppKey("catalog", StoreCatalog)
CHANNELS = web.AppKey("channels", dict)
OUTBOX = web.AppKey("outbox", Outbox)
METRICS = web.AppKey("metrics", Metrics)
TASKS = web.AppKey("tasks", set)
ACCOUNTS = web.AppKey("accounts", ShopperAccounts)
# Turns that run after a webhook's answer; a bound keeps the event loop free to answer webhooks.
# Turns share one interpreter lock, so more at once adds no throughput, only webhook latency:
# measured with bench/channels.py, 3 keeps the acknowledgement's p95 near 12 ms where 6 let it
# reach 24 ms, at the same turns/s.
TURN_SLOTS = web.AppKey("turn_slots", asyncio.Semaphore)
SCHEDULER = web.AppKey("scheduler", ShopScheduler)
LEARNING = web.AppKey("learning", asyncio.Task)  # the task that picks up examples taught elsewhere
# A fresh demo: the task that plays the dashboard's demo history, then starts the scheduler.
DEMO = web.AppKey("demo", asyncio.Task)
