"""Deposits: Stripe links, webhook verification and idempotency, releasing unpaid holds."""

from integrations.payments.holds import PaymentRecord, holds_to_release
from integrations.payments.idempotency import MemorySeenEvents, SeenEvents
from integrations.payments.links import ensure_allowed

__all__ = ["MemorySeenEvents", "PaymentRecord", "SeenEvents", "ensure_allowed", "holds_to_release"]
