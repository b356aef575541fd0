"""The one place that assembles the service from its settings: the store, the channels, the
recogniser, the engine and its dialogs, the outbox, the scheduler. Every command (serve, chat,
scheduler, outbox, the command lines) asks `build(settings)` for what it needs; each part is
made on first use, so a command line that only reads the store loads no model."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from botbuilder.core import BotState
from prometheus_client import CollectorRegistry
from sqlmodel import Session, select

from bot.channel import ChannelAdapter, profile
from bot.config import Settings
from bot.conversation.engine import CustomerConversationState, Engine
from bot.conversation.identity import StoreProfiles
from bot.conversation.linking import LinkTargets, ShopperAccounts
from bot.conversation.sender_limit import SenderLimit
from bot.csat import RUN_EVERY_SECONDS as CSAT_SAMPLE_SECONDS
from bot.csat import CsatSampler
from bot.delivery.clicks import ClickLinks
from bot.delivery.dispatchers import DispatcherProcesses, dispatcher_count, make_outbox
from bot.delivery.mail import MAIL_LANE, MailSender
from bot.delivery.outbox import Outbox, Sender
from bot.delivery.policy import Policy
from bot.handoff.service import Handoffs
from bot.i18n import text_in
from bot.learning import Learner
from bot.marketing.scheduler import ShopScheduler, click_links, proactive, reminder_settings
from bot.metrics import Metrics
from bot.nlu import CatalogTerm, MultilingualEncoder, Recognizer, load_examples, load_model, model_path
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
from integrations.commerce.freshness import StockFreshness
from integrations.commerce.sync import CatalogSync
from integrations.customers import PlatformCustomers, ShopperCustomers
from integrations.easypost_shipping import EasyPostShipping
from integrations.faq import StoreFaq
from integrations.magento.catalog import MagentoCatalog
from integrations.magento.checkout import MagentoCheckout
from integrations.magento.client import MagentoClient
from integrations.magento.customers import MagentoCustomers
from integrations.magento.orders import MagentoOrderEvents
from integrations.magento.sync import MagentoSync
from integrations.orders import LINK_RETRY_BASE, StoreOrders, checkout_rules
from integrations.payment_links import PaymentLinkRetries
from integrations.payments import Payments, SandboxPayments
from integrations.paypal_payments import PayPalPayments
from integrations.receipts import OrderConfirmation
from integrations.shipping import Shipping, StoreShipping
from integrations.shopify.catalog import ShopifyCatalog
from integrations.shopify.checkout import ShopifyPayments
from integrations.shopify.client import ShopifyClient
from integrations.shopify.customers import ShopifyCustomers
from integrations.stripe_payments import StripePayments
from integrations.woocommerce.catalog import WooCommerceCatalog
from integrations.woocommerce.checkout import WooCommercePayments
from integrations.woocommerce.client import WooCommerceClient
from integrations.woocommerce.customers import WooCommerceCustomers
from service import demo_history
from service.demo_history import Summary

log = logging.getLogger(__name__)


def build_recognizer(settings: Settings, model: Any = None, zh_encoder: Any = None) -> Recognizer:
    """Load the models (unless given ones already loaded: the English sentence model and the
    multilingual encoder for Chinese) and fit the recogniser on the example utterances, or load
    what an earlier start fitted from `NLU_CACHE_DIR`."""
    cache = None
    if settings.nlu_cache_dir:
        cache = FitCache(settings.nlu_cache_dir, model_identity(model_path(settings.nlu_model), settings.nlu_runtime))
    if model is None:
        model = load_model(
            settings.nlu_model, settings.nlu_threads, settings.nlu_runtime, settings.nlu_cache_dir or None
        )
    return Recognizer(
        model,
        load_examples(),
        settings.nlu_threshold,
        settings.nlu_min_similarity,
        settings.nlu_batch_window_ms,
        settings.nlu_batch_max,
        cache,
        settings.nlu_threshold_zh,
        zh_encoder if zh_encoder is not None else MultilingualEncoder(settings.nlu_threads),
    )


def catalog_terms(session: Session) -> tuple[list[CatalogTerm], set[str]]:
    """The product names and colours a recogniser learns from the store's catalog."""
    products = session.exec(select(Product)).all()
    colours = set(session.exec(select(Variant.colour).distinct()).all())
    return [CatalogTerm(p.sku, p.name, p.category, tuple(p.tags.split(",")), p.name_zh) for p in products], colours


def teach_shop(recognizer: Recognizer, db: Database, faq: StoreFaq) -> None:
    """Give the recogniser this shop's product names, colours and FAQ phrasings."""
    with db.session() as session:
        terms, colours = catalog_terms(session)
    recognizer.set_catalog(terms, colours)
    recognizer.set_faq(faq.phrasings())


class Services:
    """The service's parts, each made once, on first use.

    Args:
        recognizer: a loaded recogniser to share (tests share one model between apps); else one
            is loaded when first needed, and closed with the rest.
        seed: put the demo catalog into an empty store.
        demo_history: with it, a store seeded just now gets four weeks of demo history, played
            by simulated shoppers through the engine (`service/demo_history.py`) when
            `write_demo_history` is awaited (`python app.py`'s demo, before delivery starts).
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
        demo_history: bool = False,
    ) -> None:
        self.settings = settings
        self._demo_history = demo_history
        self._given_recognizer = recognizer
        self._seed = seed
        self.seeded = False  # the demo catalog was put into an empty store by this process
        self._given_channels = channels
        self.lead = lead

    # --- the store and what reads it ----------------------------------------------------------

    @cached_property
    def db(self) -> Database:
        db = Database(self.settings.database_url, self.settings.store_timeout_seconds)
        db.create_schema()
        if self._seed:
            # A shop on a commerce platform gets its catalog from there (`catalog sync`), not the demo's.
            self.seeded = seed_demo(db, products=self.settings.commerce_backend == "store")
        return db

    @cached_property
    def policy(self) -> Policy:
        return Policy(self.settings)

    @cached_property
    def links(self) -> ClickLinks:
        """The tracked links campaigns and reminders carry (`GET /r/...` records their clicks)."""
        return click_links(self.settings, self.db)

    @cached_property
    def faq(self) -> StoreFaq:
        return StoreFaq(self.db)

    @cached_property
    def catalog(self) -> StoreCatalog:
        return StoreCatalog(self.db)

    @cached_property
    def orders(self) -> StoreOrders:
        retry = self.settings.payment_link_retry_seconds
        return StoreOrders(
            self.db, checkout_rules(self.settings), timedelta(seconds=retry) if retry else LINK_RETRY_BASE
        )

    @cached_property
    def payment_links(self) -> PaymentLinkRetries:
        """The scheduled retry of orders left without their payment link (job `payment-link-retry`)."""

        def wake_outbox() -> None:  # a command line has no outbox: the server's sends the links
            if "outbox" in self.__dict__:
                self.outbox.notify()

        return PaymentLinkRetries(
            self.db,
            self.orders,
            self.payments,
            self.policy,
            self.settings.currency,
            timedelta(hours=self.settings.payment_link_give_up_hours),
            self.handoffs,
            wake_outbox,
        )

    @cached_property
    def shopify(self) -> ShopifyClient:
        """The Shopify Admin API client (COMMERCE_BACKEND=shopify)."""
        return ShopifyClient.from_settings(self.settings)

    @cached_property
    def woocommerce(self) -> WooCommerceClient:
        """The WooCommerce REST API client (COMMERCE_BACKEND=woocommerce)."""
        return WooCommerceClient.from_settings(self.settings)

    @cached_property
    def catalog_sync(self) -> CatalogSync:
        """Keeps the store's catalog a copy of the commerce platform's (COMMERCE_BACKEND=shopify or
        woocommerce): sync, reconcile, restock notices."""

        def wake_outbox() -> None:  # a command line has no outbox: the server's sends the notices
            if "outbox" in self.__dict__:
                self.outbox.notify()

        catalog: ShopifyCatalog | WooCommerceCatalog
        if self.settings.commerce_backend == "woocommerce":
            catalog = WooCommerceCatalog(self.woocommerce)
        else:
            catalog = ShopifyCatalog(
                self.shopify, self.settings.shopify_bulk_sync_from or None, self.settings.commerce_zh_locale or None
            )
        return CatalogSync(
            self.db,
            catalog,
            self.policy,
            reminder_settings(self.settings, self.links),
            wake_outbox,
            self.relearn_catalog,  # a sync in the running service: the recogniser learns new names
        )

    @cached_property
    def freshness(self) -> StockFreshness | None:
        """With a commerce platform (COMMERCE_BACKEND other than store), how long ago its stock
        was confirmed, for stock answers to say when older than STOCK_FRESH_MINUTES."""
        if self.settings.commerce_backend == "store":
            return None
        return StockFreshness(
            self.db, self.settings.commerce_backend, timedelta(minutes=self.settings.stock_fresh_minutes)
        )

    @cached_property
    def customers(self) -> ShopperCustomers | None:
        """With a commerce platform (COMMERCE_BACKEND shopify, woocommerce or magento), its
        customers: a shopper matched by a verified phone or e-mail sees the website's orders too.
        Codes go by e-mail (SMTP_URL) or by SMS."""
        platform: PlatformCustomers
        backend = self.settings.commerce_backend
        if backend == "shopify":
            platform = ShopifyCustomers(self.shopify)
        elif backend == "woocommerce":
            platform = WooCommerceCustomers(self.woocommerce)
        elif backend == "magento":
            platform = MagentoCustomers(self.magento)
        else:
            return None

        def wake_outbox() -> None:
            if "outbox" in self.__dict__:
                self.outbox.notify()

        return ShopperCustomers(
            self.db,
            platform,
            next((p.name for p in map(profile, self.channels) if p is not None and p.texts_any_number), None),
            MAIL_LANE in self.senders,
            wake_outbox,
        )

    @cached_property
    def magento(self) -> MagentoClient:
        """The Magento REST client (COMMERCE_BACKEND=magento)."""
        return MagentoClient.from_settings(self.settings)

    @cached_property
    def magento_zh(self) -> MagentoClient | None:
        """The REST client of Magento's zh-TW store view (MAGENTO_ZH_STORE_CODE), whose product
        names and descriptions are read with the catalog; None without one."""
        base = self.settings.magento_zh_base
        if base is None:
            return None
        return replace(self.magento, base=base, _session=None)

    @cached_property
    def magento_sync(self) -> MagentoSync:
        """Keeps the store a copy of Magento's catalog and orders (sync, the poll, restock
        notices), and places paid chat orders there."""
        settings = self.settings

        def wake_outbox() -> None:
            if "outbox" in self.__dict__:
                self.outbox.notify()

        checkout = MagentoCheckout(
            self.magento, self.db, settings.magento_payment_method, settings.magento_country, settings.magento_url or ""
        )
        events = MagentoOrderEvents(self.policy, checkout_rules(settings), settings.whatsapp_shipping_template_sid)
        return MagentoSync(
            self.db,
            MagentoCatalog(self.magento, settings.magento_url or "", zh=self.magento_zh),
            events,
            self.policy,
            reminder_settings(settings, self.links),
            wake_outbox,
            self.relearn_catalog,
            checkout.push_paid,
        )

    @cached_property
    def payments(self) -> Payments:
        """With COMMERCE_BACKEND=shopify, Shopify's checkout (draft order invoices); with
        woocommerce, WooCommerce's (pending orders' payment URLs); else PAYMENTS: Stripe Checkout, PayPal Checkout, or the sandbox pay page (the default)."""
        if self.settings.commerce_backend == "shopify":
            return ShopifyPayments(self.shopify, self.db, self.settings.currency)
        if self.settings.commerce_backend == "woocommerce":
            return WooCommercePayments(self.woocommerce, self.db, self.settings.currency)
        if self.settings.payments == "stripe":
            return StripePayments.from_settings(self.settings, self.db)
        if self.settings.payments == "paypal":
            return PayPalPayments.from_settings(self.settings)
        return SandboxPayments(self.settings.base_url, stored_secret(self.db, "payments"))

    @cached_property
    def shipping(self) -> Shipping:
        """SHIPPING: EasyPost (addresses, delivery dates, trackers, return labels), or none (the default)."""
        if self.settings.shipping == "easypost":
            return EasyPostShipping.from_settings(self.settings, checkout_rules(self.settings).estimate)
        return StoreShipping()

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
        for channel in providers.values():
            # A channel that makes resources at its provider once (Twilio's WhatsApp Content)
            # keeps them in the store, for every process and restart.
            if (attach := getattr(channel, "attach_store", None)) is not None:
                attach(self.db)
        return {**providers, self.web.name: self.web}

    @cached_property
    def dispatchers(self) -> int:
        """How many outbox dispatchers run: OUTBOX_WORKERS in the leading process, else one."""
        return dispatcher_count(self.settings, self.db) if self.lead else 1

    @cached_property
    def senders(self) -> dict[str, Sender]:
        """The outbox's lanes that are no chat: e-mail, when SMTP_URL is set."""
        settings = self.settings
        if not (settings.mail_on and settings.smtp_url and settings.mail_from):
            log.info("e-mail is off: SMTP_URL is not set")
            return {}
        return {
            MAIL_LANE: MailSender.from_url(
                settings.smtp_url.get_secret_value(), settings.mail_from, settings.mail_timeout_seconds
            )
        }

    @cached_property
    def outbox(self) -> Outbox:
        return make_outbox(self.settings, self.db, self.channels, self.dispatchers, self.metrics, self.senders)

    @cached_property
    def on_paid(self) -> OrderConfirmation:
        """What an order's payment queues for the shopper (the chat notice, the e-mail)."""
        return OrderConfirmation(self.settings.currency, mail=MAIL_LANE in self.senders)

    @cached_property
    def extra_dispatchers(self) -> DispatcherProcesses:
        return DispatcherProcesses(self.dispatchers - 1)

    @cached_property
    def scheduler(self) -> ShopScheduler:
        scheduler = ShopScheduler(proactive(self.settings, self.db, self.outbox), lead=self.lead)
        interval = self.settings.shopify_reconcile_interval_seconds
        if self.settings.commerce_backend == "shopify" and interval > 0:
            scheduler.every("shopify-reconcile", interval, self.catalog_sync.reconcile)
        poll = self.settings.magento_poll_interval_seconds
        if self.settings.commerce_backend == "magento" and poll > 0:
            scheduler.every("magento-poll", poll, self.magento_sync.poll)
        interval = self.settings.woocommerce_reconcile_interval_seconds
        if self.settings.commerce_backend == "woocommerce" and interval > 0:
            scheduler.every("woocommerce-reconcile", interval, self.catalog_sync.reconcile)
        if self.settings.csat_sample_rate > 0:
            scheduler.every("csat-sample", CSAT_SAMPLE_SECONDS, self.csat_sampler.run)
        if self.settings.payment_link_retry_seconds > 0:
            scheduler.every("payment-link-retry", self.settings.payment_link_retry_seconds, self.payment_links.run)
        return scheduler

    @cached_property
    def csat_sampler(self) -> CsatSampler:
        """Asks one in CSAT_SAMPLE_RATE of the conversations the bot handled alone for a rating."""
        return CsatSampler(self.db, self.policy, self.settings.csat_sample_rate, self.outbox.notify)

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

    @cached_property
    def learner(self) -> Learner:
        """Keeps the recogniser fitted on the examples taught from the dashboard (made with it)."""
        learner = Learner(self.db, self.recognizer)
        learner.apply_now()
        return learner

    async def relearn_catalog(self) -> None:
        """Teach a loaded recogniser the catalog again (a product came from the commerce platform
        while the service runs); nothing to do before the model is loaded."""
        if self.model_loaded:
            terms, colours = await self.db.run(catalog_terms)
            self.recognizer.set_catalog(terms, colours)

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
            shipping=self.shipping,
            faq=self.faq,
            profiles=StoreProfiles(db),
            accounts=self.accounts,
            memory=conversation_state.create_property("ShopMemory"),
            media_base=settings.base_url,
            currency=settings.currency,
            handoff=self.handoffs,
            customers=self.customers,
            freshness=self.freshness,
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

    @property
    def demo_history_due(self) -> bool:
        """`demo_history` was asked for and the demo catalog was seeded just now by this process."""
        return self._demo_history and self.seeded and self.settings.commerce_backend == "store"

    async def write_demo_history(self) -> Summary | None:
        """With `demo_history_due`: play the demo history through the engine. Run before the
        scheduler starts, so its jobs (reminders, rating questions) never meet a simulated shopper
        half-way; the outbox never sees what they are sent (see the module)."""
        if not self.demo_history_due:
            return None
        return await demo_history.write(self)

    async def start_delivery(self, run_jobs: bool = True) -> None:
        """Start sending: the outbox, the extra dispatchers and the scheduler, whose jobs run only
        once `self.scheduler.start_leading()` is called when `run_jobs` is false."""
        self.outbox.start()
        self.extra_dispatchers.start()
        await self.scheduler.start(lead_later=not run_jobs)

    async def close_commerce(self) -> None:
        """Close the commerce platform's API client, if one was made."""
        made = self.__dict__
        if "shopify" in made:
            await self.shopify.close()
        if "woocommerce" in made:
            await self.woocommerce.close()
        if "magento" in made:
            await self.magento.close()
        if "magento_zh" in made and self.magento_zh is not None:
            await self.magento_zh.close()

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
        if "senders" in made:
            for sender in self.senders.values():
                await sender.close()
        if "payments" in made:
            await self.payments.close()
        if "shipping" in made:
            await self.shipping.close()
        await self.close_commerce()
        if "recognizer" in made and self._given_recognizer is None:
            self.recognizer.batcher.close()
        if "db" in made:
            self.db.close()


def build(settings: Settings, **options) -> Services:
    """The service's parts for these settings (see `Services` for the options)."""
    return Services(settings, **options)
