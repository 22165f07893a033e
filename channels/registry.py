"""Every channel textdesk serves, in one place: the wiring builds them from settings, the web app
mounts their routes, and nothing else needs to know which providers exist."""

from __future__ import annotations

from typing import Any

from litestar import Router

from channels import messagebird, plivo, vonage, webchat
from channels.base import Sender
from channels.twilio import TwilioChannel
from channels.twilio_routes import twilio_router
from channels.whatsapp import CHANNEL as WHATSAPP
from channels.whatsapp import WhatsAppSender, whatsapp_router
from textdesk.settings import Settings

__all__ = ["ROUTERS", "WEBHOOK_PREFIXES", "build_channels", "build_senders"]

ROUTERS: list[Router] = [
    twilio_router,
    whatsapp_router,
    vonage.router,
    plivo.router,
    messagebird.router,
    webchat.router,
]
# Provider webhooks and the web chat: no staff session, no CSRF token (each route checks its own
# signature; the web chat its visitor token).
WEBHOOK_PREFIXES: tuple[str, ...] = tuple(f"{r.path}/" for r in ROUTERS)


def build_channels(settings: Settings, twilio: TwilioChannel | None = None) -> dict[str, Any]:
    """Each provider's channel by name. One with no credentials still answers its routes: it
    refuses every request, since no signature can match an empty secret."""
    twilio = twilio or TwilioChannel(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_from,
        settings.public_url,
        validate=settings.validate_signatures,
        api_base=settings.twilio_api_base,
    )
    return {
        twilio.provider: twilio,
        vonage.PROVIDER: vonage.build(settings),
        plivo.PROVIDER: plivo.build(settings),
        messagebird.PROVIDER: messagebird.build(settings),
        webchat.PROVIDER: webchat.WebchatSender(),
    }


def build_senders(settings: Settings, channels: dict[str, Any]) -> dict[tuple[str, str], Sender]:
    """(channel, provider) -> sender. SMS through every provider; WhatsApp through Twilio."""
    senders: dict[tuple[str, str], Sender] = {
        ("sms", name): ch for name, ch in channels.items() if getattr(ch, "channel", None) == "sms"
    }
    senders[(webchat.CHANNEL, webchat.PROVIDER)] = channels[webchat.PROVIDER]
    twilio: TwilioChannel = channels[TwilioChannel.provider]
    whatsapp_from = settings.whatsapp_from or twilio.from_number
    senders[(WHATSAPP, twilio.provider)] = WhatsAppSender(twilio, whatsapp_from)
    return senders
