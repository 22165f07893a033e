"""Messages textdesk starts (reminders, no-show follow-ups) and the job runner behind them.

Every message textdesk starts passes the same gates, in order: consent must be ``opted_in``;
quiet hours in the recipient's local time (textdesk/quiet.py) defer it; a per-contact daily
frequency cap defers it; then it is stored in the outbox and sent over REST with retries.
Jobs live in the database, so they survive restarts, and store/jobs.py claims each one once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from agent.replies import R, when_text
from agent.state import DialogueState
from integrations.payments.holds import PaymentRecord, holds_to_release
from store import jobs, repo
from store.models import Booking, Contact, Conversation, Job, Message, Payment
from store.outbox import queue_outbound
from textdesk import privacy
from textdesk.business import Business
from textdesk.clock import Clock
from textdesk.delivery import Dispatcher
from textdesk.phone import is_visitor
from textdesk.quiet import next_allowed
from textdesk.settings import Settings

__all__ = ["Scheduler"]

log = logging.getLogger("textdesk.scheduler")


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        business: Business,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        dispatcher: Dispatcher,
    ) -> None:
        self.settings, self.business, self.sessions = settings, business, sessions
        self.clock, self.dispatcher = clock, dispatcher
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None
        self.calendar: Any = None  # an external calendar, to free released holds there too
        # Answers stored-but-unanswered inbound messages (set by Services.start).
        self.recover: Callable[..., Awaitable[int]] | None = None
        self._purged_on: dt.date | None = None
        # Team notifiers (Slack and the like) for a claimed conversation left unanswered.
        self.alert_hooks: list[Callable[[int, str, str], Awaitable[None]]] = []
        self._stopping = asyncio.Event()

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=10)
            self._task = None

    async def _loop(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                if self.recover is not None:  # everything at start-up, then what a crash left behind
                    await self.recover(older_than=dt.timedelta(0 if first else 60))
                    first = False
                await self.run_due()
            except Exception:  # a bad job or a database blip must not kill the loop
                log.exception("scheduler.loop_error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.scheduler_poll_s)

    async def run_due(self) -> int:
        """Run every due job once; returns how many were run."""
        now = self.clock.now()
        await self.release_unpaid_holds(now)
        await self._retention(now)
        await self._plan_idle_alerts(now)
        async with self.sessions() as s:
            claimed = await jobs.claim_due(s, now, self.worker)
        for job in claimed:
            await self._run(job)
        return len(claimed)

    async def _run(self, job: Job) -> None:
        handler = {
            "reminder": self._reminder,
            "no_show_followup": self._no_show,
            "send": self._send,
            "idle_claim": self._idle_claim,
        }.get(job.kind)
        status, run_at, error = "done", None, None
        try:
            if handler is None:
                status, error = "failed", f"unknown job kind {job.kind}"
            else:
                run_at = await handler(job)
        except Exception as exc:
            log.exception("scheduler.job_failed", extra={"job": job.id, "kind": job.kind})
            status, error = ("failed" if job.attempts >= 5 else "pending"), f"{type(exc).__name__}: {exc}"
            run_at = self.clock.now() + dt.timedelta(seconds=30 * 2**job.attempts)
        async with self.sessions() as s:
            row = await s.get(Job, job.id)
            if row is None:
                return
            if run_at is not None and status == "done":
                status = "pending"  # deferred (quiet hours, frequency cap)
            row.status, row.last_error, row.locked_by, row.locked_at = status, error, None, None
            if run_at is not None:
                row.run_at = run_at
            s.add(row)
            await s.commit()

    async def _retention(self, now: dt.datetime) -> None:
        """Once a day, blank message bodies past the retention period (idempotent, any worker)."""
        if self.settings.retention_days <= 0 or self._purged_on == now.date():
            return
        async with self.sessions() as s:
            await privacy.purge_bodies(s, now, self.settings.retention_days)
            await s.commit()
        self._purged_on = now.date()

    async def release_unpaid_holds(self, now: dt.datetime) -> list[str]:
        """Cancel bookings whose deposit stayed unpaid past the hold (idempotent, any worker)."""
        async with self.sessions() as s:
            pending = list(
                await s.exec(select(Payment).where(col(Payment.status).in_(("pending", "expired"))))
            )
            if not pending:
                return []
            ids = {p.booking_id for p in pending}
            bookings = list(await s.exec(select(Booking).where(col(Booking.id).in_(ids))))
            records = [
                PaymentRecord(p.booking_id, p.status, p.created_at, p.session_id)  # type: ignore[arg-type]
                for p in await s.exec(select(Payment).where(col(Payment.booking_id).in_(ids)))
            ]
            due = holds_to_release(bookings, records, now, self.settings.deposit_hold_minutes)
            released: list[tuple[int, str]] = []
            for b in bookings:
                if b.id in due and b.status == "active":
                    b.status, b.updated_at = "cancelled", now
                    s.add(b)
                    await jobs.cancel_jobs(s, "reminder", booking_id=b.id)
                    await repo.audit(s, "booking.released", contact_id=b.contact_id, at=now, booking_id=b.id)
                    released.append((b.contact_id, b.service))
                    if self.calendar is not None and b.external_id and self.calendar.name != "builtin":
                        try:
                            await self.calendar.cancel(b.external_id)
                        except Exception:
                            log.exception("scheduler.calendar_release_failed")
            await s.commit()
            for contact_id, service in released:
                await self._start(s, contact_id, R.hold_released(service), None)
        return due

    async def _plan_idle_alerts(self, now: dt.datetime) -> None:
        """One ``idle_claim`` job per customer message a person left unanswered too long. The job's
        dedupe key makes it once per message across workers and polls."""
        minutes = self.settings.idle_claim_minutes
        if minutes <= 0:
            return
        async with self.sessions() as s:
            idle = await repo.idle_held(s, now - dt.timedelta(minutes=minutes))
            planned = [
                await jobs.schedule(
                    s,
                    "idle_claim",
                    now,
                    {"conversation_id": cid, "message_id": mid},
                    dedupe_key=f"idle:{mid}",
                )
                for cid, mid in idle
            ]
            if any(planned):
                try:
                    await s.commit()
                except IntegrityError:  # another worker planned the same ones first
                    await s.rollback()

    def _open_now(self, now: dt.datetime) -> tuple[bool, str | None]:
        """Is the business open at ``now``, and if not, when does it next open (in words)?"""
        local = now.astimezone(self.business.tz)
        span = self.business.open_span(local.date())
        if span is not None and span[0] <= local.time() < span[1]:
            return True, None
        for ahead in range(8):
            day = local.date() + dt.timedelta(days=ahead)
            span = self.business.open_span(day)
            if span is not None and (ahead > 0 or local.time() < span[0]):
                return False, when_text(day.isoformat(), span[0].strftime("%H:%M"))
        return False, None

    async def _idle_claim(self, job: Job) -> dt.datetime | None:
        """The team hears that a held conversation waits; after hours the customer hears too."""
        cid, mid = int(job.payload["conversation_id"]), int(job.payload["message_id"])
        now = self.clock.now()
        async with self.sessions() as s:
            conv = await s.get(Conversation, cid)
            newest = (
                await s.exec(select(func.max(Message.id)).where(Message.conversation_id == cid))
            ).one()
            if conv is None or conv.status != "with_person" or newest != mid:
                return None  # answered, handed back or resolved meanwhile
            is_open, opens = self._open_now(now)
            held: Message | None = None
            if not is_open:
                contact = await s.get(Contact, conv.contact_id)
                if contact is not None:
                    held = queue_outbound(
                        s, contact, conv, R.holding(self.business, opens), in_reply_to=mid, now=now,
                        dedupe_key=f"hold:{mid}",
                    )
            await repo.audit(
                s, "conversation.idle_alert", contact_id=conv.contact_id, conversation_id=cid, at=now,
                message_id=mid, holding_message=held is not None,
            )
            summary = conv.summary or ""
            await s.commit()
            held_id = held.id if held is not None and held.status == "queued" else None
        if held_id is not None:
            await self.dispatcher.send(held_id)
        for hook in self.alert_hooks:
            await hook(cid, "idle_claim", summary)  # hooks log, never raise
        return None

    # -- handlers: return a new run time to defer, None when done ------------------------------

    async def _reminder(self, job: Job) -> dt.datetime | None:
        async with self.sessions() as s:
            booking = await s.get(Booking, job.payload.get("booking_id"))
            if (
                booking is None
                or booking.status != "active"
                or booking.start.isoformat() != job.payload.get("start")
            ):
                return None  # cancelled or moved: a newer job covers it
            local = booking.start.astimezone(self.business.tz)
            body = R.reminder(self.business, booking.service, booking.provider,
                              local.date().isoformat(), local.strftime("%H:%M"))
            state_change = {"pending": "reminder", "booking_id": booking.id}
            return await self._start(s, booking.contact_id, body, state_change, _job_key(job))

    async def _no_show(self, job: Job) -> dt.datetime | None:
        async with self.sessions() as s:
            booking = await s.get(Booking, job.payload.get("booking_id"))
            if booking is None or booking.status != "no_show":
                return None
            return await self._start(s, booking.contact_id, R.no_show(booking.service), None, _job_key(job))

    async def _send(self, job: Job) -> dt.datetime | None:
        """A REST send that has not gone out yet (or failed on a retryable error): try it, and
        defer this same job with backoff while the provider stays down."""
        mid = int(job.payload["message_id"])
        async with self.sessions() as s:
            row = await s.get(Message, mid)
            if row is None or row.status not in ("queued", "retrying") or row.provider_message_id:
                return None  # sent meanwhile, blocked, cancelled, failed for good, or gone
            row.status, row.next_attempt_at = "queued", None
            s.add(row)
            await s.commit()
        msg = await self.dispatcher.send(mid, plan_retry=False)
        if msg is not None and msg.status == "retrying" and msg.next_attempt_at is not None:
            return msg.next_attempt_at
        return None

    async def _start(
        self,
        s: AsyncSession,
        contact_id: int,
        body: str,
        state_change: dict[str, Any] | None,
        dedupe_key: str | None = None,
    ) -> dt.datetime | None:
        """The gates for a message textdesk starts; send it or say when to try again."""
        now = self.clock.now()
        contact = await s.get(Contact, contact_id)
        if contact is None or contact.consent != "opted_in":
            await repo.audit(s, "outreach.skipped_no_consent", contact_id=contact_id, at=now)
            await s.commit()
            return None
        if is_visitor(contact.phone):  # a web chat visitor who left no number: nowhere to text
            await repo.audit(s, "outreach.skipped_no_number", contact_id=contact_id, at=now)
            await s.commit()
            return None
        allowed = next_allowed(now, contact.phone, self.business)
        if allowed > now:
            return allowed
        since = now - dt.timedelta(days=1)
        sent_today = (
            await s.exec(
                select(func.count())
                .select_from(Message)
                .where(
                    Message.contact_id == contact_id,
                    Message.kind == "notification",
                    col(Message.status) != "blocked",
                    Message.created_at >= since,
                )
            )
        ).one()
        if sent_today >= self.settings.started_messages_per_day:
            oldest = (
                await s.exec(
                    select(func.min(Message.created_at)).where(
                        Message.contact_id == contact_id,
                        Message.kind == "notification",
                        Message.created_at >= since,
                    )
                )
            ).one()
            return (oldest or now) + dt.timedelta(days=1)
        conv = await repo.open_conversation(s, contact, now)
        if conv.status in repo.HANDOFF_STATUSES:
            return None  # a person holds the conversation; no automated texts in between
        if dedupe_key is not None:  # this job already queued its message (it ran before, then stalled)
            earlier = (await s.exec(select(Message.id).where(Message.dedupe_key == dedupe_key))).first()
            if earlier is not None:
                await s.commit()
                await self.dispatcher.send(earlier)  # a no-op unless it never left
                return None
        msg = queue_outbound(s, contact, conv, body, kind="notification", now=now, dedupe_key=dedupe_key)
        try:
            await s.flush()
        except IntegrityError:  # a second run of the same job got there first, this very moment
            await s.rollback()
            return None
        if state_change:
            st = DialogueState.load(contact.state)
            st.clear_task()
            st.pending, st.booking_id = state_change["pending"], state_change["booking_id"]
            st.last_question = body
            contact.state = st.model_dump()
            s.add(contact)
        await s.commit()
        await self.dispatcher.send(msg.id or 0)
        return None


def _job_key(job: Job) -> str:
    """The outbound dedupe key of a job's message: its own dedupe key, else its id."""
    return job.dedupe_key or f"job:{job.id}"
