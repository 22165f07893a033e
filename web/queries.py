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

from store.models import Booking, ConsentEvent, Contact, Conversation, Message, Trace, User
from textdesk.clock import as_aware
from web.risk import MessageFacts, risk_reasons

__all__ = [
    "STATES",
    "STATUSES",
    "VIEWS",
    "ContactHistory",
    "ConversationView",
    "InboxFilter",
    "InboxRow",
    "claim",
    "colleagues",
    "contact_history",
    "conversation_view",
    "inbox_counts",
    "inbox_rows",
    "like_pattern",
    "transcript_signature",
]

STATUSES = ("waiting", "with_person", "bot", "resolved")  # the inbox order: people first
_PRIORITY = case({"waiting": 0, "with_person": 1, "bot": 2}, value=Conversation.status, else_=3)
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE wildcards escaped (use with ``escape='\\\\'``)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


VIEWS = ("all", "mine", "unassigned")  # the inbox's tabs
STATES = ("at_risk", "opted_out", "blocked")


@dataclass(frozen=True)
class InboxFilter:
    status: str | None = None
    reason: str | None = None
    tag: str | None = None
    q: str | None = None
    view: str = "all"  # all | mine (held by user_id) | unassigned (needs a person, nobody holds it)
    state: str | None = None  # at_risk | opted_out | blocked (the injection screen blocked them)
    user_id: int | None = None
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
    consent: str = "unknown"
    blocked: bool = False  # the injection screen blocked one of their messages
    risk: list[str] = field(default_factory=list)  # web.risk reasons, most urgent first
    last_status: str | None = None  # the newest outbound message's delivery status


def _filtered(f: InboxFilter) -> Any:
    stmt = select(Conversation, Contact).join(Contact, col(Contact.id) == col(Conversation.contact_id))
    if f.status:
        stmt = stmt.where(Conversation.status == f.status)
    if f.view == "mine":
        stmt = stmt.where(Conversation.assigned_to == f.user_id, Conversation.status != "resolved")
    elif f.view == "unassigned":
        stmt = stmt.where(col(Conversation.assigned_to).is_(None), Conversation.status == "waiting")
    if f.state == "opted_out":
        stmt = stmt.where(Contact.consent == "opted_out")
    elif f.state == "blocked":
        screened = select(Trace.conversation_id).where(Trace.route == "blocked")
        stmt = stmt.where(col(Conversation.id).in_(screened))
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


async def inbox_counts(session: AsyncSession, user_id: int) -> dict[str, int]:
    """How many conversations each tab holds: all, mine (open ones I hold), unassigned."""
    nobody = col(Conversation.assigned_to).is_(None) & (Conversation.status == "waiting")
    held = (col(Conversation.assigned_to) == user_id) & (Conversation.status != "resolved")
    q = select(
        func.count(),
        func.sum(case((held, 1), else_=0)),
        func.sum(case((nobody, 1), else_=0)),
    )
    total, mine, unassigned = (await session.exec(q)).one()
    return {"all": int(total or 0), "mine": int(mine or 0), "unassigned": int(unassigned or 0)}


async def _risk_inputs(
    session: AsyncSession, ids: list[int], open_ids: list[int]
) -> tuple[dict[int, list[MessageFacts]], dict[int, list[list[dict[str, Any]]]], set[int]]:
    """Each open conversation's messages (oldest first) and turns' trace steps (a resolved one is
    never at risk, so its history is not read), and which of ``ids`` the screen blocked."""
    facts: dict[int, list[MessageFacts]] = {i: [] for i in open_ids}
    steps: dict[int, list[list[dict[str, Any]]]] = {i: [] for i in open_ids}
    if not ids:
        return facts, steps, set()
    cols = (Message.conversation_id, Message.direction, Message.author, Message.body, Message.status,
            Message.created_at)
    rows = await session.exec(
        select(*cols).where(col(Message.conversation_id).in_(open_ids)).order_by(col(Message.id))  # type: ignore[call-overload]
    )
    for cid, direction, author, body, status, at in rows:
        facts[cid].append(MessageFacts(direction, author, body or "", status, at))
    for cid, turn in await session.exec(
        select(Trace.conversation_id, Trace.steps)
        .where(col(Trace.conversation_id).in_(open_ids))
        .order_by(col(Trace.id))
    ):
        steps[cid or 0].append(list(turn or []))
    screened = select(Trace.conversation_id).where(
        col(Trace.conversation_id).in_(ids), Trace.route == "blocked"
    )
    blocked = {int(cid or 0) for cid in await session.exec(screened.distinct())}
    return facts, steps, blocked


async def inbox_rows(
    session: AsyncSession,
    f: InboxFilter,
    now: dt.datetime | None = None,
    idle_after: dt.timedelta | None = None,
) -> list[InboxRow]:
    """At-risk conversations first, then those needing a person (longest wait first), then held,
    bot, resolved."""
    stmt = _filtered(f).order_by(_PRIORITY, col(Conversation.last_message_at).desc()).limit(f.limit)
    pairs = list((await session.exec(stmt)).all())
    ids = [conv.id or 0 for conv, _ in pairs]
    open_ids = [conv.id or 0 for conv, _ in pairs if conv.status != "resolved"]
    facts, steps, blocked = await _risk_inputs(session, ids, open_ids)
    now = now or dt.datetime.now(dt.UTC)
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
        elif conv.status in ("with_person", "bot") and m is not None and m.direction == "in":
            since = m.created_at  # the customer's message has no answer yet
        cid = conv.id or 0
        outs = [x for x in facts.get(cid, []) if x.direction == "out"]
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
                consent=contact.consent,
                blocked=cid in blocked,
                risk=risk_reasons(
                    facts.get(cid, []), steps.get(cid, []), status=conv.status, now=now, idle_after=idle_after
                ),
                last_status=outs[-1].status if outs else None,
            )
        )
    if f.state == "at_risk":
        rows = [r for r in rows if r.risk]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    rows.sort(
        key=lambda r: (
            0 if r.risk else 1,  # at risk rises to the top, whatever its status
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

    @property
    def timeline(self) -> list[tuple[str, Any]]:
        """Messages and staff notes in time order: ("msg", Message) or ("note", dict)."""
        items: list[tuple[dt.datetime, int, str, Any]] = [
            (as_aware(m.created_at), i, "msg", m) for i, m in enumerate(self.messages)
        ]
        for j, note in enumerate(self.conversation.notes):
            try:
                at = as_aware(dt.datetime.fromisoformat(str(note.get("at"))))
            except ValueError:
                at = dt.datetime.max.replace(tzinfo=dt.UTC)
            items.append((at, len(self.messages) + j, "note", note))
        return [(kind, item) for _, _, kind, item in sorted(items, key=lambda x: (x[0], x[1]))]

    @property
    def unanswered(self) -> Message | None:
        """The customer's newest message when nothing was sent after it (None otherwise)."""
        last = self.messages[-1] if self.messages else None
        return last if last is not None and last.direction == "in" else None



@dataclass
class ContactHistory:
    consent: list[ConsentEvent]
    conversations: list[Conversation]  # the contact's other conversations, newest first


async def contact_history(session: AsyncSession, contact_id: int, current: int) -> ContactHistory:
    events = await session.exec(
        select(ConsentEvent)
        .where(ConsentEvent.contact_id == contact_id)
        .order_by(col(ConsentEvent.id).desc())
    )
    convs = await session.exec(
        select(Conversation)
        .where(Conversation.contact_id == contact_id, Conversation.id != current)
        .order_by(col(Conversation.id).desc())
        .limit(20)
    )
    return ContactHistory(list(events), list(convs))


def transcript_signature(messages: list[Message], conv: Conversation) -> str:
    """Changes whenever anything the transcript fragment shows changes (polling compares it)."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"{conv.status}|{conv.assigned_to}|{len(conv.notes)}|{','.join(conv.tags)}".encode())
    for m in messages:
        h.update(f"|{m.id}:{m.status}:{m.error_code}:{m.attempts}:{m.next_attempt_at}".encode())
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


async def colleagues(session: AsyncSession) -> list[User]:
    """Who a conversation can be assigned to: active agents and admins."""
    q = select(User).where(User.active == True, col(User.role).in_(("agent", "admin")))  # noqa: E712
    return list(await session.exec(q.order_by(col(User.email))))


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.exec(select(User).order_by(col(User.email))))


async def active_admins(session: AsyncSession) -> int:
    q = select(func.count()).select_from(User).where(User.role == "admin", User.active == True)  # noqa: E712
    return int((await session.exec(q)).one())
