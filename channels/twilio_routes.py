"""Litestar routes for Twilio: POST /twilio/sms and POST /twilio/status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, Router, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from channels.twilio import PROVIDER, TwilioChannel, status_update, twiml
from textdesk import tasks
from textdesk.errors import SignatureError
from textdesk.pipeline import Inbound, OutboundView, TurnResult

__all__ = ["answer_in_twiml", "replies_for_twiml", "twilio_router", "verified_form"]

log = logging.getLogger("textdesk.channels.twilio")
_XML = "application/xml"


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    try:
        form = await request.form()
    except HTTPException:
        raise  # 413 for an oversized body stays a 413
    except Exception:  # an unparseable body is treated as an empty form; the signature check decides
        return {}
    return {k: str(v) for k, v in form.items()}


def _forbidden(reason: str) -> Response[str]:
    log.warning("twilio.forbidden", extra={"reason": reason})
    return Response("forbidden", status_code=403, media_type="text/plain")


async def verified_form(
    request: Request[Any, Any, Any], channel: TwilioChannel, path: str
) -> dict[str, str] | Response[str]:
    """The webhook's form once its signature and account are checked; a 403 otherwise."""
    params = await _form(request)
    try:
        channel.verify(path, request.url.query, params, request.headers.get("x-twilio-signature"))
    except SignatureError as exc:
        return _forbidden(str(exc))
    if not channel.account_ok(params):
        return _forbidden("AccountSid does not match")
    # Some carriers turn the GSM "@" into NUL; PostgreSQL text cannot hold it. Stripped only
    # after the signature check, which covers the values exactly as Twilio sent them.
    return {k: v.replace("\x00", "") for k, v in params.items()}


async def replies_for_twiml(services: Any, result: TurnResult) -> list[OutboundView]:
    """The replies this webhook answer carries. A retry gets the first answer again, plus any reply
    that never left (its first answer was lost after the turn committed). Claims are atomic, so
    nothing goes out twice; consent is re-checked as each reply is claimed."""
    queued = [r.id for r in result.replies if r.status == "queued"]
    claimed = set(await services.dispatcher.claim_for_twiml(queued))
    again = [r for r in result.replies if result.duplicate and r.delivery == "twiml"]
    return again + [r for r in result.replies if r.id in claimed]


async def answer_in_twiml(services: Any, channel: TwilioChannel, inbound: Inbound) -> Response[str]:
    """Run the turn within the channel's budget and answer in TwiML. A turn that outlives the
    budget gets an empty answer now; its replies follow over REST when it ends."""
    turn = asyncio.ensure_future(services.pipeline.handle(inbound))
    try:
        budget = channel.turn_budget(services.settings.turn_budget_s)
        result = await asyncio.wait_for(asyncio.shield(turn), timeout=budget)
    except TimeoutError:
        tasks.spawn(_send_when_done(services, turn))
        return Response(twiml([]), media_type=_XML)
    if result.route == "invalid":
        return Response(twiml([]), media_type=_XML)
    out = await replies_for_twiml(services, result)
    urls: list[str | None] = [channel.status_url(r.id) for r in out]
    return Response(twiml([r.body for r in out], urls), media_type=_XML)


async def _send_when_done(services: Any, turn: asyncio.Future[TurnResult]) -> None:
    try:
        result = await turn
    except Exception:
        log.exception("turn.failed_after_timeout")
        return
    for r in result.replies:
        if r.status == "queued":
            await services.dispatcher.send(r.id)


@post("/sms", status_code=200)
async def sms_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    services = state.services
    channel: TwilioChannel = services.channels[PROVIDER]
    params = await verified_form(request, channel, "/twilio/sms")
    if isinstance(params, Response):
        return params
    sender = params.get("From", "")
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sender or not sid or len(sid) > 64 or not sid.isalnum():
        log.warning("twilio.sms.missing_fields", extra={"has_from": bool(sender), "has_sid": bool(sid)})
        return Response("From and MessageSid are required", status_code=400, media_type="text/plain")
    body, to = params.get("Body", ""), params.get("To")
    inbound = Inbound(sender=sender, body=body, provider_message_id=sid, to=to, provider=PROVIDER)
    return await answer_in_twiml(services, channel, inbound)


@post("/status", status_code=200)
async def status_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Delivery callbacks for SMS and WhatsApp alike (both are Twilio messages)."""
    services = state.services
    params = await verified_form(request, services.channels[PROVIDER], "/twilio/status")
    if isinstance(params, Response):
        return params
    raw_id = request.query_params.get("m")
    update = status_update(params, int(raw_id) if raw_id and raw_id.isdigit() else None)
    known = update is not None and await services.dispatcher.apply_status(update)
    if not known:
        log.info("twilio.status.unknown_message", extra={"sid": params.get("MessageSid")})
    return Response("", status_code=204 if known else 200, media_type="text/plain")


twilio_router = Router(path="/twilio", route_handlers=[sms_webhook, status_webhook])
