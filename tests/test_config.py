"""Settings: `.env.example` stays in step with `Settings`, and values parse."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Settings, parse_duration

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting():
    names = {
        line.split("=", 1)[0].strip().lower()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names == set(Settings.model_fields)


def test_the_readme_names_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme)
    assert missing == [], missing


def test_env_example_loads_as_settings():
    settings = Settings(_env_file=ROOT / ".env.example")
    assert settings.port == 3978 and settings.reminder_delays == [timedelta(hours=1), timedelta(hours=24)]
    assert settings.base_url == "http://127.0.0.1:3978"


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("90", 90), ("15m", 900), ("1h", 3600), ("2d", 172800)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_bad_duration_is_refused():
    with pytest.raises(ValueError):
        Settings(_env_file=None, cart_reminder_delays="soon")


def test_currency_is_an_iso_code():
    assert Settings(_env_file=None, currency=" eur ").currency == "EUR"
    with pytest.raises(ValueError):
        Settings(_env_file=None, currency="dollars")


def test_payments_are_the_sandbox_unless_stripe_or_paypal_is_chosen_with_its_keys():
    assert Settings(_env_file=None).payments == "sandbox"
    assert (
        Settings(
            _env_file=None, payments="Stripe", stripe_secret_key="sk_test_x", stripe_webhook_secret="whsec_x"
        ).payments
        == "stripe"
    )
    with pytest.raises(ValueError, match="needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET"):
        Settings(_env_file=None, payments="stripe")
    with pytest.raises(ValueError, match="needs PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET, PAYPAL_WEBHOOK_ID"):
        Settings(_env_file=None, payments="paypal")
    with pytest.raises(ValueError, match="needs PAYPAL_WEBHOOK_ID"):
        Settings(_env_file=None, payments="paypal", paypal_client_id="id", paypal_client_secret="secret")
    paypal = Settings(
        _env_file=None, payments="PayPal", paypal_client_id="id", paypal_client_secret="s", paypal_webhook_id="WH-1"
    )
    assert paypal.payments == "paypal" and paypal.paypal_api_base == "https://api-m.paypal.com"
    with pytest.raises(ValueError, match="PAYMENTS must be one of"):
        Settings(_env_file=None, payments="cash")
