"""Vonage SMS API channel (not the Messages API): signed webhooks in, REST out, delivery receipts.

Only this module knows Vonage's parameters, signatures, status and error codes.

Webhooks. ``/vonage/inbound`` (inbound SMS) and ``/vonage/status`` (delivery receipts) take GET or
POST, form or JSON, since the dashboard lets the account choose. Vonage has no inline reply format:
the webhook waits at most ``webhook_budget_s`` for the turn, answers 200 with an empty body (204
for a receipt that found its message), and the replies leave through the SMS API. Vonage resends
an inbound message that did not get a 200 or 204 for 24 hours; the pipeline is idempotent on
``messageId``, so a resent message is stored and answered once.

Signatures. Vonage signs webhooks only when support has turned signed webhooks on for the account;
textdesk refuses (403) every unsigned one. The signed string is every parameter except ``sig``,
sorted by key, as ``&key=value`` with ``&`` and ``=`` in values replaced by ``_``; ``md5hash`` is
md5(string + secret), the others an HMAC of the string keyed by the secret (hex, either case).
The SDK checks the HMAC methods; it has no ``md5hash``, so that one is done here. ``timestamp``
must be within 5 minutes of the clock, and a ``nonce`` (or, without one, the signature) is
accepted once: a replay is refused even though the pipeline would deduplicate it anyway.

Concatenated inbound SMS. A long text arrives as several webhooks (``concat-ref``, ``-part``,
``-total``). Each part's request is held in this process until the last part arrives, then the
parts are answered as one message (its id is part 1's ``messageId``) and every part's request gets
its 200. Nothing is acknowledged before the whole message is stored, so a restart loses nothing
(Vonage resends). A part whose siblings do not arrive within ``concat_wait_s`` (they went to
another worker, or were lost) is answered on its own, as a message of its own.

STOP. Vonage's Opt-Out Assist (US and Canada; 10DLC and short codes, enabled by support) replies
to STOP itself, blocks the sender for the number that received it, and still forwards the STOP to
the inbound webhook, so textdesk's own rules opt the contact out as with any provider. A later
send to that number is accepted (status 0) and then fails in its delivery receipt with
``err-code`` 9, which maps to ``opted_out`` (the contact's consent follows). Sources:
developer.vonage.com/en/opt-out-assist/technical-details and
developer.vonage.com/en/opt-out-assist/guides/messaging-opted-out-numbers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import requests
from litestar import Request, Response, Router, route
from litestar.datastructures import State
from pydantic import ValidationError
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import (
    AuthenticationError,
    ForbiddenError,
    HttpRequestError,
    RateLimitedError,
)
from vonage_sms import SmsMessage
from vonage_sms.errors import PartialFailureError, SmsError
from vonage_utils.errors import VonageError

from channels.base import DeliveryError, DeliveryStatus, SendResult, StatusUpdate
from channels.rest_inbound import answer_by_rest, first_use, form_or_json, refuse
from textdesk.clock import Clock, SystemClock
from textdesk.errors import SignatureError
from textdesk.pipeline import Inbound
from textdesk.segments import is_gsm7
from textdesk.settings import Settings

__all__ = [
    "PROVIDER",
    "REPLAY_WINDOW",
    "SIGNATURE_MAX_AGE",
    "VonageChannel",
    "build",
    "router",
    "signing_string",
    "status_update",
]

log = logging.getLogger("textdesk.channels.vonage")

PROVIDER = "vonage"
SignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]
SIGNATURE_MAX_AGE = dt.timedelta(minutes=5)
# A signature is good 5 minutes either side of its timestamp: its nonce is remembered for all 10.
REPLAY_WINDOW = 2 * SIGNATURE_MAX_AGE
WEBHOOK_BUDGET_S = 3.0  # Vonage resends a webhook that is slow to get its 200
CONCAT_WAIT_S = 5.0  # how long a part of a long text waits for its siblings
_SEND_TIMEOUT_S = 10
_CALLBACK_MAX = 100  # the SMS API's limit on the ``callback`` URL
_MAX_ID = 64  # Message.provider_message_id
_REMEMBERED_PARTS = 10_000  # part ids of texts already answered whole (a resent part is acked)

# SMS API response ``status`` (developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms).
# code -> (error, retryable, reason in words)
_SEND_ERRORS: dict[int, tuple[DeliveryError, bool, str]] = {
    1: ("rate_limited", True, "throttled: sending faster than the account limit"),
    2: ("rejected", False, "a required parameter is missing"),
    3: ("rejected", False, "a parameter value is invalid"),
    4: ("auth", False, "Vonage refused the API key and secret"),
    5: ("unreachable", True, "internal error at Vonage"),
    6: ("rejected", False, "Vonage could not process the message (e.g. unrecognised number prefix)"),
    7: ("carrier_filtered", False, "the number is on Vonage's barred list"),
    8: ("auth", False, "the Vonage account is suspended"),
    9: ("auth", False, "not enough credit on the Vonage account"),
    10: ("rate_limited", True, "too many simultaneous connections to Vonage"),
    11: ("auth", False, "the account is not enabled for the SMS API over HTTP"),
    12: ("rejected", False, "message too long"),
    14: ("auth", False, "Vonage could not verify the request signature"),
    15: ("rejected", False, "the sender (from) is not allowed for this destination"),
    22: ("rejected", False, "invalid network code"),
    23: ("rejected", False, "invalid callback URL"),
    29: ("rejected", False, "trial account: the destination is not on its test numbers list"),
    32: ("auth", False, "signature and API secret cannot both be used"),
    33: ("invalid_number", False, "the number is de-activated"),
}
# Delivery receipt ``err-code`` (developer.vonage.com/messaging/sms/guides/delivery-receipts).
_DLR_ERRORS: dict[int, tuple[DeliveryError, str]] = {
    1: ("unknown", "not delivered, no cause given"),
    2: ("unreachable", "absent subscriber (temporary)"),
    3: ("invalid_number", "absent subscriber (permanent): the number is no longer active"),
    # The subscriber's own bar at their network, not a STOP to this sender: consent is left alone.
    4: ("carrier_filtered", "call barred by the user at their network"),
    5: ("unreachable", "number portability error"),
    6: ("carrier_filtered", "blocked by the carrier's anti-spam filter"),
    7: ("unreachable", "handset busy"),
    8: ("unreachable", "network error"),
    # "User has requested not to receive messages from a specific service"; Opt-Out Assist's STOP.
    9: ("opted_out", "the recipient asked not to receive messages from this sender"),
    10: ("rejected", "illegal message (e.g. wrong encoding)"),
    11: ("unreachable", "Vonage found no route to this destination"),
    12: ("unreachable", "destination unreachable"),
    13: ("carrier_filtered", "subscriber age restriction"),
    14: ("carrier_filtered", "number blocked by the carrier (SMS not enabled on the plan)"),
    15: ("unreachable", "recipient's prepaid credit is insufficient"),
    16: ("rate_limited", "gateway quota exceeded"),
    50: ("carrier_filtered", "entity filter"),
    51: ("carrier_filtered", "header filter"),
    52: ("carrier_filtered", "content filter"),
    53: ("carrier_filtered", "consent filter"),
    54: ("rejected", "regulation error"),
    99: ("unknown", "general error on the route"),
}
# Delivery receipt ``status``; ``unknown`` is decided by its err-code (see status_update).
_DLR_STATUSES: dict[str, DeliveryStatus] = {
    "delivered": "delivered",
    "accepted": "sent",  # the carrier took it
    "buffered": "sent",  # the carrier is still trying
    "expired": "undelivered",
    "failed": "undelivered",
    "rejected": "failed",
}
_SMS_ERROR_CODE = re.compile(r"error code (\d+): ?(.*)", re.DOTALL)


# -- signatures and receipts (pure) ------------------------------------------------------------------


def signing_string(params: dict[str, str]) -> str:
    """What Vonage signs: every parameter but ``sig``, sorted, as ``&key=value``."""
    return "".join(
        f"&{k}={params[k].replace('&', '_').replace('=', '_')}" for k in sorted(params) if k != "sig"
    )


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) <= 18 else None


def status_update(params: dict[str, str]) -> StatusUpdate | None:
    """A delivery receipt in textdesk's vocabulary; None for a status Vonage does not document.
    Each part of a long text has its own receipt (its own ``messageId``, the same ``client-ref``);
    they all land on the one stored message, and the last final status wins."""
    raw = params.get("status", "").lower()
    code = _int(params.get("err-code"))
    status = _DLR_STATUSES.get(raw)
    if raw == "unknown":  # "the carrier returned an undocumented status": a non-zero code is a failure
        status = "undelivered" if code else "sent"
    if status is None:
        return None
    error: DeliveryError | None = None
    detail: str | None = None
    if code and status in ("undelivered", "failed"):
        error, detail = _DLR_ERRORS.get(code, ("unknown", f"Vonage delivery error {code}"))
    ref = params.get("client-ref", "")
    provider_id = params.get("messageId") or None
    return StatusUpdate(PROVIDER, provider_id, status, _int(ref), error, code, detail)


def _digits(e164: str) -> str:
    """Vonage wants numbers without the ``+``; an alphanumeric sender id stays as it is."""
    return e164[1:] if e164.startswith("+") and e164[1:].isdigit() else e164


# -- concatenated inbound SMS -------------------------------------------------------------------------


@dataclass
class _Pending:
    parts: dict[int, tuple[str, str]]  # part number -> (messageId, text)
    done: asyncio.Future[bool]  # True once the whole text is stored; False if that failed


@dataclass
class _Reassembly:
    """Parts of long texts held in this process, and the part ids of texts already answered."""

    pending: dict[tuple[str, str, str, int], _Pending] = field(default_factory=dict)
    answered: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def remember(self, ids: list[str]) -> None:
        for i in ids:
            self.answered[i] = None
        while len(self.answered) > _REMEMBERED_PARTS:
            self.answered.popitem(last=False)


# -- the channel --------------------------------------------------------------------------------------


class VonageChannel:
    """SMS over the Vonage SMS API. The SDK is synchronous (requests): sends run in a thread."""

    provider = PROVIDER
    channel = "sms"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        signature_secret: str,
        signature_method: SignatureMethod,
        from_number: str,
        public_url: str,
        rest_host: str = "rest.nexmo.com",
        clock: Clock | None = None,
        validate: bool = True,
        webhook_budget_s: float = WEBHOOK_BUDGET_S,
        concat_wait_s: float = CONCAT_WAIT_S,
    ) -> None:
        self.from_number = from_number
        self.signature_method = signature_method
        self.validate_signatures = validate
        self.webhook_budget_s = webhook_budget_s
        self.concat_wait_s = concat_wait_s
        self.clock: Clock = clock or SystemClock()
        self.parts = _Reassembly()
        self._signature_secret = signature_secret
        # The SDK's HMAC check; it insists on an API key, which plays no part in the signature.
        self._verifier = (
            Auth(api_key=api_key or "-", signature_secret=signature_secret, signature_method=signature_method)
            if signature_secret and signature_method != "md5hash"
            else None
        )
        callback = f"{public_url.rstrip('/')}/vonage/status"
        # Longer than the API allows: leave it out, and receipts go to the dashboard's DLR URL.
        self.callback = callback if len(callback) <= _CALLBACK_MAX else None
        if self.callback is None:
            log.warning("vonage.callback_too_long", extra={"length": len(callback)})
        # Key and secret only (no signature secret): the SDK then authenticates sends with HTTP
        # Basic auth. No urllib3 retries: the outbox retries what is worth retrying.
        self._client = (
            Vonage(
                Auth(api_key=api_key, api_secret=api_secret),
                HttpClientOptions(rest_host=rest_host, timeout=_SEND_TIMEOUT_S, max_retries=0),
            )
            if api_key and api_secret
            else None
        )

    # -- webhooks

    def verify(self, params: dict[str, str], now: dt.datetime | None = None) -> None:
        """Raise SignatureError unless ``params`` carry a valid, current Vonage signature."""
        if not self.validate_signatures:
            return
        if not self._signature_secret:
            raise SignatureError("no Vonage signature secret configured")
        sig = params.get("sig", "")
        if not sig:
            raise SignatureError("missing sig")
        try:
            signed_at = dt.datetime.fromtimestamp(int(params.get("timestamp", "")), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise SignatureError("missing or malformed timestamp") from None
        if abs((now or self.clock.now()) - signed_at) > SIGNATURE_MAX_AGE:
            raise SignatureError("timestamp more than 5 minutes from now")
        # compare_digest raises on non-ASCII text: such a sig is simply wrong.
        if not sig.isascii() or not self._signature_ok(params, sig):
            raise SignatureError("invalid sig")

    def _signature_ok(self, params: dict[str, str], sig: str) -> bool:
        if self._verifier is None:  # md5hash: md5 of the signed string with the secret appended
            expected = hashlib.md5((signing_string(params) + self._signature_secret).encode()).hexdigest()
            return hmac.compare_digest(expected, sig.lower())
        # A copy: the SDK pops ``sig`` from the dict it is given.
        return bool(self._verifier.check_signature(dict(params)))

    # -- sending

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        """Send an SMS from ``from_`` (the number the customer wrote to) or the configured number;
        its delivery receipts carry our id in ``client-ref``."""
        sender = from_ or self.from_number
        if self._client is None or not sender:
            return SendResult(False, error="auth", detail="Vonage API key, secret or from number not set")
        message = SmsMessage(
            to=_digits(to),
            from_=_digits(sender),
            text=body,
            type=None if is_gsm7(body) else "unicode",
            client_ref=str(message_id),
            callback=self.callback,
        )
        client = self._client
        try:
            response = await asyncio.to_thread(client.sms.send, message)
        except PartialFailureError as exc:  # a long text: some parts left, some were refused
            failed = [m for m in exc.response.get("messages", []) if str(m.get("status")) != "0"]
            first = failed[0] if failed else {}
            refused = self._refused(_int(str(first.get("status", ""))), str(first.get("error-text", "")))
            # Never retried: a second attempt would send the parts that did leave again.
            return replace(refused, retryable=False)
        except SmsError as exc:  # the SDK keeps the code and Vonage's words only in its message
            match = _SMS_ERROR_CODE.search(str(exc))
            if match is None:
                return self._refused(None, str(exc))
            return self._refused(int(match.group(1)), match.group(2))
        except RateLimitedError:
            return SendResult(False, error="rate_limited", detail="HTTP 429 from Vonage", retryable=True)
        except (AuthenticationError, ForbiddenError) as exc:
            return SendResult(False, error="auth", detail=f"HTTP {exc.response.status_code} from Vonage")
        except HttpRequestError as exc:
            status, words = exc.response.status_code, f"HTTP {exc.response.status_code} from Vonage"
            if status >= 500:
                return SendResult(False, error="unreachable", detail=words, retryable=True)
            return SendResult(False, error="rejected", detail=words)
        except (requests.RequestException, TimeoutError, OSError) as exc:
            return SendResult(False, error="unreachable", detail=type(exc).__name__, retryable=True)
        except (VonageError, ValidationError, KeyError, TypeError, ValueError) as exc:
            # An answer we cannot read: the text may have left, so it is not retried.
            kind = type(exc).__name__
            log.error("vonage.send_unreadable_response", extra={"error": kind})
            return SendResult(False, error="unknown", detail=f"unreadable answer from Vonage ({kind})")
        first_id = response.messages[0].message_id if response.messages else None
        return SendResult(True, provider_message_id=first_id, status="sent")

    @staticmethod
    def _refused(code: int | None, text: str) -> SendResult:
        error, retryable, words = _SEND_ERRORS.get(code or -1, ("unknown", False, "refused by Vonage"))
        log.warning("vonage.send_refused", extra={"code": code})
        return SendResult(False, error=error, error_code=code, detail=f"{words}: {text}" if text else words,
                          retryable=retryable)

    async def aclose(self) -> None:
        # The SDK has no close(); its requests session holds the connection pool.
        session = getattr(self._client.http_client, "_session", None) if self._client else None
        if session is not None:
            session.close()


def build(settings: Settings, clock: Clock | None = None, **_: Any) -> VonageChannel:
    """The channel from settings. Without credentials it still serves its routes: it refuses every
    webhook (no signature secret) and every send fails as ``auth``."""
    return VonageChannel(
        api_key=settings.vonage_api_key,
        api_secret=settings.vonage_api_secret.get_secret_value(),
        signature_secret=settings.vonage_signature_secret.get_secret_value(),
        signature_method=settings.vonage_signature_method,
        from_number=settings.vonage_from,
        public_url=settings.public_url,
        rest_host=settings.vonage_rest_host,
        clock=clock,
        validate=settings.validate_signatures,
        webhook_budget_s=min(WEBHOOK_BUDGET_S, settings.turn_budget_s),
    )


# -- routes -------------------------------------------------------------------------------------------


def _ack(status_code: int = 200) -> Response[str]:
    return Response("", status_code=status_code, media_type="text/plain")


async def _verified(request: Request[Any, Any, Any], services: Any) -> dict[str, str] | Response[str]:
    """The webhook's parameters once signed, current and not seen before; a 403 otherwise."""
    channel: VonageChannel = services.channels[PROVIDER]
    params = await form_or_json(request)
    try:
        channel.verify(params, services.clock.now())
    except SignatureError as exc:
        return refuse(PROVIDER, str(exc))
    once = params.get("nonce") or params.get("sig")
    if once and channel.validate_signatures and not await first_use(services, PROVIDER, once, REPLAY_WINDOW):
        return refuse(PROVIDER, "replayed webhook")
    # PostgreSQL text cannot hold NUL; stripped only after the signature covered the values as sent.
    return {k: v.replace("\x00", "") for k, v in params.items()}


def _concat(params: dict[str, str]) -> tuple[str, int, int] | None:
    """(concat-ref, part, total) for one part of a long text; None for a whole message."""
    if params.get("concat", "").lower() != "true":
        return None
    ref = params.get("concat-ref", "")
    part, total = _int(params.get("concat-part")), _int(params.get("concat-total"))
    if not ref or part is None or total is None or not 1 <= part <= total or total < 2:
        return None  # malformed: the part stands alone rather than waiting for siblings that cannot match
    return ref, part, total


async def _answer_part(
    services: Any, channel: VonageChannel, inbound: Inbound, ref: str, part: int, total: int
) -> Response[str]:
    """Hold one part until its siblings arrive; the request that completes the text answers it."""
    parts = channel.parts
    part_id = inbound.provider_message_id or ""
    if part_id in parts.answered:
        return _ack()  # a resent part of a text already answered whole
    key = (inbound.sender, inbound.to or "", ref, total)
    entry = parts.pending.get(key)
    if entry is None:
        entry = parts.pending[key] = _Pending({}, asyncio.get_running_loop().create_future())
    entry.parts[part] = (part_id, inbound.body)
    if len(entry.parts) == total:
        del parts.pending[key]
        ids = [entry.parts[i][0] for i in range(1, total + 1)]
        whole = Inbound(
            sender=inbound.sender,
            body="".join(entry.parts[i][1] for i in range(1, total + 1)),
            provider_message_id=ids[0],
            channel=inbound.channel,
            to=inbound.to,
            provider=PROVIDER,
        )
        try:
            await answer_by_rest(services, whole, channel.webhook_budget_s)
        except BaseException:
            entry.done.set_result(False)  # every part's request fails too, so Vonage resends them all
            raise
        parts.remember(ids)
        entry.done.set_result(True)
        return _ack()
    try:
        stored = await asyncio.wait_for(asyncio.shield(entry.done), channel.concat_wait_s)
    except TimeoutError:
        # The rest went to another worker or never came: this part is a message of its own.
        if entry.parts.get(part, ("",))[0] == part_id:
            del entry.parts[part]
        if not entry.parts and parts.pending.get(key) is entry:
            del parts.pending[key]
        log.info("vonage.concat_part_alone", extra={"part": part, "total": total})
        await answer_by_rest(services, inbound, channel.webhook_budget_s)
        return _ack()
    return _ack() if stored else _ack(500)


@route("/inbound", http_method=["GET", "POST"], status_code=200)
async def inbound_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    services = state.services
    channel: VonageChannel = services.channels[PROVIDER]
    params = await _verified(request, services)
    if isinstance(params, Response):
        return params
    msisdn, message_id = params.get("msisdn", ""), params.get("messageId", "")
    if not msisdn or not message_id or len(message_id) > _MAX_ID:
        log.warning(
            "vonage.inbound.missing_fields", extra={"has_msisdn": bool(msisdn), "id": message_id[:80]}
        )
        return Response("msisdn and messageId are required", status_code=400, media_type="text/plain")
    if params.get("type") == "binary":  # no text to answer (ringtones, WAP push)
        log.info("vonage.inbound.binary_ignored", extra={"message_id": message_id})
        return _ack()
    to = params.get("to", "")
    inbound = Inbound(
        sender=f"+{msisdn}" if msisdn.isdigit() else msisdn,  # the pipeline refuses a non-number
        body=params.get("text", ""),
        provider_message_id=message_id,
        channel="sms",
        to=f"+{to}" if to.isdigit() else (to or None),
        provider=PROVIDER,
    )
    concat = _concat(params)
    if concat is not None:
        return await _answer_part(services, channel, inbound, *concat)
    await answer_by_rest(services, inbound, channel.webhook_budget_s)
    return _ack()


@route("/status", http_method=["GET", "POST"], status_code=200)
async def status_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Delivery receipts: 204 when the receipt found its message, 200 otherwise (nothing to resend)."""
    services = state.services
    params = await _verified(request, services)
    if isinstance(params, Response):
        return params
    update = status_update(params)
    known = update is not None and await services.dispatcher.apply_status(update)
    if not known:
        log.info(
            "vonage.status.unmatched", extra={"id": params.get("messageId"), "status": params.get("status")}
        )
    return _ack(204 if known else 200)


router = Router(path="/vonage", route_handlers=[inbound_webhook, status_webhook])
