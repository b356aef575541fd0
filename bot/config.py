"""Settings: every knob of the service, read once from the environment or a `.env` file."""
from __future__ import annotations

import re
from datetime import timedelta

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GRAPH_API_VERSION = "v23.0"


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


class Settings(BaseSettings):
    """Service settings; field names are the lower-case environment variable names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3978
    database_url: str = "sqlite:///data/shop.db"
    public_base_url: str | None = None
    admin_token: SecretStr | None = None
    session_secret: SecretStr | None = None
    log_level: str = "INFO"

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_whatsapp_from: str | None = None
    twilio_sms_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"

    messenger_page_access_token: SecretStr | None = None
    messenger_app_secret: SecretStr | None = None
    messenger_verify_token: SecretStr | None = None
    messenger_page_name: str | None = None
    graph_api_base: str = "https://graph.facebook.com"
    graph_api_version: str = DEFAULT_GRAPH_API_VERSION

    nlu_model: str | None = None
    nlu_threshold: float = 0.25
    nlu_min_similarity: float = 0.4
    nlu_batch_window_ms: float = 4.0
    nlu_batch_max: int = 64

    default_timezone: str = "America/New_York"
    quiet_hours: str = "21:00-08:00"
    cart_reminder_delays: str = "1h,24h"
    currency: str = "USD"
    send_timeout_seconds: float = 10.0
    outbox_retry_base_seconds: float = 1.0
    outbox_max_attempts: int = 8
    link_ttl_minutes: int = 10
    max_message_chars: int = 4000

    handoff_rules: str | None = None
    handoff_hours: str = ""
    handoff_agent_timeout: str = "5m"
    handoff_check_seconds: float = 5.0

    @field_validator("cart_reminder_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        for part in value.split(","):
            parse_duration(part)
        return value

    @field_validator("handoff_agent_timeout")
    @classmethod
    def _check_timeout(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("handoff_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        from bot.handoff import StaffedHours  # the parser lives with the rest of the handoff logic

        StaffedHours.parse(value, "UTC")
        return value

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
