"""Settings: every knob of the service, read once from the environment or a `.env` file."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time, timedelta
from zoneinfo import ZoneInfo

from babel.numbers import is_currency
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PAYMENT_PROVIDERS = ("sandbox", "stripe")  # PAYMENTS; paypal is planned, not yet supported
DEFAULT_GRAPH_API_VERSION = "v25.0"  # released Feb 2026, supported until Jul 2028


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
    nlu_threshold: float = 0.25
    nlu_min_similarity: float = 0.4
    nlu_batch_window_ms: float = 4.0
    nlu_batch_max: int = 64
    nlu_threads: int = 1
    nlu_cache_dir: str = "data/nlu-cache"

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

    handoff_rules: str | None = None
    handoff_hours: str = ""
    handoff_agent_timeout: str = "5m"
    handoff_check_seconds: float = 5.0

    @field_validator("payments")
    @classmethod
    def _check_payments(cls, value: str) -> str:
        value = value.strip().lower()
        if value == "paypal":
            raise ValueError("PAYMENTS=paypal is not supported yet: use sandbox or stripe")
        if value not in PAYMENT_PROVIDERS:
            raise ValueError(f"PAYMENTS must be one of {', '.join(PAYMENT_PROVIDERS)}, not {value!r}")
        return value

    @model_validator(mode="after")
    def _check_stripe(self) -> Settings:
        if self.payments == "stripe" and not (self.stripe_secret_key and self.stripe_webhook_secret):
            raise ValueError("PAYMENTS=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
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
