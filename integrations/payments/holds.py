"""Releasing bookings held for an unpaid deposit. Pure: the caller loads rows and acts on the ids.

A booking is *held* when a deposit link was made for it (it has at least one payment record).
A held booking is released when nothing was paid and either ``hold_minutes`` have passed since
the booking was made, or every payment attempt is closed (Checkout expired, payment failed).
Bookings without payment records need no deposit and are never released here.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["HeldBooking", "PaymentRecord", "PaymentStatus", "holds_to_release"]

PaymentStatus = Literal["pending", "paid", "expired", "failed", "refunded"]
_CLOSED = frozenset({"expired", "failed"})


class HeldBooking(Protocol):
    """What the rule reads from a booking (``store.models.Booking`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def created_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class PaymentRecord:
    booking_id: str
    status: PaymentStatus
    created_at: dt.datetime
    session_id: str | None = None


def holds_to_release(
    bookings: Iterable[HeldBooking], payments: Iterable[PaymentRecord], now: dt.datetime, hold_minutes: int
) -> list[str]:
    """Ids of active bookings whose deposit hold should be released now (oldest first)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    by_booking: dict[str, list[PaymentRecord]] = defaultdict(list)
    for p in payments:
        by_booking[p.booking_id].append(p)
    hold = dt.timedelta(minutes=hold_minutes)
    due: list[tuple[dt.datetime, str]] = []
    for b in bookings:
        records = by_booking.get(b.id)
        if b.status != "active" or not records:
            continue
        if any(p.status in ("paid", "refunded") for p in records):
            continue
        created = b.created_at if b.created_at.tzinfo else b.created_at.replace(tzinfo=dt.UTC)
        if now - created >= hold or all(p.status in _CLOSED for p in records):
            due.append((created, b.id))
    return [booking_id for _, booking_id in sorted(due)]
