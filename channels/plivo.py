"""Plivo SMS channel: V3-signed webhooks in, replies out over the Message API, delivery reports.

Only this module knows Plivo's form fields, signatures and error codes.

Inbound (``POST /plivo/sms``, the Plivo application's message URL): Plivo posts ``From``,
``To`` (E.164 digits without the "+"), ``Text``, ``Type`` and ``MessageUUID``. The webhook
never answers in Plivo XML: the turn's replies leave through the Message API, so Plivo numbers
them and each reply's delivery report finds its row (``?m=<message id>`` on the report URL).

Signatures: each request carries ``X-Plivo-Signature-V3`` (signed with the auth token of the
account or subaccount that owns the number), ``X-Plivo-Signature-Ma-V3`` (the main account's
token) and ``X-Plivo-Signature-V3-Nonce``. Per Plivo's V3 scheme the signed string is the URL
(scheme, host, port, sorted query), the POST parameters sorted by name as name+value pairs, and
the nonce; HMAC-SHA256 with the auth token, base64 (docs.plivo.com/docs/voice/concepts/
signature-validation; the separators are the official SDK's ``plivo.utils.signature_v3``, used
here). A header may hold several signatures separated by commas; any one matching is enough.
V3 has no timestamp, so a replayed request is refused by its nonce (``rest_inbound.first_use``).
The older V2 signature covers only the URL and the nonce, not the parameters: not accepted.

STOP (what Plivo documents, docs.plivo.com/docs/messaging/concepts/dnd-service and
support.plivo.com "Can I reply to customers who have opted out?"): Plivo's "Do Not Disturb"
feature is on by default for long codes and toll-free numbers in the US and Canada (short codes
on request to Plivo support). When a destination texts STOP, END or QUIT (case-insensitive,
trailing spaces and newlines allowed; the support pages also list CANCEL, UNSUB and STOP ALL),
Plivo blocks later messages from that Plivo number to it and marks them failed with error code
200; Plivo sends its own confirmation ("You have been unsubscribed ..."), answers HELP/INFO
itself, and lifts the block when the destination texts START or UNSTOP. After a STOP, one
acknowledgement may still be sent, within five minutes. In US 10DLC, an opt-out from one number
of a campaign opts the user out of the campaign's other numbers. textdesk still receives the STOP
and records the opt-out itself; error 200 on a send or a delivery report becomes ``opted_out``,
which the core turns into a carrier opt-out for the contact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import plivo
import requests
from litestar import Request, Response, Router, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from plivo import exceptions as plivo_errors
from plivo.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3

from channels.base import DeliveryError, DeliveryStatus, SendResult, StatusUpdate
from channels.rest_inbound import answer_by_rest, first_use, refuse
from textdesk.errors import SignatureError
from textdesk.pipeline import Inbound
from textdesk.settings import Settings

__all__ = [
    "OPT_OUT_ERROR",
    "PROVIDER",
    "PlivoChannel",
    "build",
    "error_for",
    "router",
    "status_update",
]

log = logging.getLogger("textdesk.channels.plivo")

PROVIDER = "plivo"
DEFAULT_API_BASE = "https://api.plivo.com"
# Plivo error 200: "Source number blocked by STOP from destination number".
OPT_OUT_ERROR = 200
# How long the inbound webhook waits for the turn before its 200: the replies go by REST either
# way, so this only spares a fast turn a second hop; Plivo is not kept waiting long.
WEBHOOK_BUDGET_S = 3.0
# V3 signatures carry no timestamp: a nonce is remembered this long (see first_use).
NONCE_WINDOW = dt.timedelta(days=2)
SEND_TIMEOUT_S = 10.0

_SIGNATURE_HEADERS = ("x-plivo-signature-v3", "x-plivo-signature-ma-v3")
_NONCE_HEADER = "x-plivo-signature-v3-nonce"
_XML = "application/xml"
_EMPTY_XML = '<?xml version="1.0" encoding="utf-8"?><Response></Response>'
_UUID = re.compile(r"[0-9A-Za-z-]{1,64}")

# Plivo's SMS error codes in textdesk's words. Sources: docs.plivo.com messaging error codes and
# Plivo's "Introducing SMS error codes" (10-1000, 201); 900 from support.plivo.com; 300, 420 and
# 910 as Plivo's former API reference lists them.
_ERRORS: dict[int, tuple[DeliveryError, str]] = {
    10: ("rejected", "the carrier rejected the message as invalid (blank or too long)"),
    20: ("unreachable", "network error at the carrier (temporary)"),
    30: ("carrier_filtered", "blocked by a carrier spam filter"),
    40: ("rejected", "the sending number is invalid, not SMS-enabled or not on this Plivo account"),
    50: ("invalid_number", "not a valid SMS number (badly formatted, not SMS-enabled or a landline)"),
    60: ("carrier_filtered", "the carrier detected a message loop between the two numbers"),
    70: ("invalid_number", "the destination number is permanently unavailable"),
    80: ("unreachable", "the destination is temporarily unavailable (phone off or out of coverage)"),
    90: ("unreachable", "no route available to the destination"),
    100: ("carrier_filtered", "prohibited by the carrier"),
    110: ("rejected", "message too long"),
    OPT_OUT_ERROR: ("opted_out", "the recipient replied STOP to this number"),
    201: ("rejected", "US toll-free numbers cannot text Canadian numbers"),
    300: ("unknown", "Plivo failed to dispatch the message"),
    420: ("unreachable", "the message expired before it could be delivered"),
    900: ("rejected", "insufficient credit on the Plivo account"),
    910: ("auth", "the Plivo account is disabled"),
    1000: ("unknown", "unknown error at Plivo or the carrier"),
}
# Plivo's message states in the outbox's (receipts never move a status back); "received" is an
# inbound message's state and is not tracked.
_STATUSES: dict[str, DeliveryStatus] = {
    "queued": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "rejected": "failed",
    "read": "read",
}


def error_for(code: int | None, fallback: str | None = None) -> tuple[DeliveryError | None, str | None]:
    """A Plivo error code in textdesk's words; (None, fallback) for none or 0 ("000" = delivered)."""
    if not code:
        return None, fallback
    return _ERRORS.get(code, ("unknown", fallback or f"Plivo error {code}"))


def status_update(params: Mapping[str, str], message_id: int | None) -> StatusUpdate | None:
    """A Plivo delivery report in textdesk's vocabulary; None for a state we don't track."""
    status = _STATUSES.get((params.get("Status") or "").strip().lower())
    if status is None:
        return None
    raw = (params.get("ErrorCode") or "").strip()
    code = int(raw) if raw.isdigit() else None
    error, detail = error_for(code)
    uuid = params.get("MessageUUID") or None
    return StatusUpdate(PROVIDER, uuid, status, message_id, error, code or None, detail)


def e164(number: str) -> str:
    """Plivo writes numbers as E.164 digits without the "+"; textdesk stores them with it."""
    text = number.strip()
    return "+" + text if text.isdigit() else text


def _plivo_number(number: str) -> str:
    # Plivo's src/dst are country code + number; a leading "+" is dropped, a sender ID kept.
    return number.strip().removeprefix("+")


class _RestClient(plivo.RestClient):  # type: ignore[misc]  # the SDK ships no type information
    """The SDK's client, pointed at another API host (a local fake in tests and benchmarks): the
    SDK resets its base URI on every request, so the prepared request's URL is rewritten."""

    def __init__(self, auth_id: str, auth_token: str, api_base: str, timeout: float) -> None:
        super().__init__(auth_id, auth_token, timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self.last = threading.local()  # the HTTP status of this thread's last response
        self.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self.last.status = response.status_code

    def create_request(self, method: str, path: Any = None, data: Any = None, **kwargs: Any) -> Any:
        prepared = super().create_request(method, path, data, **kwargs)
        if self.api_base != DEFAULT_API_BASE and prepared.url.startswith(DEFAULT_API_BASE + "/"):
            prepared.url = self.api_base + prepared.url[len(DEFAULT_API_BASE) :]
        return prepared


class PlivoChannel:
    """SMS over Plivo: signed webhooks and the Message API."""

    provider = PROVIDER
    channel = "sms"

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        from_number: str,
        public_url: str,
        api_base: str = DEFAULT_API_BASE,
        validate: bool = True,
        webhook_budget_s: float = WEBHOOK_BUDGET_S,
        timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self.auth_id, self.from_number = auth_id, from_number
        self._token = auth_token
        self.public_url = public_url.rstrip("/")
        self.validate_signatures = validate
        self.webhook_budget_s = float(webhook_budget_s)
        self.client: _RestClient | None = None
        # The SDK reads PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN from the environment when either is empty;
        # textdesk takes settings only, so without both there is no client and sends fail "auth".
        if auth_id and auth_token:
            try:
                self.client = _RestClient(auth_id, auth_token, api_base, timeout_s)
            except plivo_errors.AuthenticationError as exc:  # not an MA/SA id: fails every send
                log.error("plivo.bad_auth_id", extra={"reason": str(exc)})

    # Webhooks -----------------------------------------------------------------------------

    def url_for(self, path: str, query: str = "") -> str:
        """The URL Plivo signed: the public URL (behind any proxy) plus path and query."""
        base = urlsplit(self.public_url)
        return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, query, ""))

    def status_url(self, message_id: int) -> str:
        return self.url_for("/plivo/status", f"m={message_id}")

    def verify(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | list[str]],
        signature: str | None,
        nonce: str | None,
    ) -> None:
        """Raise SignatureError unless one of the comma-separated V3 signatures in ``signature``
        is Plivo's for this method, URL (with its query), parameters and nonce."""
        if not self.validate_signatures:
            return
        if not self._token:  # an HMAC with an empty key is anyone's to compute
            raise SignatureError("plivo auth token is not configured")
        if not signature:
            raise SignatureError("missing X-Plivo-Signature-V3")
        if not nonce:
            raise SignatureError("missing X-Plivo-Signature-V3-Nonce")
        if method.upper() == "GET":
            signed = construct_get_url(url, dict(params))
        else:
            signed = construct_post_url(url, dict(params))
        expected: bytes = get_signature_v3(self._token.encode(), signed.decode("utf-8"), nonce)
        # Constant-time comparisons (the SDK's own check is a plain ``in``), on bytes: a header
        # may hold anything, and compare_digest refuses non-ASCII str.
        given = signature.encode("utf-8", "replace").split(b",")
        if not any(hmac.compare_digest(expected, s.strip()) for s in given):
            raise SignatureError("invalid X-Plivo-Signature-V3")

    # Sending ------------------------------------------------------------------------------

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        """Send an SMS through the Message API, from the number the customer wrote to (``from_``)
        or the configured one; its delivery reports carry our message id."""
        src = _plivo_number(from_ or self.from_number)
        if self.client is None or not src:
            return SendResult(False, error="auth", detail="plivo is not configured")
        dst = _plivo_number(to)
        if not dst.isdigit():  # "<" separates several destinations: never more than one
            return SendResult(False, error="invalid_number", detail="not a phone number")
        return await asyncio.to_thread(self._create, src, dst, body, self.status_url(message_id))

    def _create(self, src: str, dst: str, text: str, url: str) -> SendResult:
        """One POST /Message/ (the SDK is synchronous; runs in a worker thread). The SDK does not
        retry message sends; the outbox does, for the results marked retryable."""
        assert self.client is not None
        self.client.last.status = None
        try:
            resp = self.client.messages.create(src=src, dst=dst, text=text, url=url, method="POST")
        except requests.RequestException as exc:  # connection refused, timeout, TLS
            return SendResult(False, error="unreachable", detail=type(exc).__name__, retryable=True)
        except plivo_errors.PlivoRestError as exc:
            return self._failed(exc, getattr(self.client.last, "status", None))
        uuids = list(getattr(resp, "message_uuid", None) or [])
        if not uuids:
            return SendResult(False, error="unknown", detail="Plivo returned no message_uuid")
        return SendResult(True, provider_message_id=str(uuids[0]), status="sent")

    def _failed(self, exc: Exception, http_status: int | None) -> SendResult:
        words = str(exc)[:200] or type(exc).__name__
        log.warning("plivo.send_failed", extra={"status": http_status, "error": type(exc).__name__})
        if http_status == 429:
            return SendResult(False, error="rate_limited", detail=words, retryable=True)
        if http_status is not None and http_status >= 500:
            return SendResult(False, error="unreachable", detail=words, retryable=True)
        if http_status in (401, 404) or isinstance(exc, plivo_errors.AuthenticationError):
            return SendResult(False, error="auth", detail=words)  # 404: no such account id
        # Plivo accepts a send to an opted-out number and fails it later with error 200 (a receipt).
        if http_status == 400 and re.search(r"\bdst\b|destination", words.lower()):
            return SendResult(False, error="invalid_number", detail=words)
        # 400 on anything else, 403 (geo permissions), 405/409/422, and the SDK's own checks
        # before any request: the same text would fail again.
        return SendResult(False, error="rejected", detail=words)

    async def aclose(self) -> None:
        if self.client is not None:
            self.client.session.close()
            self.client.multipart_session.close()


def build(settings: Settings, **_: Any) -> PlivoChannel:
    return PlivoChannel(
        settings.plivo_auth_id,
        settings.plivo_auth_token.get_secret_value(),
        settings.plivo_from,
        settings.public_url,
        api_base=settings.plivo_api_base,
        validate=settings.validate_signatures,
        webhook_budget_s=min(WEBHOOK_BUDGET_S, settings.turn_budget_s),
    )


# Routes ---------------------------------------------------------------------------------------


async def _form(request: Request[Any, Any, Any]) -> dict[str, str | list[str]]:
    """The POST parameters exactly as sent (a repeated name keeps every value): the signature
    covers them, and the query string, signed as part of the URL, is kept out."""
    try:
        form = await request.form()
    except HTTPException:
        raise  # 413 for an oversized body stays a 413
    except Exception:  # an unparseable body is an empty form; the signature check decides
        return {}
    params: dict[str, str | list[str]] = {}
    for key, value in form.multi_items():
        text = str(value)
        old = params.get(key)
        params[key] = text if old is None else [*([old] if isinstance(old, str) else old), text]
    return params


async def _verified(
    request: Request[Any, Any, Any], services: Any, path: str
) -> dict[str, str] | Response[str]:
    """The webhook's parameters once its signature and nonce are checked; a 403 otherwise."""
    channel: PlivoChannel = services.channels[PROVIDER]
    params = await _form(request)
    signature = ",".join(h for name in _SIGNATURE_HEADERS if (h := request.headers.get(name)))
    nonce = request.headers.get(_NONCE_HEADER)
    try:
        channel.verify(request.method, channel.url_for(path, request.url.query), params, signature, nonce)
    except SignatureError as exc:
        return refuse(PROVIDER, str(exc))
    if channel.validate_signatures and not await first_use(services, PROVIDER, nonce or "", NONCE_WINDOW):
        return refuse(PROVIDER, "replayed nonce")
    # Some carriers turn the GSM "@" into NUL; PostgreSQL text cannot hold it. Stripped only
    # after the signature check, which covers the values exactly as Plivo sent them.
    return {k: (v if isinstance(v, str) else v[-1]).replace("\x00", "") for k, v in params.items()}


@post("/sms", status_code=200)
async def sms_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    services = state.services
    channel: PlivoChannel = services.channels[PROVIDER]
    params = await _verified(request, services, "/plivo/sms")
    if isinstance(params, Response):
        return params
    sender, uuid = params.get("From", "").strip(), params.get("MessageUUID", "").strip()
    if not sender or not uuid or not _UUID.fullmatch(uuid):
        log.warning("plivo.sms.missing_fields", extra={"has_from": bool(sender), "has_uuid": bool(uuid)})
        return Response("From and MessageUUID are required", status_code=400, media_type="text/plain")
    kind = params.get("Type", "sms").strip().lower() or "sms"
    if kind not in ("sms", "mms"):  # e.g. WhatsApp on the same number: not an SMS conversation
        log.info("plivo.sms.ignored_type", extra={"type": kind})
        return Response(_EMPTY_XML, media_type=_XML)
    to = params.get("To")
    inbound = Inbound(
        sender=e164(sender),
        body=params.get("Text", ""),
        provider_message_id=uuid,
        channel="sms",
        to=e164(to) if to else None,
        provider=PROVIDER,
    )
    await answer_by_rest(services, inbound, channel.webhook_budget_s)
    return Response(_EMPTY_XML, media_type=_XML)  # no <Message>: replies leave by REST


@post("/status", status_code=200)
async def status_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Delivery reports for the messages textdesk sent (the ``url`` of each send)."""
    services = state.services
    params = await _verified(request, services, "/plivo/status")
    if isinstance(params, Response):
        return params
    raw_id = request.query_params.get("m")
    update = status_update(params, int(raw_id) if raw_id and raw_id.isdigit() else None)
    known = update is not None and await services.dispatcher.apply_status(update)
    if not known:
        log.info("plivo.status.unknown_message", extra={"uuid": params.get("MessageUUID")})
    # 200 either way: a report for a message we don't know will not become known by a retry.
    return Response("", status_code=200, media_type="text/plain")


router = Router(path="/plivo", route_handlers=[sms_webhook, status_webhook])
