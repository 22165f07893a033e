"""Deposit payments: Stripe event idempotency and applying payment updates."""

from __future__ import annotations

import datetime as dt

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from store import repo
from store.models import Booking, Payment, StripeEvent

__all__ = ["apply_payment_update", "apply_stripe_event"]


async def apply_stripe_event(
    session: AsyncSession, event_id: str, kind: str, booking_id: str | None, session_id: str | None,
    status: str, now: dt.datetime,
) -> Payment | None:
    """Record the event id and apply its payment update in the caller's transaction, so the two
    commit together: a redelivery (even one racing this one on another worker) hits the event
    table's primary key and rolls back whole, and a failure leaves nothing recorded for Stripe's
    retry to trip over. Raises IntegrityError (at the flush here, or at commit) for a duplicate."""
    session.add(StripeEvent(event_id=event_id, type=kind[:64], received_at=now))
    await session.flush()
    return await apply_payment_update(session, booking_id, session_id, status, now)


async def apply_payment_update(
    session: AsyncSession, booking_id: str | None, session_id: str | None, status: str, now: dt.datetime
) -> Payment | None:
    """Record a payment's new status; an unknown payment is ignored (None)."""
    q = select(Payment)
    if session_id:
        q = q.where(Payment.session_id == session_id)
    elif booking_id:
        q = q.where(Payment.booking_id == booking_id, Payment.status == "pending")
    else:
        return None
    payment = (await session.exec(q)).first()
    if payment is None:
        return None
    if payment.status != "paid":  # a late "expired" never undoes a payment
        payment.status, payment.updated_at = status, now
        session.add(payment)
    booking = await session.get(Booking, payment.booking_id)
    await repo.audit(
        session,
        f"payment.{status}",
        contact_id=booking.contact_id if booking else None,
        at=now,
        booking_id=payment.booking_id,
        session_id=session_id,
    )
    return payment
