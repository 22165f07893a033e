"""Read and write queries the staff app needs beyond ``store.repo``. Callers own the transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, case, cast, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Booking, Contact, Conversation, Message, Trace, User

__all__ = [
    "STATUSES",
    "ConversationView",
    "InboxFilter",
    "InboxRow",
    "TraceFilter",
    "claim",
    "conversation_view",
    "inbox_rows",
    "like_pattern",
    "trace_rows",
    "transcript_signature",
]

STATUSES = ("waiting", "with_person", "bot", "resolved")  # the inbox order: people first
_PRIORITY = case({"waiting": 0, "with_person": 1, "bot": 2}, value=Conversation.status, else_=3)
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE wildcards escaped (use with ``escape='\\\\'``)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class InboxFilter:
    status: str | None = None
    reason: str | None = None
    tag: str | None = None
    q: str | None = None
    limit: int = 100


@dataclass
class InboxRow:
    id: int
    status: str
    reason: str | None
    summary: str | None
    tags: list[str]
    name: str | None
    phone: str
    channel: str
    assignee: str | None
    last_message_at: dt.datetime
    waiting_since: dt.datetime | None
    last_body: str
    last_direction: str | None


def _filtered(f: InboxFilter) -> Any:
    stmt = select(Conversation, Contact).join(Contact, col(Contact.id) == col(Conversation.contact_id))
    if f.status:
        stmt = stmt.where(Conversation.status == f.status)
    if f.reason:
        stmt = stmt.where(Conversation.escalation_reason == f.reason)
    if f.tag:
        stmt = stmt.where(cast(Conversation.tags, String).like(like_pattern(f'"{f.tag}"'), escape="\\"))
    if f.q:
        pat = like_pattern(f.q.strip().lower())
        terms = [
            func.lower(Contact.name).like(pat, escape="\\"),
            col(Conversation.id).in_(
                select(Message.conversation_id).where(func.lower(Message.body).like(pat, escape="\\"))
            ),
        ]
        digits = re.sub(r"\D", "", f.q)
        if len(digits) >= 3:
            terms.append(col(Contact.phone).like(like_pattern(digits), escape="\\"))
        stmt = stmt.where(or_(*terms))
    return stmt


async def inbox_rows(session: AsyncSession, f: InboxFilter) -> list[InboxRow]:
    """Conversations needing a person first (waiting, longest wait first), then held, bot, resolved."""
    stmt = _filtered(f).order_by(_PRIORITY, col(Conversation.last_message_at).desc()).limit(f.limit)
    pairs = list((await session.exec(stmt)).all())
    ids = [conv.id for conv, _ in pairs]
    last: dict[int, Message] = {}
    if ids:
        newest = (
            select(func.max(Message.id))
            .where(col(Message.conversation_id).in_(ids))
            .group_by(col(Message.conversation_id))
        )
        for newest_msg in await session.exec(select(Message).where(col(Message.id).in_(newest))):
            last[newest_msg.conversation_id] = newest_msg
    owners = {c.assigned_to for c, _ in pairs if c.assigned_to}
    emails: dict[int, str] = {}
    if owners:
        for uid, email in await session.exec(select(User.id, User.email).where(col(User.id).in_(owners))):
            emails[uid or 0] = email
    rows = []
    for conv, contact in pairs:
        m = last.get(conv.id or 0)
        since: dt.datetime | None = None
        if conv.status == "waiting":
            since = conv.escalated_at or conv.last_message_at
        elif conv.status == "with_person" and m is not None and m.direction == "in":
            since = m.created_at
        rows.append(
            InboxRow(
                id=conv.id or 0,
                status=conv.status,
                reason=conv.escalation_reason,
                summary=conv.summary,
                tags=list(conv.tags),
                name=contact.name,
                phone=contact.phone,
                channel=conv.channel,
                assignee=emails.get(conv.assigned_to or 0),
                last_message_at=conv.last_message_at,
                waiting_since=since,
                last_body=m.body if m else "",
                last_direction=m.direction if m else None,
            )
        )
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    rows.sort(
        key=lambda r: (
            STATUSES.index(r.status) if r.status in STATUSES else 9,
            (r.waiting_since or far).timestamp() if r.status == "waiting" else -r.last_message_at.timestamp(),
        )
    )
    return rows


async def inbox_tags(session: AsyncSession) -> list[str]:
    """Every tag in use on open conversations, for the filter menu."""
    tags: set[str] = set()
    for value in await session.exec(select(Conversation.tags).where(Conversation.status != "resolved")):
        tags.update(str(t) for t in value or [])
    return sorted(tags)


@dataclass
class ConversationView:
    conversation: Conversation
    contact: Contact
    messages: list[Message]
    assignee: str | None
    bookings: list[Booking]
    trace_ids: dict[int, int] = field(default_factory=dict)  # inbound message id -> trace id
    authors: dict[str, str] = field(default_factory=dict)  # "agent:<id>" -> email
    last_slots: dict[str, str] = field(default_factory=dict)  # newest non-empty slots a turn recorded

    @property
    def signature(self) -> str:
        return transcript_signature(self.messages, self.conversation)


def transcript_signature(messages: list[Message], conv: Conversation) -> str:
    """Changes whenever anything the transcript fragment shows changes (polling compares it)."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"{conv.status}|{conv.assigned_to}|{len(conv.notes)}|{','.join(conv.tags)}".encode())
    for m in messages:
        h.update(f"|{m.id}:{m.status}:{m.error_code}".encode())
    return h.hexdigest()[:16]


async def conversation_view(session: AsyncSession, conversation_id: int) -> ConversationView | None:
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        return None
    contact = await session.get(Contact, conv.contact_id)
    if contact is None:
        return None
    messages = list(
        await session.exec(
            select(Message).where(Message.conversation_id == conv.id).order_by(col(Message.id))
        )
    )
    assignee = None
    if conv.assigned_to:
        user = await session.get(User, conv.assigned_to)
        assignee = user.email if user else None
    bookings = list(
        await session.exec(
            select(Booking)
            .where(Booking.contact_id == contact.id, Booking.status == "active")
            .order_by(col(Booking.start))
        )
    )
    traces = list(
        await session.exec(
            select(Trace.message_id, Trace.id, Trace.slots)
            .where(Trace.conversation_id == conv.id)
            .order_by(col(Trace.id))
        )
    )
    last_slots: dict[str, str] = {}
    for _, _, slots in traces:
        if slots:
            last_slots = {str(k): str(v) for k, v in slots.items() if v}
    agent_ids = {
        int(m.author.split(":", 1)[1])
        for m in messages
        if m.author.startswith("agent:") and m.author.split(":", 1)[1].isdigit()
    }
    authors: dict[str, str] = {}
    if agent_ids:
        for uid, email in await session.exec(select(User.id, User.email).where(col(User.id).in_(agent_ids))):
            authors[f"agent:{uid}"] = email
    return ConversationView(
        conv,
        contact,
        messages,
        assignee,
        bookings,
        {mid: tid or 0 for mid, tid, _ in traces if mid is not None},
        authors,
        last_slots,
    )


async def claim(session: AsyncSession, conversation_id: int, user_id: int) -> bool:
    """Atomically take a conversation nobody holds. False when someone else got there first."""
    result = await session.exec(
        update(Conversation)
        .where(
            col(Conversation.id) == conversation_id,
            col(Conversation.assigned_to).is_(None),
            col(Conversation.status) != "resolved",
        )
        .values(assigned_to=user_id, status="with_person")
    )
    return bool(result.rowcount)


# -- traces ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceFilter:
    route: str | None = None
    intent: str | None = None
    label: str | None = None  # correct | wrong | none
    escalated: bool | None = None
    conversation: int | None = None
    limit: int = 100


async def trace_rows(session: AsyncSession, f: TraceFilter) -> list[tuple[Trace, Message | None]]:
    stmt = select(Trace, Message).join(Message, col(Message.id) == col(Trace.message_id), isouter=True)
    if f.route:
        stmt = stmt.where(Trace.route == f.route)
    if f.intent:
        stmt = stmt.where(Trace.intent == f.intent)
    if f.label == "none":
        stmt = stmt.where(col(Trace.label).is_(None))
    elif f.label:
        stmt = stmt.where(Trace.label == f.label)
    if f.escalated is not None:
        stmt = stmt.where(Trace.escalated == f.escalated)
    if f.conversation is not None:
        stmt = stmt.where(Trace.conversation_id == f.conversation)
    stmt = stmt.order_by(col(Trace.id).desc()).limit(f.limit)
    return [(t, m) for t, m in await session.exec(stmt)]


async def trace_neighbours(session: AsyncSession, trace: Trace) -> tuple[int | None, int | None]:
    """The previous and next turn's trace ids in the same conversation."""
    base = select(Trace.id).where(Trace.conversation_id == trace.conversation_id)
    prev = (await session.exec(base.where(col(Trace.id) < trace.id).order_by(col(Trace.id).desc()))).first()
    nxt = (await session.exec(base.where(col(Trace.id) > trace.id).order_by(col(Trace.id)))).first()
    return prev, nxt


async def replies_for(session: AsyncSession, message_id: int | None) -> list[Message]:
    if message_id is None:
        return []
    return list(
        await session.exec(select(Message).where(Message.in_reply_to == message_id).order_by(col(Message.id)))
    )


# -- users ----------------------------------------------------------------------------------------


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.exec(select(User).order_by(col(User.email))))


async def active_admins(session: AsyncSession) -> int:
    q = select(func.count()).select_from(User).where(User.role == "admin", User.active == True)  # noqa: E712
    return int((await session.exec(q)).one())
