"""Twilio SMS channel: signed webhooks in, TwiML or REST out, delivery callbacks.

Only this module knows Twilio's form fields, TwiML, signatures and error codes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.twilio_http import HttpxTwilioClient
from textdesk.errors import SignatureError

__all__ = ["OPT_OUT_ERROR", "TwilioChannel", "TwilioSendResult", "twiml"]

log = logging.getLogger("textdesk.channels.twilio")

# Twilio error 21610: "Attempt to send to unsubscribed recipient" (the carrier-level STOP list).
OPT_OUT_ERROR = 21610


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


@dataclass(frozen=True)
class TwilioSendResult:
    ok: bool
    sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    error: str | None = None
    retryable: bool = False


class TwilioChannel:
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

    async def send(self, to: str, body: str, status_callback: str | None = None) -> TwilioSendResult:
        """Send an SMS through the REST API."""
        return await self.create(to, self.from_number, status_callback, body=body)

    async def create(
        self, to: str, from_: str, status_callback: str | None, **fields: Any
    ) -> TwilioSendResult:
        """POST a message (SMS, or WhatsApp with ``whatsapp:`` addresses). Failures are classified
        so the outbox retries the right ones: 429 and 5xx and network errors are retryable."""
        try:
            msg = await self.client.messages.create_async(
                to=to, from_=from_, status_callback=status_callback or None, **fields
            )
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            log.warning("twilio.send_failed", extra={"status": exc.status, "code": exc.code})
            return TwilioSendResult(False, error_code=exc.code, error=str(exc.msg), retryable=retryable)
        except (TimeoutError, OSError, httpx.HTTPError) as exc:
            return TwilioSendResult(False, error=type(exc).__name__, retryable=True)
        return TwilioSendResult(True, sid=msg.sid, status=msg.status)
