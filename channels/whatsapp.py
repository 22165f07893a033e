"""WhatsApp through Twilio: a second channel on the same pipeline.

Twilio delivers WhatsApp messages with the SMS webhook's form fields and signature; only the
addresses differ (``From=whatsapp:+14155550100``). This module strips the prefix so the contact
is stored under their E.164 number, hands the turn to the same pipeline with
``channel="whatsapp"``, and answers in TwiML exactly like the SMS webhook.

WhatsApp's 24-hour customer-service window: for 24 h after the customer's last message the
business may send free-form messages; outside it only pre-approved templates (Twilio Content
API, ``ContentSid`` ``HX...``) may be sent. Replies in the webhook answer are inside the window
by construction; for messages textdesk starts, ``plan_outbound`` decides and raises
``TemplateRequired`` rather than letting Twilio fail with error 63016.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from litestar import Request, Response, Router, post
from litestar.datastructures import State

from channels.base import SendResult
from channels.twilio import PROVIDER, TwilioChannel
from channels.twilio_routes import answer_in_twiml, verified_form
from textdesk.errors import ChannelError
from textdesk.pipeline import Inbound

__all__ = [
    "CHANNEL",
    "PREFIX",
    "SERVICE_WINDOW",
    "WINDOW_CLOSED_ERROR",
    "OutboundPlan",
    "Template",
    "TemplateRequired",
    "WhatsAppSender",
    "address",
    "in_service_window",
    "plan_outbound",
    "strip_address",
    "whatsapp_router",
]

log = logging.getLogger("textdesk.channels.whatsapp")

CHANNEL = "whatsapp"
PREFIX = "whatsapp:"
SERVICE_WINDOW = dt.timedelta(hours=24)
WINDOW_CLOSED_ERROR = 63016  # Twilio: free-form message outside the allowed window


class TemplateRequired(ChannelError):
    """Outside the 24-hour window: only an approved template (``template_sid``) may be sent."""


# -- addresses and the service window (pure) --------------------------------------------------------


def strip_address(raw: str) -> str:
    """``whatsapp:+14155550100`` -> ``+14155550100``; ChannelError for a non-WhatsApp address."""
    text = (raw or "").strip()
    if not text.lower().startswith(PREFIX):
        raise ChannelError(f"not a WhatsApp address: {raw!r}")
    number = text[len(PREFIX) :].strip()
    if not number:
        raise ChannelError("empty WhatsApp address")
    return number


def address(e164: str) -> str:
    return e164 if e164.lower().startswith(PREFIX) else PREFIX + e164


def in_service_window(last_inbound_at: dt.datetime | None, now: dt.datetime) -> bool:
    """True while free-form messages may be sent: under 24 h since the customer last wrote."""
    if last_inbound_at is None:
        return False
    if last_inbound_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("in_service_window needs timezone-aware datetimes")
    return now - last_inbound_at < SERVICE_WINDOW


@dataclass(frozen=True)
class Template:
    """A pre-approved WhatsApp template in Twilio's Content API (``HX`` + 32 hex)."""

    sid: str
    variables: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sid.startswith("HX"):
            raise ValueError(f"a template_sid is a Twilio Content SID (HX...), got {self.sid!r}")


@dataclass(frozen=True)
class OutboundPlan:
    mode: Literal["session", "template"]
    body: str | None = None
    template: Template | None = None


def plan_outbound(
    body: str, *, last_inbound_at: dt.datetime | None, now: dt.datetime, template: Template | None = None
) -> OutboundPlan:
    """How a message textdesk starts may go out: free-form inside the window, else the template."""
    if in_service_window(last_inbound_at, now):
        return OutboundPlan("session", body=body)
    if template is None:
        raise TemplateRequired("outside the 24-hour WhatsApp window a template_sid is required")
    return OutboundPlan("template", template=template)


# -- sending ------------------------------------------------------------------------------------------


class WhatsAppSender:
    """Sends over Twilio's Messages API with ``whatsapp:`` addresses; a ``channels.base.Sender``
    (``send`` is a free-form session message: the caller has checked the window)."""

    provider = PROVIDER

    def __init__(self, twilio: TwilioChannel, from_number: str) -> None:
        self.twilio = twilio
        self.from_address = address(from_number)

    async def _create(
        self, to: str, message_id: int | None, from_: str | None = None, **kw: Any
    ) -> SendResult:
        callback = self.twilio.status_url(message_id) if message_id is not None else None
        sender = address(from_) if from_ else self.from_address
        return await self.twilio.create(address(to), sender, callback, **kw)

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        return await self._create(to, message_id, from_, body=body)

    async def send_template(self, to: str, template: Template, message_id: int | None = None) -> SendResult:
        return await self._create(
            to,
            message_id,
            content_sid=template.sid,
            content_variables=json.dumps(dict(template.variables), sort_keys=True),
        )

    async def send_planned(self, to: str, plan: OutboundPlan, message_id: int | None = None) -> SendResult:
        if plan.mode == "template" and plan.template is not None:
            return await self.send_template(to, plan.template, message_id)
        return await self._create(to, message_id, body=plan.body or "")


# -- webhook ------------------------------------------------------------------------------------------


@post("/sms", status_code=200)
async def whatsapp_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    services = state.services
    twilio: TwilioChannel = services.channels[PROVIDER]
    params = await verified_form(request, twilio, "/whatsapp/sms")
    if isinstance(params, Response):
        return params
    sid = params.get("MessageSid") or params.get("SmsSid")
    try:
        sender = strip_address(params.get("From", ""))
        ours = strip_address(params.get("To", "")) if params.get("To") else None
    except ChannelError as exc:
        log.warning("whatsapp.bad_address", extra={"error": str(exc)})
        return Response(str(exc), status_code=400, media_type="text/plain")
    if not sid:
        return Response("MessageSid is required", status_code=400, media_type="text/plain")
    inbound = Inbound(
        sender=sender, body=params.get("Body", ""), provider_message_id=sid, channel=CHANNEL, to=ours,
        provider=PROVIDER,
    )
    return await answer_in_twiml(services, twilio, inbound)  # the same claim logic as SMS


whatsapp_router = Router(path="/whatsapp", route_handlers=[whatsapp_webhook])
