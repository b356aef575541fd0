"""The channels this service speaks, and which of them are on (their credentials set). Adding a
channel is a module in this package and a line in `CHANNEL_CLASSES`."""

from __future__ import annotations

import logging

from bot.channel import ChannelAdapter, register
from bot.config import Settings
from channels.messenger import MessengerChannel
from channels.twilio import SmsChannel, WhatsAppChannel
from channels.web import WebChannel
from channels.whatsapp_cloud import WhatsAppCloudChannel

log = logging.getLogger(__name__)

# Every channel that needs credentials from the settings, in the order links are offered.
CHANNEL_CLASSES = (WhatsAppChannel, WhatsAppCloudChannel, MessengerChannel, SmsChannel)

register(*(cls.profile for cls in CHANNEL_CLASSES), WebChannel.profile)


def enabled(settings: Settings) -> dict[str, ChannelAdapter]:
    """The provider channels whose credentials are set; each one left out says so once. (The web
    chat is always on; the service makes it with its session secret.)"""
    channels: dict[str, ChannelAdapter] = {}
    for cls in CHANNEL_CLASSES:
        missing = cls.missing_settings(settings)
        if missing is None:
            channels[cls.name] = cls(settings)
        else:
            log.info("channel off: credentials not set", extra={"channel": cls.name, "missing": missing})
    return channels
