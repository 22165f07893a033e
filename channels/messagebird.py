"""MessageBird (now Bird) SMS channel: signed webhooks in, REST out, status reports.

Only this module knows MessageBird's fields, signatures and codes. It speaks the classic SMS
REST API at rest.messagebird.com with httpx (MessageBird keeps no maintained Python SDK).

Webhooks. ``/messagebird/sms`` takes the number's inbound SMS (a Flow Builder "Call HTTP
endpoint with SMS" flow, "Forward to URL"); ``/messagebird/status`` takes the status reports
named in each send's ``reportUrl``. MessageBird documents status reports as GET requests (the
parameters in the query string) and its tutorials set "Forward to URL" to POST (JSON or a form),
so both routes accept GET and POST: the signature covers the URL with its query as well as the
body, whichever carries the parameters.

Signatures. Every webhook carries ``MessageBird-Signature-JWT``: a JWT (HS256, and HS384/HS512
per MessageBird's reference vectors) signed with the account's signing key, whose claims are
``iss`` = "MessageBird", ``nbf``, ``exp`` (a 60 s life in the vectors), ``jti``, ``url_hash``
(hex SHA-256 of the full URL MessageBird called, query included) and ``payload_hash`` (hex
SHA-256 of the raw body, present exactly when the body is not empty). The URL is rebuilt from
``public_url`` (the address MessageBird was given, behind any proxy). ``jti`` is the replay
guard. Sources: messagebird-nodejs lib/webhook-signature-jwt.js and its
lib/testdata/webhook-signature-jwt-reference.json; python-rest-api messagebird/request_validator.py.

STOP. Bird's "Opt-in and opt-out compliance" page (docs.bird.com/applications/enable-channels/
sms/sms-10dlc/opt-in-and-opt-out-compliance) says MessageBird monitors the standard keywords
(case-insensitive; opt-out: stop, arret, stopall, unsubscribe, quit, cancel, end; opt-in: unstop,
start, yes), blocks further messages between that sender and that number until the number opts
in again, and answers HELP itself. The docs do not say whether the STOP text is still forwarded
to the flow's URL, nor which status or error code a send to an opted-out number gets in a
status report, so no code here is read as a carrier opt-out: textdesk's own rules handle STOP
when it arrives, and a blocked send shows up as a failed delivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
from litestar import HttpMethod, Request, Response, Router, route
from litestar.datastructures import State

from channels.base import DeliveryError, DeliveryStatus, SendResult, StatusUpdate
from channels.rest_inbound import answer_by_rest, first_use, form_or_json, refuse
from textdesk.errors import SignatureError
from textdesk.pipeline import Inbound
from textdesk.settings import Settings

__all__ = [
    "PROVIDER",
    "SIGNATURE_HEADER",
    "MessageBirdChannel",
    "build",
    "router",
    "send_result",
    "status_update",
]

log = logging.getLogger("textdesk.channels.messagebird")

PROVIDER = "messagebird"
SIGNATURE_HEADER = "MessageBird-Signature-JWT"
ISSUER = "MessageBird"
_ALGORITHMS = ["HS256", "HS384", "HS512"]  # all three valid in MessageBird's reference vectors
LEEWAY_S = 5.0  # clock skew allowed on nbf/exp (MessageBird's Node SDK uses 5 s, its Python SDK 1 s)
# jtis are remembered this long; a token is refused by its exp long before (60 s life + leeway).
REPLAY_WINDOW = dt.timedelta(minutes=10)
WEBHOOK_BUDGET_S = 3.0  # replies leave by REST anyway; MessageBird only needs its 200 quickly
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # MessageBird ids are 32 hex characters

# Status report statuses in the outbox's words (receipts never move a status back).
_STATUSES: dict[str, DeliveryStatus] = {
    "scheduled": "queued",
    "sent": "sent",
    "buffered": "sent",  # handed to the carrier, which holds it until the handset is reachable
    "delivered": "delivered",
    "expired": "undelivered",  # validity period ran out before delivery
    "delivery_failed": "undelivered",  # a negative delivery report from the carrier
}
_FAILED = frozenset({"expired", "delivery_failed"})

# statusErrorCode in textdesk's words: Bird's "SMS Platform Extended Error Codes" (the codes it
# lists under each status reason). Codes it does not list stay "unknown", with the reason.
_DELIVERY_ERRORS: dict[int, tuple[DeliveryError, str]] = {
    0: ("unknown", "generic delivery failure: the carrier gave no detail"),
    1: ("invalid_number", "unknown subscriber: the number is not an active line"),
    2: ("invalid_number", "unknown subscriber (unknown base station)"),
    3: ("invalid_number", "unknown subscriber (unknown MSC)"),
    5: ("invalid_number", "unidentified subscriber"),
    9: ("invalid_number", "illegal subscriber"),
    10: ("invalid_number", "the line has no bearer service for SMS"),
    11: ("invalid_number", "the line has no SMS teleservice"),
    12: ("invalid_number", "calls to this line are barred"),
    8: ("unreachable", "unavailable subscriber: roaming not allowed"),
    26: ("unreachable", "unavailable subscriber: handover failure"),
    27: ("unreachable", "unavailable subscriber: the handset is absent"),
    31: ("unreachable", "unavailable subscriber: the handset is busy"),
    34: ("unreachable", "system failure in the receiving network"),
}
# statusReason words, for a failure that came without a code Bird documents.
_REASONS: dict[str, tuple[DeliveryError, str]] = {
    "unknown subscriber": ("invalid_number", "unknown subscriber: the number is not an active line"),
    "unavailable subscriber": ("unreachable", "unavailable subscriber: temporarily out of reach"),
    "generic delivery failure": ("unknown", "generic delivery failure: the carrier gave no detail"),
    "dlr not received": ("unreachable", "no delivery report before the message expired"),
    "expired": ("unreachable", "expired before it could be sent on"),
}

# REST API error codes ({"errors": [{"code", "description", "parameter"}]}).
_API_ERRORS: dict[int, tuple[DeliveryError, str]] = {
    2: ("auth", "MessageBird refused the access key"),
    9: ("rejected", "a required parameter is missing"),
    10: ("rejected", "a parameter is not valid"),
    20: ("rejected", "not found"),
    21: ("rejected", "bad request"),
    25: ("rejected", "not enough balance on the MessageBird account"),
    98: ("rejected", "API endpoint not found (check TEXTDESK_MESSAGEBIRD_API_BASE)"),
    99: ("unreachable", "internal error at MessageBird"),
}
_REFUSED: tuple[DeliveryError, str] = ("rejected", "MessageBird refused the message")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same_hash(claim: object, computed: str) -> bool:
    return isinstance(claim, str) and hmac.compare_digest(claim.lower().encode(), computed.encode())


def _is_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _address(raw: str) -> str:
    """A MessageBird msisdn (digits, no "+") as E.164; anything else (an alphanumeric sender) as
    given, for the pipeline's own check to refuse."""
    value = raw.strip()
    digits = value[1:] if value.startswith("+") else value
    return f"+{digits}" if digits.isdigit() else value


def _delivery_error(status: str, code: int | None, reason: str) -> tuple[DeliveryError, str]:
    words = reason.strip()
    if code is not None and code in _DELIVERY_ERRORS:
        kind, detail = _DELIVERY_ERRORS[code]
    elif words.lower() in _REASONS:
        kind, detail = _REASONS[words.lower()]
    elif status == "expired":
        kind, detail = "unreachable", "expired before delivery"
    else:
        kind, detail = "unknown", f"MessageBird error {code}" if code is not None else "delivery failed"
    if words and words.lower() not in detail.lower():
        detail = f"{detail} ({words})"
    return kind, detail


def status_update(params: Mapping[str, str]) -> StatusUpdate | None:
    """A status report in textdesk's vocabulary; None for a status we don't track. Our message
    id comes back in ``reference`` (set on every send), so the report finds its row even before
    MessageBird's id is stored."""
    raw = params.get("status", "").strip().lower()
    status = _STATUSES.get(raw)
    if status is None:
        return None
    reference = params.get("reference", "").strip()
    message_id = int(reference) if reference.isdigit() else None
    error: DeliveryError | None = None
    error_code: int | None = None
    detail: str | None = None
    if raw in _FAILED:
        code = params.get("statusErrorCode", "").strip()
        error_code = int(code) if code.isdigit() else None
        error, detail = _delivery_error(raw, error_code, params.get("statusReason", ""))
    return StatusUpdate(
        provider=PROVIDER,
        provider_message_id=params.get("id") or None,
        status=status,
        message_id=message_id,
        error=error,
        error_code=error_code,
        detail=detail,
    )


def send_result(http_status: int, data: Any) -> SendResult:
    """A REST answer to ``POST /messages`` as a SendResult: 429, 5xx (and code 99) are worth
    another try; everything else is permanent for this text."""
    if http_status in (200, 201):
        mid = data.get("id") if isinstance(data, dict) else None
        status: DeliveryStatus = "sent"
        items = (data.get("recipients") or {}).get("items") if isinstance(data, dict) else None
        if isinstance(items, list) and items and isinstance(items[0], dict):
            status = _STATUSES.get(str(items[0].get("status", "")), "sent")
        if not isinstance(mid, str) or not mid:
            log.warning("messagebird.send.no_id", extra={"http_status": http_status})
            return SendResult(True, status=status)  # its status report still finds us by reference
        return SendResult(True, provider_message_id=mid, status=status)
    errors = data.get("errors") if isinstance(data, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    raw_code = first.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    description = str(first.get("description") or f"HTTP {http_status}")
    parameter = str(first.get("parameter") or "")
    kind, words = _API_ERRORS.get(code if code is not None else -1, _REFUSED)
    if code in (9, 10) and parameter.startswith("recipient"):
        kind, words = "invalid_number", "not a number MessageBird can send to"
    retryable = http_status == 429 or http_status >= 500
    if http_status == 429:
        kind, words = "rate_limited", "too many requests"
    elif http_status >= 500:
        kind = "unreachable"
    elif http_status == 401:
        kind = "auth"
    detail = f"{words}: {description}" + (f" ({parameter})" if parameter else "")
    log.warning("messagebird.send_failed", extra={"http_status": http_status, "code": code})
    return SendResult(False, error=kind, error_code=code, detail=detail, retryable=retryable)


class MessageBirdChannel:
    """SMS over MessageBird's REST API, with JWT-signed webhooks."""

    provider = PROVIDER
    channel = "sms"

    def __init__(
        self,
        access_key: str,
        signing_key: str,
        from_number: str,
        public_url: str,
        *,
        api_base: str = "https://rest.messagebird.com",
        validate: bool = True,
        webhook_budget_s: float = WEBHOOK_BUDGET_S,
        leeway_s: float = LEEWAY_S,
        timeout_s: float = 10.0,
        http: httpx.AsyncClient | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.access_key, self.signing_key, self.from_number = access_key, signing_key, from_number
        self.public_url = public_url.rstrip("/")
        self.api_base = api_base.rstrip("/")
        self.validate_signatures = validate
        self.webhook_budget_s = webhook_budget_s
        self.leeway_s = leeway_s
        # The token's age is checked against wall-clock time (MessageBird's clock, not the
        # business's); injectable so the reference vectors can be checked at their own time.
        self.now = now
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=5.0))

    def url_for(self, path: str, query: str = "") -> str:
        """The URL MessageBird called: the public URL (behind any proxy) plus path and query."""
        base = urlsplit(self.public_url)
        return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, query, ""))

    def verify(self, url: str, body: bytes, token: str | None) -> dict[str, Any]:
        """The token's claims once it proves MessageBird sent exactly this URL and body; raises
        SignatureError otherwise. The caller checks ``jti`` for replays."""
        if not self.validate_signatures:
            return {}
        if not token:
            raise SignatureError(f"missing {SIGNATURE_HEADER}")
        if not self.signing_key:  # an empty HMAC key would verify tokens anyone can make
            raise SignatureError("no MessageBird signing key is configured")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.signing_key,
                algorithms=_ALGORITHMS,
                issuer=ISSUER,
                options={
                    "require": ["iss", "nbf", "exp", "jti", "url_hash"],
                    # Times are checked below against self.now; MessageBird sends no iat.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:  # InvalidKeyError is not an InvalidTokenError
            raise SignatureError(f"invalid {SIGNATURE_HEADER}: {exc}") from exc
        now, nbf, exp = self.now(), claims["nbf"], claims["exp"]
        if not _is_time(nbf) or not _is_time(exp):
            raise SignatureError("nbf and exp must be numbers")
        if nbf > now + self.leeway_s:
            raise SignatureError("token is not valid yet (nbf)")
        if exp <= now - self.leeway_s:
            raise SignatureError("token has expired (exp)")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise SignatureError("jti must be a non-empty string")
        if not _same_hash(claims["url_hash"], _sha256_hex(url.encode())):
            raise SignatureError("url_hash does not match the URL")
        payload_hash = claims.get("payload_hash")
        if body:
            if payload_hash is None:
                raise SignatureError("body present but no payload_hash claim")
            if not _same_hash(payload_hash, _sha256_hex(body)):
                raise SignatureError("payload_hash does not match the body")
        elif payload_hash is not None:
            raise SignatureError("payload_hash claim present but the body is empty")
        return claims

    def status_url(self) -> str:
        return self.url_for("/messagebird/status")

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        """POST /messages from ``from_`` (the number the customer wrote to) or the configured
        number. ``reference`` carries our message id into the status reports."""
        originator = from_ or self.from_number
        if not self.access_key:
            return SendResult(False, error="auth", detail="TEXTDESK_MESSAGEBIRD_ACCESS_KEY is not set")
        if not originator:
            return SendResult(False, error="rejected", detail="TEXTDESK_MESSAGEBIRD_FROM is not set")
        msisdn = to[1:] if to.startswith("+") else to
        if not msisdn.isdigit():
            return SendResult(False, error="invalid_number", detail="not an E.164 phone number")
        payload = {
            "originator": originator,
            "recipients": [int(msisdn)],
            "body": body,
            "reference": str(message_id),
            "reportUrl": self.status_url(),
            "datacoding": "auto",  # GSM-7 when it fits, Unicode otherwise
        }
        headers = {"Authorization": f"AccessKey {self.access_key}", "Accept": "application/json"}
        try:
            resp = await self.http.post(f"{self.api_base}/messages", json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            detail = f"timeout ({type(exc).__name__})"
            return SendResult(False, error="unreachable", detail=detail, retryable=True)
        except (httpx.HTTPError, OSError) as exc:
            return SendResult(False, error="unreachable", detail=type(exc).__name__, retryable=True)
        try:
            data: Any = resp.json()
        except ValueError:
            data = None
        return send_result(resp.status_code, data)

    async def aclose(self) -> None:
        await self.http.aclose()


def build(settings: Settings, **_: Any) -> MessageBirdChannel:
    return MessageBirdChannel(
        settings.messagebird_access_key.get_secret_value(),
        settings.messagebird_signing_key.get_secret_value(),
        settings.messagebird_from,
        settings.public_url,
        api_base=settings.messagebird_api_base,
        validate=settings.validate_signatures,
    )


async def verified_params(
    request: Request[Any, Any, Any], state: State, path: str
) -> dict[str, str] | Response[str]:
    """The webhook's parameters (query, then form or JSON body) once its JWT covers this URL and
    body and its jti is new; a 401 (no token) or 403 (bad token, replay) otherwise."""
    services = state.services
    channel: MessageBirdChannel = services.channels[PROVIDER]
    body = await request.body()  # the raw bytes payload_hash covers, before any parsing
    token = request.headers.get(SIGNATURE_HEADER)
    try:
        claims = channel.verify(channel.url_for(path, request.url.query), body, token)
    except SignatureError as exc:
        return refuse(PROVIDER, str(exc), 401 if not token else 403)
    jti = claims.get("jti")
    if isinstance(jti, str) and not await first_use(services, PROVIDER, jti, REPLAY_WINDOW):
        return refuse(PROVIDER, "replayed jti", 403)
    params = await form_or_json(request)
    # Some carriers turn the GSM "@" into NUL, which PostgreSQL text cannot hold; stripped only
    # after the signature check, which covers the bytes exactly as MessageBird sent them.
    return {k: v.replace("\x00", "") for k, v in params.items()}


def _empty(status_code: int = 200) -> Response[str]:
    return Response("", status_code=status_code, media_type="text/plain")


@route("/sms", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
async def sms_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """An inbound SMS: stored and answered through the pipeline; replies leave by REST."""
    params = await verified_params(request, state, "/messagebird/sms")
    if isinstance(params, Response):
        return params
    mid, originator = params.get("id", "").strip(), params.get("originator", "").strip()
    if not originator or not _MESSAGE_ID.fullmatch(mid):
        log.warning("messagebird.sms.missing_fields", extra={"id": bool(mid), "from": bool(originator)})
        return Response("id and originator are required", status_code=400, media_type="text/plain")
    # "body" in MessageBird's JSON examples, "payload" in its form-encoded ones.
    text = params["body"] if "body" in params else params.get("payload", "")
    recipient = params.get("recipient", "").strip()
    inbound = Inbound(
        sender=_address(originator),
        body=text,
        provider_message_id=mid,
        channel="sms",
        to=_address(recipient) if recipient else None,
        provider=PROVIDER,
    )
    await answer_by_rest(state.services, inbound, state.services.channels[PROVIDER].webhook_budget_s)
    return _empty()


@route("/status", http_method=[HttpMethod.GET, HttpMethod.POST], status_code=200)
async def status_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """A status report for a message we sent (its reportUrl). Always 200 once verified, known or
    not: MessageBird retries anything else."""
    params = await verified_params(request, state, "/messagebird/status")
    if isinstance(params, Response):
        return params
    if not params.get("id") or not params.get("status"):
        return Response("id and status are required", status_code=400, media_type="text/plain")
    update = status_update(params)
    known = update is not None and await state.services.dispatcher.apply_status(update)
    if not known:
        log.info(
            "messagebird.status.unknown_message",
            extra={"id": params.get("id"), "status": params.get("status")},
        )
    return _empty()


router = Router(path="/messagebird", route_handlers=[sms_webhook, status_webhook])
