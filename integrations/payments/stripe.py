"""Stripe deposits: a Checkout Session (or a fixed Payment Link) per booking, and signed webhooks.

Link making
    ``POST https://api.stripe.com/v1/checkout/sessions``, form-encoded with Stripe's bracket
    notation, ``metadata[booking_id]`` and ``client_reference_id`` set to the booking id, an
    ``Idempotency-Key`` so a retried request never makes a second session, and ``expires_at``
    (Stripe allows 30 min to 24 h). With ``payment_link`` configured instead, no API call is
    made: the link gets ``?client_reference_id=<booking id>``. Either way the URL is checked
    against the business's ``allowed_link_hosts`` before it is returned.

Webhooks
    ``verify`` checks ``Stripe-Signature`` exactly per Stripe's scheme (see ``signing``), then
    ``handle`` dedupes on the event id and turns checkout events into a ``PaymentUpdate``.

Errors: 429, 409 (idempotency lock), 5xx and network errors are retried, and
``Stripe-Should-Retry`` overrides the status when present; what is left is
``PaymentUnavailable`` carrying Stripe's ``error.code``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from integrations._http import RetryableStatus, RetryPolicy, make_client, parse_retry_after
from integrations.errors import PaymentUnavailable, WebhookSignatureError
from integrations.payments.idempotency import SeenEvents
from integrations.payments.links import ensure_allowed
from integrations.signing import DEFAULT_TOLERANCE, verify_header
from textdesk.clock import Clock, SystemClock

__all__ = [
    "API",
    "SIGNATURE_HEADER",
    "PaymentLink",
    "PaymentUpdate",
    "StripePayments",
    "StripeWebhook",
    "WebhookResult",
    "deposit_cents",
    "form_encode",
]

API = "https://api.stripe.com/v1"
SIGNATURE_HEADER = "Stripe-Signature"
_MIN_EXPIRY = dt.timedelta(minutes=31)  # Stripe's floor is 30 minutes after creation
_MAX_EXPIRY = dt.timedelta(hours=24)
_REF_OK = re.compile(r"^[A-Za-z0-9_-]{1,200}$")  # Payment Links' client_reference_id alphabet


def deposit_cents(text: str) -> int:
    """ "$20", "20", "20.50", "USD 20" -> cents. A range such as "from $95" is not a deposit."""
    cleaned = re.sub(r"(?i)^\s*(usd|us\$|\$)\s*|\s*(usd)\s*$", "", text.strip()).replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"not a fixed deposit amount: {text!r}") from exc
    if value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"not a fixed deposit amount: {text!r}")
    return int(value * 100)


def form_encode(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested mappings and lists as ``a[b][0][c]=v``; None is left out."""
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            out.extend(form_encode(value, name))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.extend(form_encode(item, f"{name}[{i}]"))
                else:
                    out.append((f"{name}[{i}]", _scalar(item)))
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class PaymentLink:
    url: str
    booking_id: str
    session_id: str | None = None  # None for a Payment Link
    expires_at: dt.datetime | None = None
    amount_cents: int | None = None
    currency: str | None = None


class StripePayments:
    def __init__(
        self,
        secret_key: str | None,
        *,
        allowed_hosts: Sequence[str],
        success_url: str,
        cancel_url: str | None = None,
        payment_link: str | None = None,
        currency: str = "usd",
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not secret_key and not payment_link:
            raise ValueError("Stripe needs a secret key (Checkout) or a Payment Link URL")
        self._key = secret_key
        self.allowed_hosts = tuple(allowed_hosts)
        self.success_url, self.cancel_url = success_url, cancel_url
        self.payment_link, self.currency = payment_link, currency.lower()
        self.http = http or make_client(10.0)
        self.retry = retry or RetryPolicy(attempts=3, base=0.5, max_wait=4.0)
        self.clock = clock or SystemClock()

    # -- Payment Link ----------------------------------------------------------------------------

    def link_url(self, booking_id: str) -> PaymentLink:
        """The configured Payment Link, tagged with the booking id (no API call)."""
        if not self.payment_link:
            raise ValueError("no Payment Link configured")
        if not _REF_OK.match(booking_id):
            raise ValueError(f"booking id {booking_id!r} cannot be a client_reference_id")
        parts = urlsplit(self.payment_link)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "client_reference_id"]
        query.append(("client_reference_id", booking_id))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        return PaymentLink(ensure_allowed(url, self.allowed_hosts), booking_id)

    # -- Checkout Session -------------------------------------------------------------------------

    async def _send(self, form: list[tuple[str, str]], key: str) -> httpx.Response:
        resp = await self.http.post(
            f"{API}/checkout/sessions",
            content=urlencode(form).encode(),
            headers={
                "Authorization": f"Bearer {self._key}",
                "Idempotency-Key": key,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        should = resp.headers.get("Stripe-Should-Retry")
        retry = resp.status_code in (409, 429) or resp.status_code >= 500
        if should is not None:
            retry = should.lower() == "true"
        if retry and resp.status_code >= 400:
            raise RetryableStatus(
                resp.status_code,
                parse_retry_after(resp.headers.get("Retry-After")),
                _error(resp).get("message", ""),
            )
        return resp

    async def checkout(
        self,
        booking_id: str,
        amount_cents: int,
        description: str,
        *,
        expires_in: dt.timedelta = dt.timedelta(minutes=30),
        customer_email: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentLink:
        """A one-off Checkout Session for the deposit; the URL is allow-list checked."""
        if not self._key:
            raise ValueError("Checkout needs TEXTDESK_STRIPE_SECRET_KEY")
        if amount_cents <= 0:
            raise ValueError("amount must be positive")
        expires = self.clock.now() + min(max(expires_in, _MIN_EXPIRY), _MAX_EXPIRY)
        params: dict[str, Any] = {
            "mode": "payment",
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
            "client_reference_id": booking_id,
            "customer_email": customer_email,
            "expires_at": int(expires.timestamp()),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": self.currency,
                        "unit_amount": amount_cents,
                        "product_data": {"name": description},
                    },
                }
            ],
            "metadata": {"booking_id": booking_id},
            "payment_intent_data": {"metadata": {"booking_id": booking_id}},
        }
        key = idempotency_key or f"textdesk-checkout-{booking_id}"
        form = form_encode(params)
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    resp = await self._send(form, key)
        except RetryableStatus as exc:
            raise PaymentUnavailable(f"Stripe unavailable: {exc}", status=exc.status) from exc
        except httpx.TransportError as exc:
            raise PaymentUnavailable(f"Stripe unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            err = _error(resp)
            raise PaymentUnavailable(
                f"Stripe refused the Checkout Session: {err.get('message', resp.status_code)}",
                status=resp.status_code,
                code=err.get("code") or err.get("type"),
            )
        body = resp.json()
        url = ensure_allowed(str(body["url"]), self.allowed_hosts)
        expires_at = body.get("expires_at")
        return PaymentLink(
            url,
            booking_id,
            str(body["id"]),
            dt.datetime.fromtimestamp(int(expires_at), dt.UTC) if expires_at else None,
            body.get("amount_total", amount_cents),
            body.get("currency", self.currency),
        )

    async def link_for(self, booking_id: str, amount_cents: int, description: str) -> PaymentLink:
        """Payment Link when configured (no API call), else a Checkout Session."""
        if self.payment_link:
            return self.link_url(booking_id)
        return await self.checkout(booking_id, amount_cents, description)

    async def aclose(self) -> None:
        await self.http.aclose()


# -- webhooks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentUpdate:
    event_id: str
    type: str
    booking_id: str | None
    status: Literal["paid", "pending", "expired", "failed"]
    session_id: str | None = None
    amount_total: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class WebhookResult:
    outcome: Literal["processed", "duplicate", "ignored"]
    event_id: str
    type: str
    update: PaymentUpdate | None = None


_STATUS: dict[str, Literal["paid", "pending", "expired", "failed"]] = {
    "checkout.session.async_payment_succeeded": "paid",
    "checkout.session.async_payment_failed": "failed",
    "checkout.session.expired": "expired",
}


def _update(event: Mapping[str, Any]) -> PaymentUpdate | None:
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("object") != "checkout.session":
        return None
    if kind == "checkout.session.completed":
        status: Literal["paid", "pending", "expired", "failed"] = (
            "paid" if obj.get("payment_status") in ("paid", "no_payment_required") else "pending"
        )
    elif kind in _STATUS:
        status = _STATUS[kind]
    else:
        return None
    booking_id = (obj.get("metadata") or {}).get("booking_id") or obj.get("client_reference_id")
    return PaymentUpdate(
        str(event["id"]),
        kind,
        booking_id,
        status,
        obj.get("id"),
        obj.get("amount_total"),
        obj.get("currency"),
    )


class StripeWebhook:
    """Verify, dedupe, interpret. The edge answers 400 on WebhookSignatureError and 200 otherwise."""

    def __init__(
        self,
        secret: str,
        seen: SeenEvents | None = None,
        *,
        clock: Clock | None = None,
        tolerance: int = DEFAULT_TOLERANCE,
    ) -> None:
        # ``seen`` dedupes before interpreting; None when the store records the event id in the
        # same transaction as the payment update (store.payments.apply_stripe_event).
        self._secret, self.seen, self.tolerance = secret, seen, tolerance
        self.clock = clock or SystemClock()

    def verify(self, payload: bytes, header: str | None) -> dict[str, Any]:
        """The parsed event, if ``header`` is a valid ``Stripe-Signature`` for the raw ``payload``."""
        verify_header(
            self._secret, header, payload, now=self.clock.now().timestamp(), tolerance=self.tolerance
        )
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise WebhookSignatureError("signed payload is not JSON") from exc
        if not isinstance(event, dict) or event.get("object") != "event" or not event.get("id"):
            raise WebhookSignatureError("signed payload is not a Stripe event")
        return event

    async def handle(self, payload: bytes, header: str | None) -> WebhookResult:
        event = self.verify(payload, header)
        event_id, kind = str(event["id"]), str(event.get("type", ""))
        if self.seen is not None and await self.seen.seen(event_id):
            return WebhookResult("duplicate", event_id, kind)
        update = _update(event)
        return WebhookResult("processed" if update else "ignored", event_id, kind, update)


def _error(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}
