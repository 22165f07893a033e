"""Queries the pipeline, tools and web app share. Functions over an AsyncSession; callers own
the transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import (
    AuditEvent,
    Booking,
    ConsentEvent,
    Contact,
    Conversation,
    Message,
    WebhookNonce,
    utcnow,
)
from tools.availability import Busy

__all__ = [
    "OPEN_STATUSES",
    "active_bookings",
    "audit",
    "busy_between",
    "contact_by_phone",
    "find_inbound",
    "first_use",
    "get_or_create_contact",
    "merge_contacts",
    "open_conversation",
    "replies_to",
    "set_consent",
]

# A conversation in one of these is held by people: the bot stays silent.
HANDOFF_STATUSES = ("waiting", "with_person")
OPEN_STATUSES = ("bot", "waiting", "with_person")
_IDLE = dt.timedelta(hours=24)


async def contact_by_phone(session: AsyncSession, phone: str) -> Contact | None:
    return (await session.exec(select(Contact).where(Contact.phone == phone))).first()


async def get_or_create_contact(session: AsyncSession, phone: str) -> Contact:
    contact = await contact_by_phone(session, phone)
    if contact is None:
        contact = Contact(phone=phone)
        session.add(contact)
        await session.flush()
    return contact


async def merge_contacts(session: AsyncSession, keep: Contact, drop: Contact) -> Contact:
    """Make ``drop`` part of ``keep``: one person reached on two channels is one contact. Every
    row that points at ``drop`` (conversations, messages, bookings, consent history, traces...)
    is moved, found from the schema so a new table cannot be forgotten; ``drop`` is deleted."""
    from sqlalchemy import update as sql_update
    from sqlmodel import SQLModel

    for table in SQLModel.metadata.sorted_tables:
        if "contact_id" in table.c and table.name != "contact":
            await session.exec(
                sql_update(table).where(table.c.contact_id == drop.id).values(contact_id=keep.id)
            )
    keep.name = keep.name or drop.name
    keep.email = keep.email or drop.email
    keep.tags = sorted({*keep.tags, *drop.tags})
    keep.state = drop.state or keep.state  # the conversation in progress is the dropped one's
    visitor = drop.visitor_id
    await session.delete(drop)
    await session.flush()  # the visitor id is free before ``keep`` takes it
    keep.visitor_id = keep.visitor_id or visitor
    keep.updated_at = utcnow()
    session.add(keep)
    await session.flush()
    return keep


async def set_consent(
    session: AsyncSession,
    contact: Contact,
    new: str,
    source: str,
    detail: str = "",
    actor: str = "system",
    at: dt.datetime | None = None,
) -> bool:
    """Change consent and record who/what/when. Returns False when nothing changed."""
    if contact.consent == new:
        return False
    when = at or utcnow()
    session.add(
        ConsentEvent(
            contact_id=contact.id or 0,
            old=contact.consent,
            new=new,
            source=source,
            detail=detail[:500],
            actor=actor,
            at=when,
        )
    )
    contact.consent = new
    contact.updated_at = when
    session.add(contact)
    return True


async def open_conversation(
    session: AsyncSession,
    contact: Contact,
    now: dt.datetime,
    channel: str = "sms",
    provider: str | None = None,
    reply_from: str | None = None,
) -> Conversation:
    """The contact's current conversation on ``channel``; a new one after resolution or a day of
    bot silence. ``provider`` (of the message at hand) becomes the one replies go back through."""
    conv = (
        await session.exec(
            select(Conversation)
            .where(
                Conversation.contact_id == contact.id,
                col(Conversation.status).in_(OPEN_STATUSES),
                Conversation.channel == channel,
            )
            .order_by(col(Conversation.id).desc())
        )
    ).first()
    if conv is not None and (conv.status != "bot" or now - conv.last_message_at < _IDLE):
        if provider and (conv.provider, conv.reply_from) != (provider, reply_from):
            conv.provider, conv.reply_from = provider, reply_from
            session.add(conv)
        return conv
    if conv is not None:
        conv.status = "resolved"
        conv.resolved_at = now
        session.add(conv)
    conv = Conversation(
        contact_id=contact.id or 0,
        channel=channel,
        provider=provider,
        reply_from=reply_from if provider else None,
        started_at=now,
        last_message_at=now,
    )
    session.add(conv)
    await session.flush()
    return conv


async def find_inbound(session: AsyncSession, provider: str, provider_message_id: str) -> Message | None:
    rows = await session.exec(
        select(Message).where(
            Message.provider == provider, Message.provider_message_id == provider_message_id
        )
    )
    return rows.first()


async def first_use(
    session: AsyncSession, provider: str, nonce: str, now: dt.datetime, window: dt.timedelta
) -> bool:
    """Record a signed webhook's nonce; False when it was already used (a replay). Nonces older
    than ``window`` are pruned: the signature's own age check refuses those requests anyway."""
    await session.exec(delete(WebhookNonce).where(col(WebhookNonce.seen_at) < now - window))
    try:
        async with session.begin_nested():
            session.add(WebhookNonce(provider=provider, nonce=nonce[:128], seen_at=now))
    except IntegrityError:
        return False
    return True


async def replies_to(session: AsyncSession, message_id: int) -> list[Message]:
    rows = await session.exec(
        select(Message).where(Message.in_reply_to == message_id).order_by(col(Message.id))
    )
    return list(rows)


async def active_bookings(session: AsyncSession, contact_id: int, after: dt.datetime) -> list[Booking]:
    rows = await session.exec(
        select(Booking)
        .where(Booking.contact_id == contact_id, Booking.status == "active", Booking.end > after)
        .order_by(col(Booking.start))
    )
    return list(rows)


async def bookings_between(
    session: AsyncSession,
    after: dt.datetime | None = None,
    before: dt.datetime | None = None,
    active_only: bool = True,
) -> list[tuple[Booking, Contact]]:
    """Bookings (of every contact) ending after ``after`` and starting before ``before``, each with
    its contact, by start time; only active ones unless ``active_only`` is false."""
    query = select(Booking, Contact).join(Contact, col(Contact.id) == col(Booking.contact_id))
    if active_only:
        query = query.where(Booking.status == "active")
    if after is not None:
        query = query.where(Booking.end > after)
    if before is not None:
        query = query.where(Booking.start < before)
    return [(b, c) for b, c in await session.exec(query.order_by(col(Booking.start), col(Booking.id)))]


async def busy_between(
    session: AsyncSession, start: dt.datetime, end: dt.datetime, exclude_booking: str | None = None
) -> list[Busy]:
    rows = await session.exec(
        select(Booking).where(Booking.status == "active", Booking.start < end, Booking.end > start)
    )
    return [Busy(b.start, b.end, b.provider, b.id) for b in rows if b.id != exclude_booking]


async def audit(
    session: AsyncSession,
    kind: str,
    *,
    contact_id: int | None = None,
    conversation_id: int | None = None,
    actor: str = "system",
    at: dt.datetime | None = None,
    **data: Any,
) -> None:
    session.add(
        AuditEvent(
            kind=kind,
            contact_id=contact_id,
            conversation_id=conversation_id,
            actor=actor,
            data=data,
            at=at or utcnow(),
        )
    )


async def idle_held(session: AsyncSession, cutoff: dt.datetime) -> list[tuple[int, int]]:
    """(conversation id, message id) of conversations a person holds whose newest message is the
    customer's, sent at or before ``cutoff``: someone took it and has not answered."""
    held = select(Conversation.id).where(Conversation.status == "with_person")
    newest = (
        select(func.max(Message.id))
        .where(col(Message.conversation_id).in_(held))
        .group_by(col(Message.conversation_id))
    )
    rows = await session.exec(
        select(Message.conversation_id, Message.id).where(
            col(Message.id).in_(newest), Message.direction == "in", col(Message.created_at) <= cutoff
        )
    )
    return [(int(c), int(m or 0)) for c, m in rows]

