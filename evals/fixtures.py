"""Per-case fixtures: an isolated in-memory store seeded with the case's contact.

Every case gets its own ``sqlite+aiosqlite:///:memory:`` engine built with ``create_all``. The
engine uses a StaticPool (SQLAlchemy's choice for aiosqlite ``:memory:``, asserted here) so all
sessions share the one connection and the database lives as long as the engine. Cases therefore
cannot see each other's bookings or rate-limit windows and may run concurrently.

Fixture bookings are written the way the booking tool writes them: the case's business-local
date and time converted to UTC, ending after the service's duration. ``handoff: true`` opens a
conversation in status ``waiting``, as an escalation leaves it. A case without ``contact`` plays
an unknown number (``DEFAULT_PHONE``) texting first: consent ``unknown``, no bookings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.pool import StaticPool
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store import repo
from store.db import create_all, make_engine, make_sessionmaker
from store.models import AuditEvent, Booking, ConsentEvent, Contact, Conversation, Message, Trace, new_id
from textdesk.business import Business
from textdesk.phone import InvalidPhone, normalize_phone

__all__ = [
    "DEFAULT_PHONE",
    "STRICT",
    "BookingFixture",
    "ContactFixture",
    "booking_view",
    "contact_at_start",
    "conversation_to_case",
    "conversation_turns",
    "final_state",
    "iso_values",
    "isolated_store",
    "seed_contact",
    "trace_to_case",
]

# Case files are checked strictly: an unknown key or a wrong type is an error, not a silent pass.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
DEFAULT_PHONE = "+12125550100"
MEMORY_URL = "sqlite+aiosqlite:///:memory:"


def iso_values(v: Any) -> Any:
    """YAML turns unquoted dates into date objects; the contract compares ISO strings."""
    if isinstance(v, dict):
        return {k: (x.isoformat() if isinstance(x, dt.date) else x) for k, x in v.items()}
    return v


class BookingFixture(BaseModel):
    model_config = STRICT

    id: str | None = Field(default=None, min_length=1, max_length=40)
    service: str
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    time: str = Field(pattern=r"^\d{2}:\d{2}$")
    provider: str | None = None

    _iso = model_validator(mode="before")(iso_values)


class ContactFixture(BaseModel):
    model_config = STRICT

    phone: str = DEFAULT_PHONE
    consent: Literal["opted_in", "unknown", "opted_out"] = "unknown"
    name: str | None = None
    email: str | None = None
    tags: list[str] = Field(default_factory=list)
    bookings: list[BookingFixture] = Field(default_factory=list)
    handoff: bool = False

    @field_validator("phone")
    @classmethod
    def _e164(cls, v: str) -> str:
        try:
            return normalize_phone(v)
        except InvalidPhone as exc:
            raise ValueError(str(exc)) from exc


@asynccontextmanager
async def isolated_store() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh in-memory database with every table; disposed on exit."""
    engine = make_engine(MEMORY_URL)
    if not isinstance(engine.pool, StaticPool):  # each session would get its own empty database
        await engine.dispose()
        raise RuntimeError("in-memory eval store needs a StaticPool")
    try:
        await create_all(engine)
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def local_to_utc(business: Business, date: str, time: str) -> dt.datetime:
    day, at = dt.date.fromisoformat(date), dt.time.fromisoformat(time)
    return dt.datetime.combine(day, at, business.tz).astimezone(dt.UTC)


async def seed_contact(sessions: async_sessionmaker[AsyncSession], business: Business,
                       fixture: ContactFixture, now: dt.datetime) -> int:
    """Write the contact, its bookings and an optional open handoff; return the contact id."""
    async with sessions() as session:
        contact = Contact(phone=fixture.phone, consent=fixture.consent, name=fixture.name,
                          email=fixture.email, tags=list(fixture.tags), created_at=now, updated_at=now)
        session.add(contact)
        await session.flush()
        cid = contact.id or 0
        for b in fixture.bookings:
            svc = business.service(b.service)
            minutes = svc.minutes if svc else 60
            start = local_to_utc(business, b.date, b.time)
            provider = business.provider(b.provider) if b.provider else None
            session.add(Booking(id=b.id or new_id("bk"), contact_id=cid, service=b.service, provider=provider,
                                start=start, end=start + dt.timedelta(minutes=minutes),
                                created_at=now, updated_at=now))
        if fixture.handoff:
            session.add(Conversation(contact_id=cid, status="waiting", escalation_reason="requested",
                                     summary="Handoff open before the case started (fixture).",
                                     started_at=now, last_message_at=now, escalated_at=now))
        await session.commit()
        return cid


async def final_state(sessions: async_sessionmaker[AsyncSession], business: Business,
                      contact_id: int, now: dt.datetime) -> dict[str, Any]:
    """What ``final:`` is checked against: the contact's consent and active bookings (the
    repository's definition: status active and not yet over), in business-local date/time."""
    async with sessions() as session:
        contact = await session.get(Contact, contact_id)
        rows = await repo.active_bookings(session, contact_id, now)
    return {"consent": contact.consent if contact else None,
            "bookings": [booking_view(business, b) for b in rows]}


def booking_view(business: Business, b: Booking, start: dt.datetime | None = None) -> dict[str, Any]:
    local = as_utc(start or b.start).astimezone(business.tz)
    return {"id": b.id, "service": b.service, "date": local.date().isoformat(),
            "time": local.strftime("%H:%M"), "provider": b.provider}


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; the store writes UTC, so naive means UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# -- from a stored conversation back to a case --------------------------------------------------
#
# What the contact looked like when the conversation started is rebuilt from the audit trail:
# consent from ConsentEvent history (the first change after the start tells what it was before;
# no later change means it is still the same; ``_when`` dates the changes), name/email unless a
# later ``contact.updated`` audit touched them, bookings that existed then (created before the
# start and not cancelled before it), at their time before any later reschedule. Other
# customers' bookings are not copied: a slot someone else held may be free in the replay.
# Dialogue state starts empty.

async def conversation_turns(session: AsyncSession,
                             conversation_id: int) -> list[tuple[Message, Trace | None]]:
    """The conversation's inbound messages in arrival order, each with its trace (if any)."""
    msgs = list(await session.exec(select(Message).where(
        Message.conversation_id == conversation_id, Message.direction == "in").order_by(col(Message.id))))
    traces = await session.exec(select(Trace).where(Trace.conversation_id == conversation_id))
    by_msg = {t.message_id: t for t in traces}
    return [(m, by_msg.get(m.id)) for m in msgs]


async def contact_at_start(session: AsyncSession, conv: Conversation,
                           business: Business | None) -> dict[str, Any]:
    """The contact fixture as it was when ``conv`` started (see the note above)."""
    contact = await session.get(Contact, conv.contact_id)
    if contact is None:
        raise LookupError(f"conversation {conv.id} has no contact")
    start = as_utc(conv.started_at)
    changes = await session.exec(
        select(ConsentEvent).where(ConsentEvent.contact_id == contact.id).order_by(col(ConsentEvent.id)))
    events = [e for e in changes if await _when(session, e) >= start]
    audits = [a for a in await session.exec(select(AuditEvent).where(
        AuditEvent.contact_id == contact.id).order_by(col(AuditEvent.id))) if as_utc(a.at) >= start]
    touched = {f for a in audits if a.kind == "contact.updated" for f in a.data.get("fields", [])}
    out: dict[str, Any] = {"phone": contact.phone, "consent": events[0].old if events else contact.consent}
    for key in ("name", "email"):
        if key not in touched and getattr(contact, key):
            out[key] = getattr(contact, key)
    if contact.tags:
        out["tags"] = list(contact.tags)
    bookings = []
    rows = await session.exec(
        select(Booking).where(Booking.contact_id == contact.id).order_by(col(Booking.start)))
    for b in rows:
        later = [a for a in audits if a.data.get("booking_id") == b.id]
        if as_utc(b.created_at) >= start or (b.status != "active" and not any(
                a.kind == "booking.cancelled" for a in later)):
            continue
        moved = next((a for a in later if a.kind == "booking.rescheduled"), None)
        begin = dt.datetime.fromisoformat(moved.data["old"]) if moved else b.start
        if as_utc(begin) + (b.end - b.start) <= start:
            continue
        if business is None:
            raise ValueError("a business is needed to write the contact's bookings in local time")
        view = booking_view(business, b, begin)
        bookings.append({k: v for k, v in view.items() if v is not None})
    if bookings:
        out["bookings"] = bookings
    return out


async def _when(session: AsyncSession, event: ConsentEvent) -> dt.datetime:
    """When a consent change happened. ``repo.set_consent`` stamps the wall clock, not the injected
    one, so a change caused by a booking is dated by the booking (stamped with the turn's time)."""
    if event.source == "booking":
        booking = await session.get(Booking, event.detail)
        if booking is not None:
            return as_utc(booking.created_at)
    return as_utc(event.at)


def _tool_expect(call: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """A stored tool call as an expectation. Only the escalation reason is kept for ``escalate``
    (the summary is prose); ids of bookings made during the conversation are dropped because a
    replay mints new ones."""
    args = dict(call.get("args") or {})
    if call["name"] == "escalate":
        args = {"reason": args.get("reason")}
    if "booking_id" in args and args["booking_id"] not in known:
        del args["booking_id"]
    return {"name": call["name"], "args": args}


async def conversation_to_case(session: AsyncSession, conversation_id: int, business: Business | None = None,
                               *, business_ref: str | dict[str, Any] | None = None,
                               upto_message_id: int | None = None) -> dict[str, Any]:
    """A stored conversation as a docs/architecture.md section 4 case that ``textdesk eval`` runs unchanged.

    Turns are the inbound messages at their stored times; each turn's ``expect`` comes from its
    trace (route, rule, intent, tools, escalated, reply). ``business`` converts fixture bookings
    to local time (required only when there are some); ``business_ref`` is written as the case's
    ``business``. With ``upto_message_id`` the case stops at that message and only it carries
    expectations: the earlier turns are context.
    """
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise LookupError(f"no conversation {conversation_id}")
    turns = await conversation_turns(session, conversation_id)
    if upto_message_id is not None:
        cut = next((i + 1 for i, (m, _) in enumerate(turns) if m.id == upto_message_id), len(turns))
        turns = turns[:cut]
    if not turns:
        raise ValueError(f"conversation {conversation_id} has no inbound messages")
    contact = await contact_at_start(session, conv, business)
    known = {b["id"] for b in contact.get("bookings", [])}
    tags = ["exported", *conv.tags]
    if any(t is not None and t.route == "limited" for _, t in turns):
        tags.append("ratelimit")  # it happened under real limits; replay it under them
    case: dict[str, Any] = {"id": f"conversation-{conversation_id}", "tags": tags,
                            "now": as_utc(turns[0][0].created_at).isoformat(), "contact": contact}
    if business_ref is not None:
        case["business"] = business_ref
    case["turns"] = []
    for i, (msg, trace) in enumerate(turns):
        turn: dict[str, Any] = {"user": msg.body}
        if i:
            turn["at"] = as_utc(msg.created_at).isoformat()
        if trace is not None and (upto_message_id is None or msg.id == upto_message_id):
            expect: dict[str, Any] = {"route": trace.route}
            expect |= {k: getattr(trace, k) for k in ("rule", "intent") if getattr(trace, k) is not None}
            expect["tools"] = [_tool_expect(t, known) for t in trace.tools]
            expect["escalated"] = trace.escalated
            expect["reply"] = trace.reply is not None
            turn["expect"] = expect
        case["turns"].append(turn)
    return case


async def trace_to_case(session: AsyncSession, trace_id: int, business: Business | None = None,
                        *, business_ref: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """One traced turn as a case: its conversation up to that turn, expectations on it alone."""
    trace = await session.get(Trace, trace_id)
    if trace is None or trace.conversation_id is None:
        raise LookupError(f"no trace {trace_id} with a conversation")
    case = await conversation_to_case(session, trace.conversation_id, business, business_ref=business_ref,
                                      upto_message_id=trace.message_id)
    case["id"] = f"trace-{trace_id}"
    return case
