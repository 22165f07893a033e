"""Twilio SMS channel: signed webhooks in, TwiML or REST out, delivery callbacks.

Only this module knows Twilio's form fields, TwiML, signatures and error codes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.base import DeliveryError, DeliveryStatus, SendResult, StatusUpdate
from channels.twilio_http import HttpxTwilioClient
from textdesk.errors import SignatureError

__all__ = ["OPT_OUT_ERROR", "PROVIDER", "WEBHOOK_WINDOW_S", "TwilioChannel", "status_update", "twiml"]

log = logging.getLogger("textdesk.channels.twilio")

PROVIDER = "twilio"
# Twilio error 21610: "Attempt to send to unsubscribed recipient" (the carrier-level STOP list).
OPT_OUT_ERROR = 21610
WEBHOOK_WINDOW_S = 15.0  # Twilio gives up on a webhook after 15 s; the turn must answer inside it
_WINDOW_MARGIN_S = 3.0  # the answer's own trip back, and a slow proxy

# Twilio's error codes in textdesk's words (https://www.twilio.com/docs/api/errors).
_ERRORS: dict[int, tuple[DeliveryError, str]] = {
    OPT_OUT_ERROR: ("opted_out", "the recipient replied STOP to this number"),
    21211: ("invalid_number", "not a valid phone number"),
    21614: ("invalid_number", "not a mobile number"),
    30005: ("invalid_number", "unknown destination handset"),
    30006: ("invalid_number", "landline or unreachable carrier"),
    30003: ("unreachable", "destination handset unreachable"),
    30008: ("unknown", "unknown error from the carrier"),
    30004: ("carrier_filtered", "message blocked by the carrier or the recipient"),
    30007: ("carrier_filtered", "filtered by the carrier as spam"),
    20003: ("auth", "Twilio refused the credentials"),
    20429: ("rate_limited", "too many requests"),
    21408: ("rejected", "sending to this region is not enabled"),
    63016: ("rejected", "WhatsApp message outside the 24-hour window needs a template"),
}
# Twilio's message statuses in the outbox's (receipts never move a status back).
_STATUSES: dict[str, DeliveryStatus] = {
    "accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "sending",
    "sent": "sent", "delivered": "delivered", "undelivered": "undelivered", "failed": "failed",
    "canceled": "failed", "read": "read",
}


def _error(code: int | None, fallback: str | None = None) -> tuple[DeliveryError | None, str | None]:
    if code is None:
        return None, fallback
    kind, words = _ERRORS.get(code, ("unknown", fallback or f"Twilio error {code}"))
    return kind, words


def status_update(params: Mapping[str, str], message_id: int | None) -> StatusUpdate | None:
    """A Twilio status callback in textdesk's vocabulary; None for a status we don't track."""
    raw = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    status = _STATUSES.get(raw)
    if status is None:
        return None
    code = params.get("ErrorCode")
    error_code = int(code) if code and code.isdigit() else None
    error, detail = _error(error_code)
    return StatusUpdate(PROVIDER, params.get("MessageSid"), status, message_id, error, error_code, detail)


def twiml(messages: list[str], action_urls: list[str | None] | None = None) -> str:
    """Render replies as TwiML; an empty <Response/> when the bot stays silent."""
    if not messages:
        return '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    parts = []
    for i, body in enumerate(messages):
        url = action_urls[i] if action_urls and i < len(action_urls) else None
        attr = f' action="{escape(url, {chr(34): "&quot;"})}" method="POST"' if url else ""
        parts.append(f"<Message{attr}>{escape(body)}</Message>")
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(parts) + "</Response>"


class TwilioChannel:
    """SMS over Twilio; also the transport under ``channels.whatsapp``."""

    provider = PROVIDER
    channel = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        public_url: str,
        http: HttpxTwilioClient | None = None,
        validate: bool = True,
        api_base: str = "https://api.twilio.com",
    ) -> None:
        self.account_sid, self.from_number = account_sid, from_number
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.validate_signatures = validate
        self.http = http or HttpxTwilioClient()
        self.client = Client(account_sid, auth_token, http_client=self.http)
        self.client.api.base_url = api_base.rstrip("/")  # a local fake in benchmarks and fault tests

    @staticmethod
    def turn_budget(requested_s: float) -> float:
        """How long the webhook waits for the turn before answering empty TwiML (the reply then
        follows by REST): the setting, but always inside Twilio's window."""
        return min(requested_s, WEBHOOK_WINDOW_S - _WINDOW_MARGIN_S)

    def url_for(self, path: str, query: str = "") -> str:
        """The URL Twilio signed: the public URL (behind any proxy) plus path and query."""
        base = urlsplit(self.public_url)
        full_path = base.path.rstrip("/") + path
        return urlunsplit((base.scheme, base.netloc, full_path, query, ""))

    def verify(self, path: str, query: str, params: Mapping[str, str], signature: str | None) -> None:
        """Raise SignatureError unless ``signature`` matches. The validator tries the URL with
        and without the default port, since proxies differ on whether they keep it."""
        if not self.validate_signatures:
            return
        if not signature:
            raise SignatureError("missing X-Twilio-Signature")
        if not self.validator.validate(self.url_for(path, query), dict(params), signature):
            raise SignatureError("invalid X-Twilio-Signature")

    def account_ok(self, params: Mapping[str, str]) -> bool:
        sid = params.get("AccountSid")
        return sid is None or sid == self.account_sid

    def status_url(self, message_id: int) -> str:
        return self.url_for("/twilio/status", f"m={message_id}")

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        """Send an SMS through the REST API; its status callbacks carry our message id."""
        return await self.create(to, from_ or self.from_number, self.status_url(message_id), body=body)

    async def aclose(self) -> None:
        await self.http.close()

    async def create(self, to: str, from_: str, status_callback: str | None, **fields: Any) -> SendResult:
        """POST a message (SMS, or WhatsApp with ``whatsapp:`` addresses). Failures are classified
        so the outbox retries the right ones: 429 and 5xx and network errors are retryable."""
        try:
            msg = await self.client.messages.create_async(
                to=to, from_=from_, status_callback=status_callback or None, **fields
            )
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            log.warning("twilio.send_failed", extra={"status": exc.status, "code": exc.code})
            code = exc.code if isinstance(exc.code, int) else None
            error, detail = _error(code, str(exc.msg))
            if exc.status == 429:
                error = "rate_limited"
            elif exc.status >= 500:
                error = "unreachable"
            return SendResult(
                False, error=error or "unknown", error_code=code, detail=detail, retryable=retryable
            )
        except (TimeoutError, OSError, httpx.HTTPError) as exc:
            return SendResult(False, error="unreachable", detail=type(exc).__name__, retryable=True)
        return SendResult(True, provider_message_id=msg.sid, status=_STATUSES.get(str(msg.status), "sent"))
