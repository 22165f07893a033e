"""Stripe: Checkout Sessions over the real form-encoded API, Payment Links, webhook signatures
(test vector computed here from Stripe's documented scheme), idempotency, and deposit holds."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx

from integrations._http import RetryPolicy
from integrations.errors import LinkNotAllowed, PaymentUnavailable, WebhookSignatureError
from integrations.payments.holds import PaymentRecord, holds_to_release
from integrations.payments.idempotency import MemorySeenEvents
from integrations.payments.stripe import StripePayments, StripeWebhook, deposit_cents, form_encode
from textdesk.clock import FrozenClock

NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())  # 1772460000
WHSEC = "whsec_5f8a1c2e9b7d4a6f0e3c2b1a9d8e7f60"
SESSIONS = "https://api.stripe.com/v1/checkout/sessions"
ALLOWED = ["maplesalon.example", "checkout.stripe.com", "buy.stripe.com"]


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _stripe_event(
    kind: str = "checkout.session.completed", event_id: str = "evt_1QabcDEFghiJKL", **session: Any
) -> bytes:
    obj = {
        "id": "cs_test_a1B2c3D4",
        "object": "checkout.session",
        "amount_total": 2000,
        "currency": "usd",
        "client_reference_id": "bk_123abc",
        "metadata": {"booking_id": "bk_123abc"},
        "mode": "payment",
        "payment_intent": "pi_3QabcDEF",
        "payment_status": "paid",
        "status": "complete",
        **session,
    }
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": T - 5,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _documented_signature(secret: str, timestamp: int, payload: bytes) -> str:
    """Stripe docs, "Verify signatures manually": HMAC-SHA256, key = endpoint secret,
    message = "{timestamp}.{raw payload}", hex digest, sent as v1."""
    signed_payload = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()


def _webhook(seen: MemorySeenEvents | None = None) -> StripeWebhook:
    return StripeWebhook(WHSEC, seen or MemorySeenEvents(), clock=FrozenClock(NOW))


# -- webhook signatures ------------------------------------------------------------------------------


async def test_signature_test_vector_from_the_documented_scheme() -> None:
    payload = _stripe_event()
    v1 = _documented_signature(WHSEC, T, payload)
    header = f"t={T},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    result = await _webhook().handle(payload, header)
    assert result.outcome == "processed" and result.event_id == "evt_1QabcDEFghiJKL"
    assert result.update is not None
    assert (
        result.update.booking_id,
        result.update.status,
        result.update.session_id,
        result.update.amount_total,
    ) == ("bk_123abc", "paid", "cs_test_a1B2c3D4", 2000)


def test_fixed_vector_matches_the_documented_scheme() -> None:
    """A constant computed once from the scheme, so signer and verifier cannot drift together."""
    from integrations.signing import compute_signature, verify_header

    payload = b'{"id":"evt_test_webhook","object":"event"}'
    expected = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a"
    assert _documented_signature("whsec_test_secret", 1492774577, payload) == expected
    assert compute_signature("whsec_test_secret", 1492774577, payload) == expected
    verify_header("whsec_test_secret", f"t=1492774577,v1={expected}", payload, now=1492774577 + 60)


async def test_a_rolled_secret_header_with_two_v1_signatures_verifies() -> None:
    payload = _stripe_event()
    header = f"t={T},v1={'0' * 64},v1={_documented_signature(WHSEC, T, payload)}"
    assert (await _webhook().handle(payload, header)).outcome == "processed"


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "missing"),
        ("", "missing"),
        (f"t={T}", "no v1"),
        ("v1=abc", "no timestamp"),
        (f"t=yesterday,v1={'a' * 64}", "not an integer"),
        (f"t={T},v1={'a' * 64}", "no signature matches"),
    ],
)
async def test_bad_headers_are_rejected(header: str | None, match: str) -> None:
    with pytest.raises(WebhookSignatureError, match=match):
        await _webhook().handle(_stripe_event(), header)


async def test_signature_of_another_payload_or_secret_is_rejected() -> None:
    payload = _stripe_event()
    tampered = payload.replace(b'"amount_total":2000', b'"amount_total":1')
    with pytest.raises(WebhookSignatureError):
        await _webhook().handle(tampered, f"t={T},v1={_documented_signature(WHSEC, T, payload)}")
    with pytest.raises(WebhookSignatureError):
        await _webhook().handle(payload, f"t={T},v1={_documented_signature('whsec_other', T, payload)}")


async def test_old_timestamp_is_rejected_even_with_a_valid_signature() -> None:
    payload = _stripe_event()
    old = T - 301
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        await _webhook().handle(payload, f"t={old},v1={_documented_signature(WHSEC, old, payload)}")
    edge = T - 300
    assert (
        await _webhook().handle(payload, f"t={edge},v1={_documented_signature(WHSEC, edge, payload)}")
    ).outcome == "processed"


async def test_replayed_event_id_is_a_duplicate() -> None:
    seen = MemorySeenEvents()
    payload = _stripe_event()
    header = f"t={T},v1={_documented_signature(WHSEC, T, payload)}"
    first = await _webhook(seen).handle(payload, header)
    again = await _webhook(seen).handle(payload, header)
    assert (first.outcome, again.outcome) == ("processed", "duplicate") and again.update is None
    await seen.forget(first.event_id)  # processing failed: let Stripe's retry through
    assert (await _webhook(seen).handle(payload, header)).outcome == "processed"


@pytest.mark.parametrize(
    ("kind", "session", "status"),
    [
        ("checkout.session.completed", {"payment_status": "unpaid"}, "pending"),
        ("checkout.session.async_payment_succeeded", {}, "paid"),
        ("checkout.session.async_payment_failed", {"payment_status": "unpaid"}, "failed"),
        ("checkout.session.expired", {"payment_status": "unpaid", "status": "expired"}, "expired"),
    ],
)
async def test_checkout_events_map_to_payment_updates(
    kind: str, session: dict[str, Any], status: str
) -> None:
    payload = _stripe_event(kind, **session)
    result = await _webhook().handle(payload, f"t={T},v1={_documented_signature(WHSEC, T, payload)}")
    assert result.update is not None and result.update.status == status


async def test_other_events_are_acknowledged_and_ignored() -> None:
    payload = json.dumps(
        {
            "id": "evt_charge",
            "object": "event",
            "type": "charge.succeeded",
            "data": {"object": {"id": "ch_1", "object": "charge"}},
        }
    ).encode()
    result = await _webhook().handle(payload, f"t={T},v1={_documented_signature(WHSEC, T, payload)}")
    assert (result.outcome, result.update) == ("ignored", None)


# -- Checkout Sessions -------------------------------------------------------------------------------


def _payments(sleeps: Sleeps | None = None, allowed: list[str] = ALLOWED, **kw: Any) -> StripePayments:
    return StripePayments(
        "sk_test_51Qabc",
        allowed_hosts=allowed,
        success_url="https://sms.example.com/paid?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://maplesalon.example/deposit-cancelled",
        http=httpx.AsyncClient(),
        retry=RetryPolicy(attempts=3, base=0.1, max_wait=5, sleep=sleeps if sleeps is not None else Sleeps()),
        clock=FrozenClock(NOW),
        **kw,
    )


def _session(
    url: str = "https://checkout.stripe.com/c/pay/cs_test_a1B2c3D4#fidkdWxOYHwnPyd1blpxYHZxWjA0",
) -> dict:
    return {
        "id": "cs_test_a1B2c3D4",
        "object": "checkout.session",
        "amount_total": 2000,
        "currency": "usd",
        "client_reference_id": "bk_123abc",
        "expires_at": T + 1860,
        "metadata": {"booking_id": "bk_123abc"},
        "mode": "payment",
        "payment_status": "unpaid",
        "status": "open",
        "url": url,
    }


def _stripe_error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": kind, "message": message}
    if code:
        err["code"] = code
    return {"error": err}


@respx.mock
async def test_checkout_session_is_form_encoded_with_metadata_and_idempotency_key() -> None:
    route = respx.post(SESSIONS).mock(return_value=httpx.Response(200, json=_session()))
    link = await _payments().checkout("bk_123abc", 2000, "Deposit: haircut at Maple Street Salon")
    assert link.url.startswith("https://checkout.stripe.com/c/pay/cs_test_a1B2c3D4")
    assert (link.session_id, link.amount_cents, link.currency) == ("cs_test_a1B2c3D4", 2000, "usd")
    assert link.expires_at == NOW + dt.timedelta(seconds=1860)
    req = route.calls[0].request
    assert req.headers["Authorization"] == "Bearer sk_test_51Qabc"
    assert req.headers["Idempotency-Key"] == "textdesk-checkout-bk_123abc"
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(req.content.decode()))
    assert form == {
        "mode": "payment",
        "success_url": "https://sms.example.com/paid?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://maplesalon.example/deposit-cancelled",
        "client_reference_id": "bk_123abc",
        "expires_at": str(T + 31 * 60),  # raised to Stripe's 30-minute floor (plus a minute)
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "2000",
        "line_items[0][price_data][product_data][name]": "Deposit: haircut at Maple Street Salon",
        "metadata[booking_id]": "bk_123abc",
        "payment_intent_data[metadata][booking_id]": "bk_123abc",
    }


@respx.mock
async def test_checkout_url_outside_the_allow_list_is_never_returned() -> None:
    respx.post(SESSIONS).mock(return_value=httpx.Response(200, json=_session()))
    with pytest.raises(LinkNotAllowed, match=r"checkout\.stripe\.com"):
        await _payments(allowed=["maplesalon.example"]).checkout("bk_123abc", 2000, "Deposit")


@respx.mock
async def test_checkout_retries_429_and_5xx_with_the_same_idempotency_key() -> None:
    sleeps = Sleeps()
    route = respx.post(SESSIONS).mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "1"},
                json=_stripe_error("invalid_request_error", "Too many requests", "rate_limit"),
            ),
            httpx.Response(500, json=_stripe_error("api_error", "Something went wrong on Stripe's end.")),
            httpx.Response(200, json=_session()),
        ]
    )
    await _payments(sleeps).checkout("bk_123abc", 2000, "Deposit")
    assert route.call_count == 3 and sleeps[0] == 1.0
    assert {c.request.headers["Idempotency-Key"] for c in route.calls} == {"textdesk-checkout-bk_123abc"}


@respx.mock
async def test_stripe_should_retry_false_stops_retries() -> None:
    route = respx.post(SESSIONS).mock(
        return_value=httpx.Response(
            500, headers={"Stripe-Should-Retry": "false"}, json=_stripe_error("api_error", "Do not retry")
        )
    )
    with pytest.raises(PaymentUnavailable) as err:
        await _payments().checkout("bk_123abc", 2000, "Deposit")
    assert route.call_count == 1 and err.value.status == 500


@respx.mock
async def test_invalid_request_is_not_retried_and_carries_the_code() -> None:
    route = respx.post(SESSIONS).mock(
        return_value=httpx.Response(
            400,
            json=_stripe_error("invalid_request_error", "Invalid integer: -5", "parameter_invalid_integer"),
        )
    )
    with pytest.raises(PaymentUnavailable) as err:
        await _payments().checkout("bk_123abc", 2000, "Deposit")
    assert route.call_count == 1 and err.value.code == "parameter_invalid_integer"


@respx.mock
async def test_persistent_outage_is_payment_unavailable() -> None:
    respx.post(SESSIONS).mock(side_effect=httpx.ConnectTimeout("timed out"))
    with pytest.raises(PaymentUnavailable, match="unreachable"):
        await _payments().checkout("bk_123abc", 2000, "Deposit")


# -- Payment Links -----------------------------------------------------------------------------------


async def test_payment_link_gets_the_booking_as_client_reference_id() -> None:
    pay = _payments(
        payment_link="https://buy.stripe.com/test_8wM5lC?prefilled_email=a%40b.c&client_reference_id=x"
    )
    link = await pay.link_for("bk_123abc", 2000, "Deposit")
    parts = urlsplit(link.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "buy.stripe.com", "/test_8wM5lC")
    assert dict(parse_qsl(parts.query)) == {"prefilled_email": "a@b.c", "client_reference_id": "bk_123abc"}
    assert link.session_id is None
    with pytest.raises(ValueError):
        pay.link_url("bk 1; drop")


def test_payment_link_hosts_are_checked() -> None:
    with pytest.raises(LinkNotAllowed):
        _payments(allowed=["maplesalon.example"], payment_link="https://buy.stripe.com/x").link_url("bk_1")
    with pytest.raises(LinkNotAllowed, match="https"):
        _payments(payment_link="http://buy.stripe.com/x").link_url("bk_1")
    with pytest.raises(LinkNotAllowed):  # a look-alike host is not a subdomain
        _payments(payment_link="https://buy.stripe.com.evil.example/x").link_url("bk_1")


def test_deposit_amounts_and_form_encoding() -> None:
    assert [deposit_cents(t) for t in ("$20", "20", "20.50", "USD 15", "$1,000")] == [
        2000,
        2000,
        2050,
        1500,
        100000,
    ]
    for bad in ("from $95", "", "-5", "$0", "1.234"):
        with pytest.raises(ValueError):
            deposit_cents(bad)
    assert form_encode({"a": {"b": [{"c": 1}, "d"]}, "e": True, "f": None}) == [
        ("a[b][0][c]", "1"),
        ("a[b][1]", "d"),
        ("e", "true"),
    ]


# -- holds -------------------------------------------------------------------------------------------


@dataclass
class B:
    id: str
    status: str
    created_at: dt.datetime


def test_holds_to_release() -> None:
    m = dt.timedelta(minutes=1)
    bookings = [
        B("old_unpaid", "active", NOW - 31 * m),
        B("fresh_unpaid", "active", NOW - 5 * m),
        B("old_paid", "active", NOW - 90 * m),
        B("expired_checkout", "active", NOW - 5 * m),
        B("no_deposit", "active", NOW - 600 * m),
        B("already_cancelled", "cancelled", NOW - 600 * m),
        B("retried_and_paid", "active", NOW - 60 * m),
        B("exactly_due", "active", NOW - 30 * m),
    ]
    payments = [
        PaymentRecord("old_unpaid", "pending", NOW - 31 * m),
        PaymentRecord("fresh_unpaid", "pending", NOW - 5 * m),
        PaymentRecord("old_paid", "paid", NOW - 90 * m),
        PaymentRecord("expired_checkout", "expired", NOW - 5 * m),
        PaymentRecord("already_cancelled", "pending", NOW - 600 * m),
        PaymentRecord("retried_and_paid", "expired", NOW - 60 * m),
        PaymentRecord("retried_and_paid", "paid", NOW - 20 * m),
        PaymentRecord("exactly_due", "pending", NOW - 30 * m),
    ]
    assert holds_to_release(bookings, payments, NOW, 30) == ["old_unpaid", "exactly_due", "expired_checkout"]
    assert holds_to_release(bookings, payments, NOW, 120) == ["expired_checkout"]
    assert holds_to_release([], payments, NOW, 30) == []
    with pytest.raises(ValueError):
        holds_to_release(bookings, payments, NOW.replace(tzinfo=None), 30)
