"""The job table's queries: schedule, cancel, claim.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers can poll
the same table and each due job is taken by exactly one of them, with no extra job library to
run or migrate. SQLite has one writer at a time; there a compare-and-set UPDATE does the same.
A job left 'running' by a crashed worker is taken again once its lease expires.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Booking, Job

__all__ = ["LEASE", "cancel_jobs", "claim_due", "mark_no_show", "plan_booking_jobs", "schedule"]

LEASE = dt.timedelta(minutes=5)


async def schedule(
    session: AsyncSession,
    kind: str,
    run_at: dt.datetime,
    payload: dict[str, Any],
    dedupe_key: str | None = None,
) -> Job | None:
    """Add a job unless a live one with the same dedupe key exists (then None); a cancelled one
    with that key is revived."""
    if dedupe_key is not None:
        existing = (await session.exec(select(Job).where(Job.dedupe_key == dedupe_key))).first()
        if existing is not None and existing.status == "cancelled":
            # Planned again (a booking moved away and back): the same job, live again.
            existing.status, existing.run_at, existing.payload = "pending", run_at, payload
            existing.attempts = 0
            session.add(existing)
            return existing
        if existing is not None:
            return None
    job = Job(kind=kind, run_at=run_at, payload=payload, dedupe_key=dedupe_key)
    session.add(job)
    return job


async def cancel_jobs(session: AsyncSession, kind: str, **match: Any) -> int:
    """Cancel pending jobs of ``kind`` whose payload has all of ``match``."""
    rows = await session.exec(select(Job).where(Job.kind == kind, Job.status == "pending"))
    n = 0
    for job in rows:
        if all(job.payload.get(k) == v for k, v in match.items()):
            job.status = "cancelled"
            session.add(job)
            n += 1
    return n


async def claim_due(session: AsyncSession, now: dt.datetime, worker: str, limit: int = 20) -> list[Job]:
    """Take up to ``limit`` due jobs for this worker and commit the claim."""
    stale = now - LEASE
    due = (col(Job.status) == "pending") | ((col(Job.status) == "running") & (col(Job.locked_at) < stale))
    q = select(Job).where(due, col(Job.run_at) <= now).order_by(col(Job.run_at), col(Job.id)).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        jobs = list(await session.exec(q.with_for_update(skip_locked=True)))
        for job in jobs:
            job.status, job.locked_by, job.locked_at = "running", worker, now
            job.attempts += 1
            session.add(job)
        await session.commit()
        return jobs
    claimed: list[Job] = []
    for job in list(await session.exec(q)):
        res = await session.exec(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.status) == job.status, col(Job.attempts) == job.attempts)
            .values(status="running", locked_by=worker, locked_at=now, attempts=job.attempts + 1)
        )
        if res.rowcount == 1:
            claimed.append(job)
    await session.commit()
    for job in claimed:
        await session.refresh(job)
    return claimed


async def plan_booking_jobs(
    session: AsyncSession, booking: Booking, reminder_offsets_h: list[float], now: dt.datetime
) -> None:
    """(Re)plan a booking's reminders, in the same transaction as the booking change itself."""
    await cancel_jobs(session, "reminder", booking_id=booking.id)
    if booking.status != "active":
        return
    start = booking.start.isoformat()
    for hours in reminder_offsets_h:
        run_at = booking.start - dt.timedelta(hours=hours)
        if run_at > now:
            await schedule(
                session,
                "reminder",
                run_at,
                {"booking_id": booking.id, "start": start},
                dedupe_key=f"reminder:{booking.id}:{start}:{hours}",
            )


async def mark_no_show(session: AsyncSession, booking: Booking, now: dt.datetime, follow_up: bool) -> None:
    """Staff say the customer did not come: record it and, if enabled, plan the rebooking text."""
    booking.status, booking.updated_at = "no_show", now
    session.add(booking)
    await cancel_jobs(session, "reminder", booking_id=booking.id)
    if follow_up:
        await schedule(session, "no_show_followup", now, {"booking_id": booking.id},
                       dedupe_key=f"no_show:{booking.id}")
