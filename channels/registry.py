"""The channels this service speaks: each channel class, and which of them are on (their
credentials set). Adding a channel is a module in this package and a line here."""
from __future__ import annotations

import logging

from bot.channel import ChannelAdapter
from bot.config import Settings
from channels.messenger import MessengerChannel
from channels.twilio import TwilioChannel

log = logging.getLogger(__name__)


def enabled(settings: Settings) -> dict[str, ChannelAdapter]:
    """The channels whose credentials are set; each one left out says so once."""
    channels: dict[str, ChannelAdapter] = {}
    twilio_ready = settings.twilio_account_sid and settings.twilio_auth_token
    for name, sender in (("whatsapp", settings.twilio_whatsapp_from), ("sms", settings.twilio_sms_from)):
        if twilio_ready and sender:
            channels[name] = TwilioChannel(name, settings)
        else:
            missing = "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN" if not twilio_ready else f"TWILIO_{name.upper()}_FROM"
            log.info("channel off: credentials not set", extra={"channel": name, "missing": missing})
    if settings.messenger_page_access_token and settings.messenger_app_secret and settings.messenger_verify_token:
        channels["messenger"] = MessengerChannel(settings)
    else:
        log.info("channel off: credentials not set", extra={
            "channel": "messenger",
            "missing": "MESSENGER_PAGE_ACCESS_TOKEN/MESSENGER_APP_SECRET/MESSENGER_VERIFY_TOKEN"})
    return channels
