"""The shopper's language, money in CURRENCY and dates, as the shopper's locale writes them."""

from __future__ import annotations

from datetime import date

import pytest

from bot.i18n import EN, ZH, date_text, language_of, money, text_in, weekday_name


@pytest.mark.parametrize(
    "tag, language",
    [
        ("zh-TW", ZH),
        ("zh", ZH),
        ("ZH-hant", ZH),
        ("en", EN),
        ("en-GB", EN),
        ("fr", EN),
        ("", EN),
        (None, EN),
    ],
)
def test_language_of(tag, language):
    assert language_of(tag) == language


@pytest.mark.parametrize(
    "cents, language, currency, shown",
    [
        (2400, EN, "USD", "$24.00"),
        (123456, EN, "USD", "$1,234.56"),
        (2400, ZH, "USD", "US$24.00"),
        (2400, EN, "EUR", "€24.00"),
        (2400, EN, "TWD", "NT$24.00"),
        (2400, ZH, "TWD", "$24.00"),
    ],
)
def test_money(cents, language, currency, shown):
    assert money(cents, language, currency) == shown


def test_dates_and_days():
    assert date_text(EN, date(2026, 12, 10)) == "Thu 10 Dec"
    assert date_text(ZH, date(2026, 12, 10)) == "12月10日（週四）"
    assert [weekday_name(EN, date(2026, 12, 14)), weekday_name(ZH, date(2026, 12, 20))] == ["Monday", "週日"]


def test_a_text_falls_back_to_english_and_an_unknown_key_is_refused():
    assert text_in("fr", "btn.yes") == "Yes" and text_in("zh-TW", "btn.yes") == "是"
    assert text_in(ZH, "privacy.language", language="英文") == "• 語言：英文"  # a value may be called language
    with pytest.raises(KeyError):
        text_in(EN, "no.such.text")
