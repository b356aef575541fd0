"""The policy gate on its own: what each purpose needs on each channel, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.delivery.policy import (
    CART_REMINDER,
    MARKETING,
    ORDER_UPDATE,
    POLICY,
    REQUESTED,
    Policy,
    Recipient,
    choose_channel,
)

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York: outside quiet hours
INSIDE = NOW - timedelta(hours=2)  # the shopper wrote two hours ago
OUTSIDE = NOW - timedelta(days=2)
US, UK = "+14155550100", "+447700900100"
ADDRESS = {"whatsapp": US, "sms": US, "messenger": "PSID-1", "web": "session-1"}


def who(channel: str, consent: bool | None = None, last: datetime | None = INSIDE, **more) -> Recipient:
    return Recipient(
        "c1", channel, more.pop("address", ADDRESS[channel]), consent=consent, last_inbound_at=last, **more
    )


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(
        Settings(_env_file=None, default_timezone="America/New_York", quiet_hours="21:00-08:00", marketing_weekly_cap=2)
    )


@pytest.mark.parametrize(
    "purpose, recipient, template, reason, use_template",
    [
        # WhatsApp: a cart reminder inside the window is a service message: no opt-in needed.
        (CART_REMINDER, who("whatsapp"), False, None, False),
        (CART_REMINDER, who("whatsapp", consent=True), False, None, False),
        # Outside it, a marketing template: opt-in, a template, and not a US number.
        (CART_REMINDER, who("whatsapp", last=OUTSIDE), True, "no_opt_in", False),
        (CART_REMINDER, who("whatsapp", last=None), True, "no_opt_in", False),
        (CART_REMINDER, who("whatsapp", consent=True, last=OUTSIDE), False, "outside_window_no_template", False),
        (CART_REMINDER, who("whatsapp", consent=True, last=OUTSIDE), True, "marketing_template_us", False),
        (CART_REMINDER, who("whatsapp", consent=True, last=OUTSIDE, address=UK), True, None, True),
        # Messenger: inside the window any content; outside it no tag carries a cart reminder.
        (CART_REMINDER, who("messenger"), False, None, False),
        (CART_REMINDER, who("messenger", consent=True, last=OUTSIDE), True, "outside_window", False),
        # SMS: consent always (TCPA); no window.
        (CART_REMINDER, who("sms"), False, "no_opt_in", False),
        (CART_REMINDER, who("sms", consent=True, last=OUTSIDE), False, None, False),
        (CART_REMINDER, who("sms", consent=True, sms_opted_out=True), False, "opted_out", False),
        # Nobody reads the web chat after leaving it.
        (CART_REMINDER, who("web", consent=True), False, "no_reachable_channel", False),
        # An opt-out anywhere stops reminders everywhere.
        (CART_REMINDER, who("whatsapp", consent=False), False, "opted_out", False),
        (CART_REMINDER, who("messenger", consent=False), False, "opted_out", False),
        # Campaigns: opt-in on WhatsApp and SMS, inside the window as well.
        (MARKETING, who("whatsapp"), False, "no_opt_in", False),
        (MARKETING, who("whatsapp", consent=True), False, None, False),
        (MARKETING, who("whatsapp", consent=True, last=OUTSIDE), True, "marketing_template_us", False),
        (MARKETING, who("whatsapp", consent=True, last=OUTSIDE, address=UK), True, None, True),
        (MARKETING, who("messenger"), False, None, False),
        (MARKETING, who("messenger", consent=True, last=OUTSIDE), False, "outside_window", False),
        (MARKETING, who("sms"), False, "no_opt_in", False),
        (MARKETING, who("web", consent=True), False, "no_reachable_channel", False),
        # A restock notice the shopper asked for: no opt-in; a utility template outside the window
        # (US numbers too); Messenger has no tag for it; the web chat keeps it for their return.
        (REQUESTED, who("whatsapp"), False, None, False),
        (REQUESTED, who("whatsapp", last=OUTSIDE), True, None, True),
        (REQUESTED, who("whatsapp", last=OUTSIDE), False, "outside_window_no_template", False),
        (REQUESTED, who("messenger", last=OUTSIDE), False, "outside_window", False),
        (REQUESTED, who("sms"), False, None, False),
        (REQUESTED, who("web"), False, None, False),
        (REQUESTED, who("web", consent=False), False, "opted_out", False),
        # Order updates: an opt-out of offers does not stop them; Messenger's POST_PURCHASE_UPDATE tag
        # carries them outside the window; a STOP to our SMS number does.
        (ORDER_UPDATE, who("whatsapp", consent=False), False, None, False),
        (ORDER_UPDATE, who("whatsapp", last=OUTSIDE), True, None, True),
        (ORDER_UPDATE, who("messenger", last=OUTSIDE, consent=False), False, None, False),
        (ORDER_UPDATE, who("sms", consent=False), False, None, False),
        (ORDER_UPDATE, who("sms", sms_opted_out=True), False, "opted_out", False),
        (ORDER_UPDATE, who("web"), False, None, False),
        # No address, erased: nothing, for any purpose.
        (ORDER_UPDATE, who("whatsapp", address=None), False, "no_reachable_channel", False),
        (REQUESTED, who("sms", erased=True), False, "erased", False),
    ],
)
def test_what_each_purpose_needs_on_each_channel(policy, purpose, recipient, template, reason, use_template):
    verdict = policy.check(recipient, purpose, template, NOW)
    assert (verdict.send, verdict.reason, verdict.use_template) == (reason is None, reason, use_template)


@pytest.mark.parametrize(
    "purpose, capped", [(MARKETING, True), (CART_REMINDER, True), (REQUESTED, False), (ORDER_UPDATE, False)]
)
def test_the_weekly_cap_counts_campaigns_and_cart_reminders_only(policy, purpose, capped):
    tired = who("sms", consent=True, recent_marketing=2)
    verdict = policy.check(tired, purpose, False, NOW)
    assert verdict.reason == ("frequency_cap" if capped else None)
    assert policy.check(replace(tired, recent_marketing=1), purpose, False, NOW).send


@pytest.mark.parametrize(
    "purpose, channel, postponed",
    [
        (CART_REMINDER, "whatsapp", True),
        (MARKETING, "sms", True),
        (REQUESTED, "sms", True),
        (ORDER_UPDATE, "messenger", True),
        (REQUESTED, "web", False),
        (ORDER_UPDATE, "web", False),
    ],
)
def test_quiet_hours_postpone_what_buzzes_a_phone(policy, purpose, channel, postponed):
    night = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # 22:00 in New York
    verdict = policy.check(who(channel, consent=True, last=night - timedelta(hours=1)), purpose, False, night)
    assert verdict.send
    assert verdict.not_before == (datetime(2026, 12, 3, 13, 0, tzinfo=UTC) if postponed else None)


@pytest.mark.parametrize(
    "purpose, chosen, used, has_web, expected",
    [
        (REQUESTED, "web", [], True, "web"),  # a web-only shopper: the notice waits in the web chat
        (REQUESTED, "web", ["whatsapp"], True, "whatsapp"),  # linked to WhatsApp: it goes there
        (REQUESTED, None, [], True, "web"),
        (REQUESTED, None, [], False, None),
        (REQUESTED, "sms", ["whatsapp"], True, "sms"),  # the shopper's chosen channel wins
        (ORDER_UPDATE, "web", ["messenger", "sms"], True, "messenger"),
        (MARKETING, "web", ["whatsapp"], True, "web"),  # campaigns do not go looking for a channel
        (CART_REMINDER, None, ["sms"], False, None),
    ],
)
def test_channel_choice(purpose, chosen, used, has_web, expected):
    assert choose_channel(purpose, chosen, used, has_web) == expected


def test_every_purpose_names_known_channels_and_kinds():
    for purpose in POLICY.values():
        assert set(purpose.channels) <= {"whatsapp", "whatsapp_cloud", "sms", "messenger", "web"}
        assert purpose.kind in ("marketing", "update", "post_purchase")
