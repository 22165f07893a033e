"""Timestamped HMAC-SHA256 webhook signatures: ``t=<unix>,v1=<hex>`` over ``"{t}.{body}"``.

This is Stripe's documented ``Stripe-Signature`` scheme, and textdesk signs its own outbound
webhooks (``X-Textdesk-Signature``) the same way so receivers can reuse well-known code:

1. split the header on ``,`` into ``key=value`` pairs; ``t`` is the timestamp, every ``v1`` a
   candidate signature (several during a secret roll), other schemes (``v0``) are ignored;
2. compute HMAC-SHA256 with the endpoint secret over ``t`` + ``"."`` + the raw body bytes;
3. compare in constant time with each ``v1``; reject when none matches;
4. reject when the timestamp is more than ``tolerance`` seconds away from now (replays).
"""

from __future__ import annotations

import hashlib
import hmac

from integrations.errors import WebhookSignatureError

__all__ = ["DEFAULT_TOLERANCE", "compute_signature", "parse_header", "sign_header", "verify_header"]

DEFAULT_TOLERANCE = 300


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def compute_signature(secret: str, timestamp: int, payload: str | bytes) -> str:
    """Hex HMAC-SHA256 of ``"{timestamp}.{payload}"``."""
    signed = f"{timestamp}.".encode() + _bytes(payload)
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_header(secret: str, timestamp: int, payload: str | bytes) -> str:
    return f"t={timestamp},v1={compute_signature(secret, timestamp, payload)}"


def parse_header(header: str | None, scheme: str = "v1") -> tuple[int, list[str]]:
    """(timestamp, signatures of ``scheme``); WebhookSignatureError when unusable."""
    if not header:
        raise WebhookSignatureError("missing signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise WebhookSignatureError("signature timestamp is not an integer") from exc
        elif key == scheme:
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError("signature header has no timestamp")
    if not signatures:
        raise WebhookSignatureError(f"signature header has no {scheme} signature")
    return timestamp, signatures


def verify_header(
    secret: str, header: str | None, payload: str | bytes, *, now: float, tolerance: int = DEFAULT_TOLERANCE
) -> int:
    """Check a signature header against the raw payload; return its timestamp.

    Raises WebhookSignatureError for a missing/malformed header, no matching ``v1`` signature,
    or a timestamp more than ``tolerance`` seconds before (or after) ``now``.
    """
    timestamp, signatures = parse_header(header)
    expected = compute_signature(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, sig) for sig in signatures):
        raise WebhookSignatureError("no signature matches the payload")
    if tolerance > 0 and abs(now - timestamp) > tolerance:
        raise WebhookSignatureError("signature timestamp is outside the tolerance window")
    return timestamp
