"""Settings: every knob of the service, read once from the environment or a `.env` file."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time, timedelta
from zoneinfo import ZoneInfo

from babel.numbers import is_currency
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SHIPPING_PROVIDERS = ("store", "easypost")  # SHIPPING; "demo" is read as "store"
PAYMENT_PROVIDERS = ("sandbox", "stripe", "paypal")  # PAYMENTS
DEFAULT_GRAPH_API_VERSION = "v25.0"  # released Feb 2026, supported until Jul 2028
COMMERCE_BACKENDS = ("store", "shopify", "woocommerce", "magento")  # COMMERCE_BACKEND
NLU_RUNTIMES = ("onnx", "torch")  # NLU_RUNTIME: ONNX Runtime, or sentence-transformers on PyTorch
DEFAULT_SHOPIFY_API_VERSION = "2026-10"  # Shopify's quarterly versions are supported for 12 months


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `15m`, `1h`, `2d` or a bare number of seconds.

    Raises:
        ValueError: the text is not a duration.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """`21:00-08:00` -> (21:00, 08:00); empty -> None (no quiet hours)."""
    if not text.strip():
        return None
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise ValueError(f"quiet hours must look like 21:00-08:00, not {text!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    return time(h1, m1), time(h2, m2)


def parse_discount(text: str) -> tuple[str, int] | None:
    """`COMEBACK10:10` -> ("COMEBACK10", 10 percent); empty -> None (no discount)."""
    if not text.strip():
        return None
    match = re.fullmatch(r"\s*([A-Za-z0-9_-]{3,32})\s*:\s*(\d{1,2})\s*", text)
    if not match or not 0 < int(match.group(2)) < 100:
        raise ValueError(f"a discount looks like CODE:PERCENT (1-99), not {text!r}")
    return match.group(1).upper(), int(match.group(2))


def parse_codes(text: str) -> dict[str, int]:
    """`WELCOME5:5,VIP20:20` -> {"WELCOME5": 5, "VIP20": 20} (percent off); empty -> none.

    Raises:
        ValueError: a part is not CODE:PERCENT.
    """
    codes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, percent = parse_discount(part) or ("", 0)
        codes[code] = percent
    return codes


def parse_money(text: str) -> int | None:
    """`5.99` -> 599 (cents); empty -> None.

    Raises:
        ValueError: not an amount of at most two decimals.
    """
    if not text.strip():
        return None
    match = re.fullmatch(r"\s*(\d{1,6})(?:\.(\d{1,2}))?\s*", text)
    if not match:
        raise ValueError(f"an amount looks like 5.99, not {text!r}")
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


def parse_rates(text: str) -> dict[str, float]:
    """`whatsapp=10,sms=1` -> messages per second per channel; empty -> no limits."""
    rates = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not value or float(value) <= 0:
            raise ValueError(f"a rate looks like channel=messages_per_second, not {part!r}")
        rates[name.strip()] = float(value)
    return rates


class Settings(BaseSettings):
    """Service settings; field names are the lower-case environment variable names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3978
    database_url: str = "sqlite:///data/shop.db"
    public_base_url: str | None = None
    admin_token: SecretStr | None = None
    metrics_token: SecretStr | None = None  # GET /metrics asks for it as a bearer token when set
    session_secret: SecretStr | None = None
    log_level: str = "INFO"

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_whatsapp_from: str | None = None
    twilio_sms_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    twilio_content_api_base: str = "https://content.twilio.com"  # where Content resources are made
    # WhatsApp choices, product cards and links as tappable Content inside the 24-hour window
    # (numbered text when off); product cards as `twilio/card` (a picture with a numbered caption when off).
    twilio_whatsapp_tappable: bool = True
    twilio_whatsapp_cards: bool = True

    messenger_page_access_token: SecretStr | None = None
    messenger_app_secret: SecretStr | None = None
    messenger_verify_token: SecretStr | None = None
    messenger_page_name: str | None = None
    graph_api_base: str = "https://graph.facebook.com"
    whatsapp_cloud_token: SecretStr | None = None
    whatsapp_cloud_phone_number_id: str | None = None
    whatsapp_cloud_app_secret: SecretStr | None = None
    whatsapp_cloud_verify_token: SecretStr | None = None
    whatsapp_cloud_display_number: str | None = None
    whatsapp_cloud_rate: float = Field(default=80.0, gt=0)
    graph_api_version: str = DEFAULT_GRAPH_API_VERSION

    nlu_model: str | None = None
    nlu_runtime: str = "onnx"
    nlu_threshold: float = 0.25
    nlu_threshold_zh: float = 0.25
    nlu_min_similarity: float = 0.4
    nlu_batch_window_ms: float = 4.0
    nlu_batch_max: int = 64
    nlu_threads: int = 1
    nlu_cache_dir: str = "data/nlu-cache"
    # How often each process looks for examples taught from the dashboard by another process.
    nlu_sync_seconds: float = Field(default=10.0, gt=0)

    bot_disclosure: str = "on"
    default_timezone: str = "America/New_York"
    quiet_hours: str = "21:00-08:00"
    cart_reminder_delays: str = "1h,24h"
    cart_reminder_discount: str = "COMEBACK10:10"
    cart_scan_interval_seconds: float = 60.0
    whatsapp_cart_template_sid: str | None = None
    whatsapp_restock_template_sid: str | None = None
    marketing_weekly_cap: int = 2
    # The dashboard's "agent hours saved": what a person would spend on a conversation the bot handled.
    agent_minutes_per_conversation: float = Field(default=6.0, ge=0)
    # The share of conversations the bot handled alone that get the 1-5 rating question (0: none, 1: all).
    csat_sample_rate: float = Field(default=0.1, ge=0, le=1)
    send_rate_limits: str = ""
    scheduler_in_process: bool = True
    scheduler_misfire_grace_seconds: int = 3600
    campaign_batch_size: int = 500
    conversion_window_days: int = 7
    discount_codes: str = ""
    currency: str = "USD"
    shipping_fee: str = "5.99"
    free_shipping_over: str = "50"
    processing_days: int = Field(default=1, ge=0, le=60)
    transit_days: int = Field(default=5, ge=0, le=60)
    whatsapp_shipping_template_sid: str | None = None
    send_timeout_seconds: float = 10.0
    outbox_retry_base_seconds: float = 1.0
    outbox_max_attempts: int = 8
    outbox_lease_seconds: float = 120.0
    web_workers: int = Field(default=1, ge=1, le=64)
    outbox_workers: int = Field(default=1, ge=1)
    link_ttl_minutes: int = 10
    max_message_chars: int = 4000
    store_timeout_seconds: float = Field(default=5.0, gt=0)
    sender_rate_limit: int = Field(default=20, ge=0)
    sender_rate_window_seconds: float = Field(default=60.0, gt=0)

    payments: str = "sandbox"
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    paypal_client_id: str | None = None
    paypal_client_secret: SecretStr | None = None
    paypal_webhook_id: str | None = None
    paypal_api_base: str = "https://api-m.paypal.com"  # the sandbox: https://api-m.sandbox.paypal.com

    shipping: str = "store"
    easypost_api_key: SecretStr | None = None
    easypost_webhook_secret: SecretStr | None = None
    easypost_from_address_id: str | None = None
    easypost_api_base: str = "https://api.easypost.com"
    whatsapp_order_update_template_sid: str | None = None
    smtp_url: SecretStr | None = None  # smtp://user:pass@host:587, smtps://... ; unset = no e-mail
    mail_from: str | None = None  # the From of the shop's e-mail: "Shop <orders@shop.example>"
    mail_timeout_seconds: float = Field(default=30.0, gt=0)
    commerce_backend: str = "store"
    # the locale whose product translations a platform's sync reads into the zh-TW name and
    # description (Shopify's locale; Magento's store view is MAGENTO_ZH_STORE_CODE); empty: none
    commerce_zh_locale: str = ""
    # a platform's stock confirmed longer ago than this: stock answers say when it was checked
    stock_fresh_minutes: float = Field(default=20.0, gt=0)
    shopify_shop_domain: str | None = None  # your-shop.myshopify.com
    shopify_admin_token: SecretStr | None = None  # the custom app's Admin API access token
    shopify_webhook_secret: SecretStr | None = None  # the app's API secret key (signs webhooks)
    shopify_api_version: str = DEFAULT_SHOPIFY_API_VERSION
    shopify_api_base: str | None = None  # default https://{SHOPIFY_SHOP_DOMAIN}
    shopify_timeout_seconds: float = Field(default=10.0, gt=0)
    shopify_reconcile_interval_seconds: float = Field(default=900.0, ge=0)  # 0: no scheduled reconcile
    shopify_bulk_sync_from: int = Field(default=1000, ge=0)  # products; 0: the full sync always reads pages
    magento_url: str | None = None  # the shop's base URL, https://shop.example.com
    magento_token: SecretStr | None = None  # the integration's access token
    magento_store_code: str = "default"  # the REST base is {MAGENTO_URL}/rest/{store code}/V1/
    magento_zh_store_code: str = ""  # the zh-TW store view whose product names are read; empty: none
    magento_poll_interval_seconds: float = Field(default=60.0, ge=0)  # 0: no scheduled poll
    magento_timeout_seconds: float = Field(default=10.0, gt=0)
    magento_payment_method: str = "checkmo"  # the offline method the paid order is placed with
    magento_country: str = "US"  # the country of the shipping address given to Magento
    woocommerce_url: str | None = None  # the WordPress site: https://shop.example (the API is {url}/wp-json/wc/v3/)
    woocommerce_key: SecretStr | None = None  # REST API consumer key (ck_...), Read/Write
    woocommerce_secret: SecretStr | None = None  # REST API consumer secret (cs_...)
    woocommerce_webhook_secret: SecretStr | None = None  # the secret of the shop's webhooks (signs them)
    woocommerce_timeout_seconds: float = Field(default=10.0, gt=0)
    woocommerce_reconcile_interval_seconds: float = Field(default=900.0, ge=0)  # 0: no scheduled reconcile
    # An order left without its payment link (the provider or platform down or throttling at
    # checkout) is tried again after this, then twice as long each time (at most 15 minutes);
    # the scheduler looks this often. 0: only when the shopper asks about the order.
    payment_link_retry_seconds: float = Field(default=30.0, ge=0)
    # Still no link this long after the order was placed: a person is called and the shopper told.
    payment_link_give_up_hours: float = Field(default=2.0, gt=0)

    handoff_rules: str | None = None
    handoff_hours: str = ""
    handoff_agent_timeout: str = "5m"
    handoff_check_seconds: float = 5.0

    @field_validator("payments")
    @classmethod
    def _check_payments(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in PAYMENT_PROVIDERS:
            raise ValueError(f"PAYMENTS must be one of {', '.join(PAYMENT_PROVIDERS)}, not {value!r}")
        return value

    @field_validator("nlu_runtime")
    @classmethod
    def _check_nlu_runtime(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in NLU_RUNTIMES:
            raise ValueError(f"NLU_RUNTIME must be one of {', '.join(NLU_RUNTIMES)}, not {value!r}")
        return value

    @field_validator("commerce_backend")
    @classmethod
    def _check_commerce_backend(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in COMMERCE_BACKENDS:
            raise ValueError(f"COMMERCE_BACKEND must be one of {', '.join(COMMERCE_BACKENDS)}, not {value!r}")
        return value

    @field_validator("shopify_api_version")
    @classmethod
    def _check_shopify_version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", value.strip()):
            raise ValueError(f"SHOPIFY_API_VERSION looks like 2026-10 (a quarter's first month), not {value!r}")
        return value.strip()

    @field_validator("shopify_shop_domain")
    @classmethod
    def _check_shop_domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        domain = value.strip().lower().removeprefix("https://").rstrip("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*\.[a-z]{2,}", domain):
            raise ValueError(f"SHOPIFY_SHOP_DOMAIN is a host such as your-shop.myshopify.com, not {value!r}")
        return domain

    @model_validator(mode="after")
    def _check_shopify(self) -> Settings:
        if self.commerce_backend == "shopify":
            missing = [
                name.upper()
                for name in ("shopify_shop_domain", "shopify_admin_token", "shopify_webhook_secret")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"COMMERCE_BACKEND=shopify needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _check_magento(self) -> Settings:
        if self.commerce_backend != "magento":
            return self
        missing = [name.upper() for name in ("magento_url", "magento_token") if not getattr(self, name)]
        if missing:
            raise ValueError(f"COMMERCE_BACKEND=magento needs {', '.join(missing)}")
        url = (self.magento_url or "").strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url) or url.endswith("/rest"):
            raise ValueError(f"MAGENTO_URL is the shop's base URL such as https://shop.example.com, not {url!r}")
        if not re.fullmatch(r"[a-z0-9_]{1,32}", self.magento_store_code):
            raise ValueError(
                f"MAGENTO_STORE_CODE is a store view code such as default, not {self.magento_store_code!r}"
            )
        if self.magento_zh_store_code and not re.fullmatch(r"[a-z0-9_]{1,32}", self.magento_zh_store_code):
            raise ValueError(
                f"MAGENTO_ZH_STORE_CODE is a store view code such as zh_tw, not {self.magento_zh_store_code!r}"
            )
        if not re.fullmatch(r"[a-z0-9_]{1,32}", self.magento_payment_method):
            raise ValueError(
                f"MAGENTO_PAYMENT_METHOD is a payment method code such as checkmo, not {self.magento_payment_method!r}"
            )
        if not re.fullmatch(r"[A-Z]{2}", self.magento_country):
            raise ValueError(f"MAGENTO_COUNTRY is a two-letter country code such as US, not {self.magento_country!r}")
        self.magento_url = url
        return self

    @property
    def magento_base(self) -> str:
        """The REST base of the store view: {MAGENTO_URL}/rest/{MAGENTO_STORE_CODE}/V1."""
        return f"{(self.magento_url or '').rstrip('/')}/rest/{self.magento_store_code}/V1"

    @property
    def magento_zh_base(self) -> str | None:
        """The REST base of the zh-TW store view, or None when none is set (or COMMERCE_ZH_LOCALE
        is empty: no translations are read)."""
        if not self.magento_zh_store_code or not self.commerce_zh_locale:
            return None
        return f"{(self.magento_url or '').rstrip('/')}/rest/{self.magento_zh_store_code}/V1"

    @field_validator("commerce_zh_locale")
    @classmethod
    def _check_zh_locale(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", value):
            raise ValueError(f"COMMERCE_ZH_LOCALE is a locale such as zh-TW (or empty), not {value!r}")
        return value

    @field_validator("woocommerce_url")
    @classmethod
    def _check_woocommerce_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise ValueError(f"WOOCOMMERCE_URL is the shop's address such as https://shop.example, not {value!r}")
        host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        if url.startswith("http://") and host not in ("127.0.0.1", "localhost"):
            # The key and secret go as HTTP Basic: WooCommerce takes them only over HTTPS.
            raise ValueError(
                f"WOOCOMMERCE_URL must be https:// (the API keys are sent with each request), not {value!r}"
            )
        return url

    @model_validator(mode="after")
    def _check_woocommerce(self) -> Settings:
        if self.commerce_backend == "woocommerce":
            missing = [
                name.upper()
                for name in ("woocommerce_url", "woocommerce_key", "woocommerce_secret", "woocommerce_webhook_secret")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"COMMERCE_BACKEND=woocommerce needs {', '.join(missing)}")
        return self

    @property
    def shopify_base(self) -> str:
        """Where the Admin API is: SHOPIFY_API_BASE, else the shop's own domain."""
        return (self.shopify_api_base or f"https://{self.shopify_shop_domain}").rstrip("/")

    @model_validator(mode="after")
    def _check_stripe(self) -> Settings:
        if self.payments == "stripe" and not (self.stripe_secret_key and self.stripe_webhook_secret):
            raise ValueError("PAYMENTS=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
        return self

    @field_validator("shipping")
    @classmethod
    def _check_shipping(cls, value: str) -> str:
        value = value.strip().lower()
        value = "store" if value == "demo" else value
        if value not in SHIPPING_PROVIDERS:
            raise ValueError(f"SHIPPING must be one of {', '.join(SHIPPING_PROVIDERS)}, not {value!r}")
        return value

    @model_validator(mode="after")
    def _check_easypost(self) -> Settings:
        if self.shipping != "easypost":
            return self
        missing = [
            name
            for name, value in (
                ("EASYPOST_API_KEY", self.easypost_api_key),
                ("EASYPOST_WEBHOOK_SECRET", self.easypost_webhook_secret),
                ("EASYPOST_FROM_ADDRESS_ID", self.easypost_from_address_id),
            )
            if not (value.get_secret_value() if isinstance(value, SecretStr) else value)
        ]
        if missing:
            raise ValueError(f"SHIPPING=easypost needs {', '.join(missing)}")
        if not re.fullmatch(r"adr_[A-Za-z0-9]+", self.easypost_from_address_id or ""):
            raise ValueError("EASYPOST_FROM_ADDRESS_ID must be an EasyPost address id such as adr_...")
        if not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", self.easypost_api_base):
            raise ValueError(
                f"EASYPOST_API_BASE must be a base URL such as https://api.easypost.com, not {self.easypost_api_base!r}"
            )
        return self

    @model_validator(mode="after")
    def _check_mail(self) -> Settings:
        if self.smtp_url is not None and self.smtp_url.get_secret_value().strip():
            from bot.delivery.mail import SmtpServer  # imports no settings: no cycle

            SmtpServer.parse(self.smtp_url.get_secret_value())  # raises ValueError, without the URL
            if not (self.mail_from and "@" in self.mail_from):
                raise ValueError("SMTP_URL needs MAIL_FROM, an e-mail address such as orders@shop.example")
        return self

    @property
    def mail_on(self) -> bool:
        """Order confirmations go out by e-mail (SMTP_URL is set)."""
        return bool(self.smtp_url and self.smtp_url.get_secret_value().strip())

    @model_validator(mode="after")
    def _check_paypal(self) -> Settings:
        needed = {
            "PAYPAL_CLIENT_ID": self.paypal_client_id,
            "PAYPAL_CLIENT_SECRET": self.paypal_client_secret,
            "PAYPAL_WEBHOOK_ID": self.paypal_webhook_id,
        }
        missing = [name for name, value in needed.items() if not value]
        if self.payments == "paypal" and missing:
            raise ValueError(f"PAYMENTS=paypal needs {', '.join(missing)}")
        return self

    @field_validator("cart_reminder_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        for part in value.split(","):
            parse_duration(part)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value

    @field_validator("default_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone
        return value

    @field_validator("cart_reminder_discount")
    @classmethod
    def _check_discount(cls, value: str) -> str:
        parse_discount(value)
        return value

    @field_validator("discount_codes")
    @classmethod
    def _check_codes(cls, value: str) -> str:
        parse_codes(value)
        return value

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not is_currency(code):
            raise ValueError(f"currency must be an ISO 4217 code such as USD, EUR or TWD, not {value!r}")
        return code

    @field_validator("shipping_fee", "free_shipping_over")
    @classmethod
    def _check_money(cls, value: str) -> str:
        parse_money(value)
        return value

    @field_validator("send_rate_limits")
    @classmethod
    def _check_rates(cls, value: str) -> str:
        parse_rates(value)
        return value

    @property
    def discount(self) -> tuple[str, int] | None:
        return parse_discount(self.cart_reminder_discount)

    @property
    def codes(self) -> dict[str, int]:
        """Every discount code a shopper may apply: DISCOUNT_CODES and the cart reminder's."""
        codes = parse_codes(self.discount_codes)
        if self.discount:
            codes.setdefault(*self.discount)
        return codes

    @property
    def shipping_fee_cents(self) -> int:
        return parse_money(self.shipping_fee) or 0

    @property
    def free_shipping_from_cents(self) -> int | None:
        return parse_money(self.free_shipping_over)

    @property
    def rate_limits(self) -> dict[str, float]:
        return parse_rates(self.send_rate_limits)

    @property
    def quiet(self) -> tuple[time, time] | None:
        return parse_quiet_hours(self.quiet_hours)

    @field_validator("handoff_agent_timeout")
    @classmethod
    def _check_timeout(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("handoff_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        from bot.handoff.hours import StaffedHours  # imports nothing of the project: no cycle

        StaffedHours.parse(value, "UTC")
        return value

    def disclosure(self) -> Callable[[str], str] | None:
        """What tells a shopper at first contact on a channel that a bot answers, in a language:
        BOT_DISCLOSURE `on` (the text in bot/i18n.py), `off` (None), or the retailer's own text."""
        value = self.bot_disclosure.strip()
        if value.lower() in ("off", "false", "no", "0", ""):
            return None
        if value.lower() in ("on", "true", "yes", "1"):
            from bot.i18n import text_in  # imports nothing of the project: no cycle

            return lambda language: text_in(language, "disclosure")
        return lambda language: value

    @property
    def base_url(self) -> str:
        """The public URL of this service, without a trailing slash."""
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def reminder_delays(self) -> list[timedelta]:
        return [parse_duration(part) for part in self.cart_reminder_delays.split(",") if part.strip()]

    @property
    def agent_timeout(self) -> timedelta:
        return parse_duration(self.handoff_agent_timeout)
