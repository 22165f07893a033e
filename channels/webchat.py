"""Web chat: an embeddable widget on the same pipeline, rules, handoff and traces as SMS.

A business page embeds ``<script src="https://<textdesk>/webchat/widget.js" async></script>``.
The widget asks ``POST /webchat/session`` for a visitor token (an HMAC over the visitor id and
its issue time, keyed from the secret key: the web chat's "signature"), posts each message to
``POST /webchat/messages`` and listens on ``GET /webchat/stream`` (server-sent events) for
everything the bot or a person writes, so an agent's reply from the inbox shows up live.
``GET /webchat/messages?after=N`` is the same feed for clients without EventSource.

A visitor is a contact whose address is ``visitor:<id>`` until they leave a number through
``POST /webchat/phone`` with explicit consent, recorded as a consent event; a contact who
already texts that number becomes the same contact (``store.repo.merge_contacts``).

Requests are ``text/plain`` bodies holding JSON so that a cross-origin page needs no CORS
preflight; responses carry ``Access-Control-Allow-Origin`` for ``settings.webchat_origins``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from agent.replies import R
from channels.base import SendResult
from channels.rest_inbound import answer_by_rest
from store import repo
from store.models import Contact, Conversation, Message
from textdesk.phone import VISITOR_PREFIX, InvalidPhone, normalize_phone
from textdesk.pipeline import Inbound
from textdesk.settings import Settings

__all__ = ["CHANNEL", "PROVIDER", "WebchatSender", "router", "visitor_token"]

log = logging.getLogger("textdesk.channels.webchat")

CHANNEL = PROVIDER = "webchat"
WIDGET = Path(__file__).with_name("webchat_widget.js")
TURN_BUDGET_S = 10.0  # the visitor waits on an open request; longer turns answer over the stream
MAX_TEXT = 1600
# Woken on every webchat send: open streams look for new rows (one per event loop).
_Loop = asyncio.AbstractEventLoop
_conditions: weakref.WeakKeyDictionary[_Loop, asyncio.Condition] = weakref.WeakKeyDictionary()


def _changed() -> asyncio.Condition:
    loop = asyncio.get_running_loop()
    cond = _conditions.get(loop)
    if cond is None:
        cond = _conditions[loop] = asyncio.Condition()
    return cond


# -- visitor tokens ------------------------------------------------------------------------------


def _key(settings: Settings) -> bytes:
    return hashlib.sha256(b"textdesk-webchat|" + settings.secret_key.get_secret_value().encode()).digest()


def visitor_token(settings: Settings, visitor_id: str, issued: int | None = None) -> str:
    issued = int(time.time()) if issued is None else issued
    payload = f"{visitor_id}.{issued}"
    sig = hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest()
    return payload + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")


def _visitor(settings: Settings, token: str | None) -> str | None:
    """The visitor id of a valid, unexpired token; None otherwise."""
    if not token or token.count(".") != 2:
        return None
    visitor_id, issued, _ = token.split(".")
    if not issued.isdigit():
        return None
    if not hmac.compare_digest(token, visitor_token(settings, visitor_id, int(issued))):
        return None
    if time.time() - int(issued) > settings.webchat_token_days * 86400:
        return None
    return visitor_id


# -- sending: the stream is the transport ----------------------------------------------------------


class WebchatSender:
    """Hands a message to the visitor's stream. Stored rows are the stream's source, so sending
    is marking the row delivered and waking the streams; a visitor offline reads it on return."""

    provider = PROVIDER

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        changed = _changed()
        async with changed:
            changed.notify_all()
        return SendResult(True, provider_message_id=f"wc{message_id}", status="delivered")

    async def aclose(self) -> None:
        return None


# -- helpers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    visitor_id: str
    data: dict[str, Any]


def _cors(request: Request[Any, Any, Any], response: Response[Any]) -> Response[Any]:
    origin = request.headers.get("origin")
    allowed = request.app.state.services.settings.webchat_origins
    if origin and (origin in allowed or "*" in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


def _json(request: Request[Any, Any, Any], data: Any, status_code: int = 200) -> Response[Any]:
    return _cors(request, Response(data, status_code=status_code, media_type="application/json"))


async def _body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        data = json.loads((await request.body()) or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


async def _authenticated(request: Request[Any, Any, Any]) -> _Call | Response[Any]:
    data = await _body(request)
    settings = request.app.state.services.settings
    token = data.get("token") or request.query_params.get("token")
    visitor_id = _visitor(settings, token if isinstance(token, str) else None)
    if visitor_id is None:
        log.warning("webchat.unauthorized", extra={"has_token": bool(token)})
        return _json(request, {"error": "a valid visitor token is required"}, 401)
    return _Call(visitor_id, data)


async def _contact(services: Any, visitor_id: str, create: bool) -> Contact | None:
    """The visitor's contact (created on their first message)."""
    for _ in range(2):  # a concurrent first message may create it first
        async with services.sessions() as s:
            found: Contact | None = (
                await s.exec(select(Contact).where(Contact.visitor_id == visitor_id))
            ).first()
            if found is not None or not create:
                return found
            contact = Contact(phone=VISITOR_PREFIX + visitor_id, visitor_id=visitor_id)
            s.add(contact)
            try:
                await s.commit()
            except IntegrityError:
                continue
            await s.refresh(contact)
            return contact
    return None


def _who(m: Message) -> str:
    if m.direction == "in":
        return "you"
    return "staff" if m.author.startswith("agent") else "bot"


async def _feed(services: Any, contact_id: int, after: int) -> list[dict[str, Any]]:
    """The visitor's web chat messages after ``after``: theirs, and what reached them."""
    async with services.sessions() as s:
        rows = await s.exec(
            select(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(
                Message.contact_id == contact_id,
                Conversation.channel == CHANNEL,
                col(Message.id) > after,
                or_(col(Message.direction) == "in", col(Message.status).in_(("sent", "delivered", "read"))),
            )
            .order_by(col(Message.id))
            .limit(200)
        )
        return [
            {
                "id": m.id,
                "from": _who(m),
                "text": m.body,
                "at": m.created_at.isoformat(),
            }
            for m in rows
        ]


# -- routes ----------------------------------------------------------------------------------------


@get("/widget.js", media_type="text/javascript")
async def widget() -> Response[bytes]:
    headers = {"Cache-Control": "max-age=300"}
    return Response(WIDGET.read_bytes(), media_type="text/javascript", headers=headers)


@post("/session", status_code=200)
async def start_session(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    """A token for a new visitor, or the same visitor's token renewed."""
    settings = state.services.settings
    data = await _body(request)
    old = data.get("token")
    visitor_id = _visitor(settings, old if isinstance(old, str) else None) or secrets.token_urlsafe(12)
    return _json(
        request,
        {
            "token": visitor_token(settings, visitor_id),
            "business": state.services.business.name,
            "consent_text": R.opt_in_wording(state.services.business),  # shown as recorded
        },
    )


@post("/messages", status_code=200)
async def post_message(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    call = await _authenticated(request)
    if isinstance(call, Response):
        return call
    text, client_id = call.data.get("text"), call.data.get("client_id")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return _json(request, {"error": f"text must be 1 to {MAX_TEXT} characters"}, 400)
    if not isinstance(client_id, str) or not (8 <= len(client_id) <= 64):
        return _json(request, {"error": "client_id (8 to 64 characters) is required"}, 400)
    services = state.services
    contact = await _contact(services, call.visitor_id, create=True)
    if contact is None:
        return _json(request, {"error": "try again"}, 503)
    inbound = Inbound(
        sender=contact.phone,
        body=text,
        # The widget's id for this message: a retried POST is the same message, answered once.
        provider_message_id=f"{call.visitor_id}:{client_id}"[:64],
        channel=CHANNEL,
        provider=PROVIDER,
    )
    # The answer rides back on this response when it is ready in time, else over the stream.
    await answer_by_rest(services, inbound, TURN_BUDGET_S, wait_for_sends=True)
    messages = await _feed(services, contact.id or 0, 0)
    return _json(request, {"accepted": True, "messages": messages[-20:]})


@get("/messages")
async def list_messages(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    call = await _authenticated(request)
    if isinstance(call, Response):
        return call
    after = request.query_params.get("after", "0")
    contact = await _contact(state.services, call.visitor_id, create=False)
    start = int(after) if after.isdigit() else 0
    messages = await _feed(state.services, contact.id or 0, start) if contact else []
    return _json(request, {"messages": messages})


@get("/stream")
async def stream(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    call = await _authenticated(request)
    if isinstance(call, Response):
        return call
    services = state.services
    last = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    after = int(last) if last.isdigit() else 0

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        nonlocal after
        yield ServerSentEventMessage(comment="connected", retry=2000)
        while True:
            contact = await _contact(services, call.visitor_id, create=False)
            for m in await _feed(services, contact.id or 0, after) if contact else []:
                after = m["id"]
                # A named event: litestar sends comments with an empty data line, which the browser
                # dispatches as an unnamed "message" event.
                yield ServerSentEventMessage(data=json.dumps(m), event="chat", id=str(m["id"]))
            try:  # woken by a send in this process; other workers' rows show up within a second
                changed = _changed()
                async with changed:
                    await asyncio.wait_for(changed.wait(), timeout=1.0)
            except TimeoutError:
                yield ServerSentEventMessage(comment="ping")

    response = ServerSentEvent(events())
    return _cors(request, response)


@post("/phone", status_code=200)
async def leave_phone(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    """The visitor leaves a number to go on by SMS. Consent must be explicit: ``consent: true``
    with the wording they were shown, recorded word for word."""
    call = await _authenticated(request)
    if isinstance(call, Response):
        return call
    services = state.services
    if call.data.get("consent") is not True:
        return _json(request, {"error": "consent to text messages must be given explicitly"}, 400)
    try:
        phone = normalize_phone(str(call.data.get("phone", "")))
    except InvalidPhone as exc:
        return _json(request, {"error": str(exc)}, 400)
    visitor = await _contact(services, call.visitor_id, create=True)
    if visitor is None:
        return _json(request, {"error": "try again"}, 503)
    wording = R.opt_in_wording(services.business)
    async with services.sessions() as s:
        visitor = await s.get(Contact, visitor.id)
        assert visitor is not None
        existing = await repo.contact_by_phone(s, phone)
        merged = existing is not None and existing.id != visitor.id
        if existing is None:
            visitor.phone = phone
            contact = visitor
        elif existing.id == visitor.id:
            contact = visitor
        else:
            contact = await repo.merge_contacts(s, existing, visitor)
        now = services.clock.now()
        await repo.set_consent(
            s, contact, "opted_in", "webchat_form", detail=wording, actor="visitor", at=now
        )
        await repo.audit(s, "contact.phone_from_webchat", contact_id=contact.id, at=now, merged=merged)
        s.add(contact)
        await s.commit()
    return _json(request, {"ok": True, "consent": wording})


router = Router(
    path="/webchat",
    route_handlers=[widget, start_session, post_message, list_messages, stream, leave_phone],
)
