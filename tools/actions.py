"""Tool execution, bound to the sender.

Every tool receives a ToolContext whose ``contact`` was resolved by code from the verified
channel address. Arguments come from the policy (and, through it, possibly from a model),
so they are validated again here and booking ids are looked up only among the contact's own
bookings: a model that names another customer's booking gets ``not_found``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from integrations.calendar.base import BookingInfo
from integrations.errors import CalendarConflict, IntegrationError
from integrations.payments.stripe import deposit_cents
from store import repo
from store.jobs import plan_booking_jobs
from store.models import Booking, Contact, Conversation, Payment, new_id
from store.no_overlap import is_overlap_error, queue_for_slot
from textdesk.business import Business
from textdesk.errors import ToolError
from textdesk.phone import is_visitor
from tools.availability import check_slot
from tools.schemas import (
    STATE_CHANGING,
    TOOL_MODELS,
    CancelBooking,
    CreateBooking,
    Escalate,
    RescheduleBooking,
    TagContact,
    UpdateContact,
)

__all__ = ["ToolContext", "ToolResult", "run_tool"]


@dataclass
class ToolContext:
    session: Any  # AsyncSession; Any keeps tools free of a hard SQLAlchemy type in signatures
    business: Business
    contact: Contact
    conversation: Conversation
    now: dt.datetime
    max_writes_per_turn: int = 3
    reminder_offsets_h: list[float] = field(default_factory=lambda: [24.0, 2.0])
    # An external calendar (CalDAV, Google) mirrors every booking; None = textdesk's own table only.
    calendar: Any = None
    payments: Any = None  # StripePayments when deposits are configured
    events: list[tuple[str, Booking]] = field(default_factory=list)  # for CRM sync after commit
    writes: int = 0
    escalations: list[Escalate] = field(default_factory=list)


@dataclass(frozen=True)
class ToolResult:
    name: str
    args: dict[str, Any]
    ok: bool
    code: str = "ok"
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_call(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.args}


def _local(ctx: ToolContext, date: str, time: str) -> tuple[dt.date, dt.time]:
    return dt.date.fromisoformat(date), dt.time.fromisoformat(time)


async def _own_booking(ctx: ToolContext, booking_id: str) -> Booking:
    booking: Booking | None = await ctx.session.get(Booking, booking_id)
    if booking is None or booking.contact_id != ctx.contact.id or booking.status != "active":
        raise ToolError("not_found", f"no active booking {booking_id!r} for this customer")
    return booking


async def _free_providers(
    ctx: ToolContext, service: str, date: str, time: str, provider: str | None, exclude: str | None = None
) -> list[str | None]:
    """Who can take ``service`` at ``date`` ``time``, read fresh in this transaction: the asked-for
    provider, or every free one in business order. Raises ToolError with the reason when none."""
    day, at = _local(ctx, date, time)
    start = dt.datetime.combine(day, at, ctx.business.tz).astimezone(dt.UTC)
    busy = await repo.busy_between(
        ctx.session, start - dt.timedelta(hours=12), start + dt.timedelta(hours=12), exclude_booking=exclude
    )
    asked: list[str | None] = [provider] if provider else [*ctx.business.providers] or [None]
    free: list[str | None] = []
    for p in asked:
        check = check_slot(ctx.business, busy, service, day, at, ctx.now, p)
        if check.ok:
            free.append(check.provider)
        elif check.reason != "taken":
            raise ToolError(check.reason, f"{service} at {date} {time} is not available ({check.reason})")
    if not free:
        raise ToolError("taken", f"{service} at {date} {time} is not available (taken)")
    return free


async def _claim_slot(ctx: ToolContext, booking: Booking, external: str) -> None:
    """Write the booking (or its move) and let the database rule on it, then mirror it into the
    external calendar. Both happen in one savepoint: a clash in either undoes both."""
    try:
        async with ctx.session.begin_nested():
            await queue_for_slot(ctx.session, booking.provider, booking.start)
            ctx.session.add(booking)
            await ctx.session.flush()  # the no-overlap constraint (store/no_overlap.py) decides here
            if ctx.calendar is not None and (external == "create" or booking.external_id):
                booking.external_id = await _calendar_write(ctx, external, booking)
                await ctx.session.flush()
    except DBAPIError as exc:
        if not is_overlap_error(exc):
            raise
        raise ToolError("taken", "another booking took this slot at the same moment") from exc


async def _create(ctx: ToolContext, a: CreateBooking) -> dict[str, Any]:
    svc = ctx.business.service(a.service)
    if svc is None:
        raise ToolError("unknown_service", f"unknown service {a.service!r}")
    provider = ctx.business.provider(a.provider) if a.provider is not None else None
    if a.provider is not None and provider is None:
        raise ToolError("unknown_provider", f"unknown provider {a.provider!r}")
    day, at = _local(ctx, a.date, a.time)
    start = dt.datetime.combine(day, at, ctx.business.tz).astimezone(dt.UTC)
    booking: Booking | None = None
    # No provider asked for: the next free one takes it when another customer wins the first.
    for candidate in await _free_providers(ctx, svc.name, a.date, a.time, provider):
        attempt = Booking(
            id=new_id("bk"),
            contact_id=ctx.contact.id or 0,
            service=svc.name,
            provider=candidate,
            start=start,
            end=start + dt.timedelta(minutes=svc.minutes),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        try:
            await _claim_slot(ctx, attempt, "create")
        except ToolError as exc:
            if exc.code == "taken" and provider is None:
                continue
            raise
        booking = attempt
        break
    if booking is None:
        raise ToolError("taken", f"{svc.name} at {a.date} {a.time} was just taken")
    ctx.events.append(("booking.created", booking))
    await plan_booking_jobs(ctx.session, booking, ctx.reminder_offsets_h, ctx.now)
    data: dict[str, Any] = {"booking_id": booking.id, "provider": booking.provider}
    if ctx.payments is not None and svc.deposit:
        data.update(await _request_deposit(ctx, booking, svc.deposit))
    # Booking by text consents to texts about it; a web chat visitor has no number to text yet
    # (they consent explicitly when they leave one).
    if ctx.contact.consent == "unknown" and not is_visitor(ctx.contact.phone):
        await repo.set_consent(ctx.session, ctx.contact, "opted_in", "booking", detail=booking.id, at=ctx.now)
    await repo.audit(
        ctx.session,
        "booking.created",
        contact_id=ctx.contact.id,
        at=ctx.now,
        booking_id=booking.id,
        service=svc.name,
        provider=booking.provider,
        start=start.isoformat(),
    )
    return data


async def _request_deposit(ctx: ToolContext, booking: Booking, deposit: str) -> dict[str, Any]:
    """A payment link for the service's deposit; the booking stands even if Stripe is down."""
    try:
        cents = deposit_cents(deposit)
        link = await ctx.payments.link_for(
            booking.id, cents, f"Deposit: {booking.service} at {ctx.business.name}"
        )
    except (IntegrationError, ValueError) as exc:
        await repo.audit(
            ctx.session,
            "payment.link_failed",
            contact_id=ctx.contact.id,
            at=ctx.now,
            booking_id=booking.id,
            error=str(exc)[:200],
        )
        return {}
    ctx.session.add(
        Payment(
            booking_id=booking.id,
            session_id=link.session_id,
            url=link.url,
            amount_cents=cents,
            currency=link.currency or "usd",
            created_at=ctx.now,
            updated_at=ctx.now,
        )
    )
    return {"payment_url": link.url, "deposit": deposit}


async def _calendar_write(ctx: ToolContext, op: str, booking: Booking) -> str | None:
    """Mirror a booking into the external calendar; a clash found there is a taken slot."""
    info = BookingInfo(
        booking.id,
        booking.service,
        booking.start,
        booking.end,
        booking.provider,
        ctx.contact.name,
        ctx.contact.phone,
        ctx.business.name,
    )
    try:
        if op == "create":
            return str(await ctx.calendar.create(info))
        await ctx.calendar.move(booking.external_id, booking.start, booking.end)
        return booking.external_id
    except CalendarConflict as exc:
        raise ToolError("taken", f"the calendar already has something then ({exc})") from exc
    except IntegrationError as exc:
        raise ToolError("calendar_unavailable", str(exc)) from exc


async def _reschedule(ctx: ToolContext, a: RescheduleBooking) -> dict[str, Any]:
    booking = await _own_booking(ctx, a.booking_id)
    free = await _free_providers(ctx, booking.service, a.date, a.time, booking.provider, exclude=booking.id)
    provider = free[0]
    svc = ctx.business.service(booking.service)
    minutes = svc.minutes if svc else int((booking.end - booking.start).total_seconds() // 60)
    day, at = _local(ctx, a.date, a.time)
    old = booking.start
    booking.start = dt.datetime.combine(day, at, ctx.business.tz).astimezone(dt.UTC)
    booking.end = booking.start + dt.timedelta(minutes=minutes)
    booking.provider = provider
    booking.updated_at = ctx.now
    try:
        await _claim_slot(ctx, booking, "move")
    except ToolError:
        await ctx.session.refresh(booking)  # the savepoint rolled back; so does the object
        raise
    ctx.events.append(("booking.rescheduled", booking))
    await plan_booking_jobs(ctx.session, booking, ctx.reminder_offsets_h, ctx.now)
    await repo.audit(
        ctx.session,
        "booking.rescheduled",
        contact_id=ctx.contact.id,
        at=ctx.now,
        booking_id=booking.id,
        old=old.isoformat(),
        new=booking.start.isoformat(),
    )
    return {"booking_id": booking.id}


async def _cancel(ctx: ToolContext, a: CancelBooking) -> dict[str, Any]:
    booking = await _own_booking(ctx, a.booking_id)
    booking.status = "cancelled"
    booking.updated_at = ctx.now
    if ctx.calendar is not None and booking.external_id:
        try:
            await ctx.calendar.cancel(booking.external_id)
        except IntegrationError as exc:  # the customer's cancel stands; staff see the audit row
            await repo.audit(
                ctx.session,
                "calendar.cancel_pending",
                contact_id=ctx.contact.id,
                at=ctx.now,
                booking_id=booking.id,
                error=str(exc),
            )
    ctx.session.add(booking)
    ctx.events.append(("booking.cancelled", booking))
    await plan_booking_jobs(ctx.session, booking, ctx.reminder_offsets_h, ctx.now)
    await repo.audit(
        ctx.session, "booking.cancelled", contact_id=ctx.contact.id, at=ctx.now, booking_id=booking.id
    )
    return {"booking_id": booking.id}


async def _update_contact(ctx: ToolContext, a: UpdateContact) -> dict[str, Any]:
    if a.name is None and a.email is None:
        raise ToolError("empty", "nothing to update")
    if a.name is not None:
        ctx.contact.name = a.name
    if a.email is not None:
        ctx.contact.email = a.email
    ctx.contact.updated_at = ctx.now
    ctx.session.add(ctx.contact)
    await repo.audit(
        ctx.session,
        "contact.updated",
        contact_id=ctx.contact.id,
        at=ctx.now,
        fields=[k for k in ("name", "email") if getattr(a, k) is not None],
    )
    return {}


async def _tag(ctx: ToolContext, a: TagContact) -> dict[str, Any]:
    if a.tag not in ctx.contact.tags:
        ctx.contact.tags = [*ctx.contact.tags, a.tag]
        ctx.session.add(ctx.contact)
    return {}


async def _escalate(ctx: ToolContext, a: Escalate) -> dict[str, Any]:
    conv = ctx.conversation
    conv.status = "waiting"
    conv.escalation_reason = a.reason
    conv.summary = a.summary
    conv.escalated_at = ctx.now
    conv.assigned_to = None
    ctx.session.add(conv)
    ctx.escalations.append(a)
    await repo.audit(
        ctx.session,
        "conversation.escalated",
        contact_id=ctx.contact.id,
        conversation_id=conv.id,
        at=ctx.now,
        reason=a.reason,
    )
    return {}


_HANDLERS: dict[str, Any] = {
    "create_booking": _create,
    "reschedule_booking": _reschedule,
    "cancel_booking": _cancel,
    "update_contact": _update_contact,
    "tag_contact": _tag,
    "escalate": _escalate,
}


async def run_tool(ctx: ToolContext, name: str, args: dict[str, Any]) -> ToolResult:
    """Validate and run one state-changing tool for the bound contact. Never raises ToolError."""
    model = TOOL_MODELS.get(name)
    if model is None or name not in STATE_CHANGING:
        return ToolResult(name, args, False, "unknown_tool", f"unknown tool {name!r}")
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        return ToolResult(name, args, False, "invalid_args", str(exc.errors()[0]["msg"]))
    clean = parsed.model_dump(exclude_none=True)
    if name != "escalate" and ctx.writes >= ctx.max_writes_per_turn:
        return ToolResult(name, clean, False, "cap_reached", "too many changes in one turn")
    try:
        async with ctx.session.begin_nested():
            data = await _HANDLERS[name](ctx, parsed)
    except ToolError as exc:
        return ToolResult(name, clean, False, exc.code, str(exc))
    if name != "escalate":
        ctx.writes += 1
    if name == "create_booking" and data.get("provider") and "provider" not in clean:
        clean["provider"] = data["provider"]
    return ToolResult(name, clean, True, "ok", "", data)
