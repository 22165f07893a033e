"""Deposit payments: Stripe event idempotency and applying payment updates."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from store import repo
from store.models import Booking, Payment, StripeEvent

__all__ = ["DbSeenEvents", "apply_payment_update"]


class DbSeenEvents:
    """``SeenEvents`` over the stripe_event table: inserting an id twice means "seen"."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def seen(self, event_id: str) -> bool:
        async with self.sessions() as s:
            s.add(StripeEvent(event_id=event_id, type=""))
            try:
                await s.commit()
            except IntegrityError:
                return True
        return False

    async def forget(self, event_id: str) -> None:
        async with self.sessions() as s:
            row = await s.get(StripeEvent, event_id)
            if row is not None:
                await s.delete(row)
                await s.commit()


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
