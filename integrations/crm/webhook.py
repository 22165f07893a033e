"""Generic outbound webhook: POST each CRM event as JSON, signed, retried, bounded.

Request::

    POST <TEXTDESK_CRM_WEBHOOK_URL>
    Content-Type: application/json
    X-Textdesk-Event: booking.created
    X-Textdesk-Delivery: evt_...            (the event id: receivers dedupe on it)
    X-Textdesk-Signature: t=1772460000,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>

    {"booking":{...},"contact":{...},...}

A 2xx is success. 408, 429 (``Retry-After`` honoured), 5xx and network errors are retried with
jittered backoff; any other status is permanent (the receiver rejected the event). The signature
is recomputed per attempt so a late retry still passes the receiver's 5-minute tolerance.
Receivers verify with ``verify_signature`` (or any Stripe-style verifier).
"""

from __future__ import annotations

import httpx

from integrations._http import RetryableStatus, RetryPolicy, make_client, parse_retry_after
from integrations.crm.events import CrmEvent
from integrations.errors import DeliveryFailed
from integrations.signing import DEFAULT_TOLERANCE, sign_header, verify_header
from textdesk.clock import Clock, SystemClock

__all__ = ["SIGNATURE_HEADER", "WebhookDestination", "verify_signature"]

SIGNATURE_HEADER = "X-Textdesk-Signature"
_RETRY_STATUS = frozenset({408, 425, 429})


def verify_signature(
    secret: str, header: str | None, body: str | bytes, *, now: float, tolerance: int = DEFAULT_TOLERANCE
) -> None:
    """For receivers (and tests): raise WebhookSignatureError unless ``header`` signs ``body``."""
    verify_header(secret, header, body, now=now, tolerance=tolerance)


class WebhookDestination:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required: receivers must be able to verify events")
        self.url, self._secret = url, secret
        self.http = http or make_client(10.0)
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy(attempts=5, base=0.5, max_wait=30.0)

    def headers(self, event: CrmEvent, body: str) -> dict[str, str]:
        t = int(self.clock.now().timestamp())
        return {
            "Content-Type": "application/json",
            "User-Agent": "textdesk-webhooks/1",
            "X-Textdesk-Event": event.type,
            "X-Textdesk-Delivery": event.id,
            SIGNATURE_HEADER: sign_header(self._secret, t, body),
        }

    async def _post(self, event: CrmEvent, body: str) -> None:
        resp = await self.http.post(self.url, content=body.encode("utf-8"), headers=self.headers(event, body))
        if 200 <= resp.status_code < 300:
            return
        if resp.status_code in _RETRY_STATUS or resp.status_code >= 500:
            raise RetryableStatus(resp.status_code, parse_retry_after(resp.headers.get("Retry-After")))
        raise DeliveryFailed(
            f"webhook rejected {event.type} {event.id}: HTTP {resp.status_code}",
            permanent=True,
            status=resp.status_code,
        )

    async def deliver(self, event: CrmEvent) -> None:
        body = event.to_json()
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    await self._post(event, body)
        except RetryableStatus as exc:
            raise DeliveryFailed(f"webhook gave up on {event.id}: {exc}", status=exc.status) from exc
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"webhook unreachable for {event.id}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self.http.aclose()
