"""The one place that assembles the service from its settings: the store, the channels, the
recogniser, the engine and its dialogs, the outbox, the scheduler. Every command (serve, chat,
scheduler, outbox, the command lines) asks `build(settings)` for what it needs; each part is
made on first use, so a command line that only reads the store loads no model."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cached_property

from botbuilder.core import BotState
from prometheus_client import CollectorRegistry
from sqlmodel import select

from bot.channel import ChannelAdapter
from bot.config import Settings
from bot.conversation.engine import CustomerConversationState, Engine
from bot.conversation.identity import StoreProfiles
from bot.conversation.linking import LinkTargets, ShopperAccounts
from bot.conversation.sender_limit import SenderLimit
from bot.delivery.dispatchers import DispatcherProcesses, dispatcher_count, make_outbox
from bot.delivery.outbox import Outbox
from bot.delivery.policy import Policy
from bot.handoff.service import Handoffs
from bot.i18n import text_in
from bot.marketing.scheduler import ShopScheduler, proactive
from bot.metrics import Metrics
from bot.nlu import CatalogTerm, Recognizer, load_examples, load_model, model_path
from bot.nlu_cache import FitCache, model_identity
from bot.store.database import Database, stored_secret
from bot.store.models import Product, Variant
from bot.store.seed import seed_demo
from bot.store.storage import SqlStorage
from channels.registry import enabled
from channels.web import WebChannel
from dialogs.main_dialog import MainDialog
from dialogs.shop import ShopServices
from dialogs.shop_bot import ShopBot
from integrations.cart import READ_AHEAD as CART_AHEAD
from integrations.cart import StoreCarts
from integrations.catalog import StoreCatalog
from integrations.faq import StoreFaq
from integrations.orders import StoreOrders, checkout_rules
from integrations.payments import Payments, SandboxPayments
from integrations.stripe_payments import StripePayments

log = logging.getLogger(__name__)


def build_recognizer(settings: Settings) -> Recognizer:
    """Load the model and fit the recogniser on the example utterances, or load what an earlier
    start fitted from `NLU_CACHE_DIR`."""
    cache = None
    if settings.nlu_cache_dir:
        cache = FitCache(settings.nlu_cache_dir, model_identity(model_path(settings.nlu_model)))
    return Recognizer(
        load_model(settings.nlu_model, settings.nlu_threads),
        load_examples(),
        settings.nlu_threshold,
        settings.nlu_min_similarity,
        settings.nlu_batch_window_ms,
        settings.nlu_batch_max,
        cache,
    )


def teach_shop(recognizer: Recognizer, db: Database, faq: StoreFaq) -> None:
    """Give the recogniser this shop's product names, colours and FAQ phrasings."""
    with db.session() as session:
        products = session.exec(select(Product)).all()
        colours = set(session.exec(select(Variant.colour).distinct()).all())
    recognizer.set_catalog(
        [CatalogTerm(p.sku, p.name, p.category, tuple(p.tags.split(",")), p.name_zh) for p in products], colours
    )
    recognizer.set_faq(faq.phrasings())


class Services:
    """The service's parts, each made once, on first use.

    Args:
        recognizer: a loaded recogniser to share (tests share one model between apps); else one
            is loaded when first needed, and closed with the rest.
        seed: put the demo catalog into an empty store.
        channels: the provider channels to use instead of those the settings enable.
        lead: this process runs the scheduler's jobs and the extra outbox dispatchers
            (`SCHEDULER_IN_PROCESS` for a server; always for `python app.py scheduler`).
    """

    def __init__(
        self,
        settings: Settings,
        recognizer: Recognizer | None = None,
        seed: bool = False,
        channels: dict[str, ChannelAdapter] | None = None,
        lead: bool = True,
    ) -> None:
        self.settings = settings
        self._given_recognizer = recognizer
        self._seed = seed
        self._given_channels = channels
        self.lead = lead

    # --- the store and what reads it ----------------------------------------------------------

    @cached_property
    def db(self) -> Database:
        db = Database(self.settings.database_url, self.settings.store_timeout_seconds)
        db.create_schema()
        if self._seed:
            seed_demo(db)
        return db

    @cached_property
    def policy(self) -> Policy:
        return Policy(self.settings)

    @cached_property
    def faq(self) -> StoreFaq:
        return StoreFaq(self.db)

    @cached_property
    def catalog(self) -> StoreCatalog:
        return StoreCatalog(self.db)

    @cached_property
    def orders(self) -> StoreOrders:
        return StoreOrders(self.db, checkout_rules(self.settings))

    @cached_property
    def payments(self) -> Payments:
        """PAYMENTS: Stripe Checkout, or the sandbox pay page (the default)."""
        if self.settings.payments == "stripe":
            return StripePayments.from_settings(self.settings)
        return SandboxPayments(self.settings.base_url, stored_secret(self.db, "payments"))

    @cached_property
    def metrics(self) -> Metrics:
        """This service's operations metrics, on a registry of its own (not the process-wide one)."""
        return Metrics(CollectorRegistry())

    # --- channels and delivery ----------------------------------------------------------------

    @cached_property
    def web(self) -> WebChannel:
        secret = self.settings.session_secret.get_secret_value() if self.settings.session_secret else ""
        return WebChannel(secret.encode() or stored_secret(self.db, "web-sessions"), self.settings.base_url)

    @cached_property
    def channels(self) -> dict[str, ChannelAdapter]:
        """Every channel that is on: the providers with credentials, and the web chat."""
        providers = enabled(self.settings) if self._given_channels is None else self._given_channels
        return {**providers, self.web.name: self.web}

    @cached_property
    def dispatchers(self) -> int:
        """How many outbox dispatchers run: OUTBOX_WORKERS in the leading process, else one."""
        return dispatcher_count(self.settings, self.db) if self.lead else 1

    @cached_property
    def outbox(self) -> Outbox:
        return make_outbox(self.settings, self.db, self.channels, self.dispatchers, self.metrics)

    @cached_property
    def extra_dispatchers(self) -> DispatcherProcesses:
        return DispatcherProcesses(self.dispatchers - 1)

    @cached_property
    def scheduler(self) -> ShopScheduler:
        return ShopScheduler(proactive(self.settings, self.db, self.outbox), lead=self.lead)

    @cached_property
    def handoffs(self) -> Handoffs:
        return Handoffs.from_settings(self.db, self.settings, self.outbox.notify, self.metrics)

    @cached_property
    def accounts(self) -> ShopperAccounts:
        links = LinkTargets({name: channel.deep_link for name, channel in self.channels.items()})
        return ShopperAccounts(self.db, links, timedelta(minutes=self.settings.link_ttl_minutes))

    # --- understanding and the conversation ---------------------------------------------------

    @cached_property
    def recognizer(self) -> Recognizer:
        recognizer = self._given_recognizer or build_recognizer(self.settings)
        teach_shop(recognizer, self.db, self.faq)
        return recognizer

    @property
    def model_loaded(self) -> bool:
        """The recogniser has been made: its model is loaded and fitted (readiness)."""
        return "recognizer" in self.__dict__

    @cached_property
    def engine(self) -> Engine:
        settings, db = self.settings, self.db
        storage = SqlStorage(db)
        conversation_state = CustomerConversationState(storage)
        shop = ShopServices(
            catalog=self.catalog,
            carts=StoreCarts(db, settings.codes),
            orders=self.orders,
            payments=self.payments,
            faq=self.faq,
            profiles=StoreProfiles(db),
            accounts=self.accounts,
            memory=conversation_state.create_property("ShopMemory"),
            media_base=settings.base_url,
            currency=settings.currency,
            handoff=self.handoffs,
        )
        bot = ShopBot(conversation_state, MainDialog(shop))
        states: list[BotState] = [conversation_state]
        return Engine(
            db,
            self.recognizer,
            bot.on_turn,
            storage,
            states,
            settings.max_message_chars,
            frozenset(name for name, channel in self.channels.items() if channel.numbered_choices),
            self.handoffs,
            settings.default_timezone,
            SenderLimit.from_settings(
                settings.sender_rate_limit,
                settings.sender_rate_window_seconds,
                lambda language: text_in(language, "rate_limited"),
            ),
            lambda language: text_in(language, "turn_failed"),
            settings.disclosure(),
            self.metrics,
            read_ahead={CART_AHEAD: StoreCarts.read_open},  # most journeys look at the cart
        )

    # --- running ------------------------------------------------------------------------------

    async def start_delivery(self) -> None:
        """Start sending: the outbox, the extra dispatchers and the scheduler."""
        self.outbox.start()
        self.extra_dispatchers.start()
        await self.scheduler.start()

    async def close(self) -> None:
        """Stop what was started and close what was made, in the reverse order."""
        made = self.__dict__
        if "scheduler" in made:
            await self.scheduler.stop()
        if "extra_dispatchers" in made:
            await self.extra_dispatchers.stop()
        if "outbox" in made:
            await self.outbox.stop()
            log.info("outbox dispatcher stopped", extra={"sent": self.outbox.sent})
        if "channels" in made:
            for channel in self.channels.values():
                await channel.close()
        if "payments" in made:
            await self.payments.close()
        if "recognizer" in made and self._given_recognizer is None:
            self.recognizer.batcher.close()
        if "db" in made:
            self.db.close()


def build(settings: Settings, **options) -> Services:
    """The service's parts for these settings (see `Services` for the options)."""
    return Services(settings, **options)
