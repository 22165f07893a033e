"""Queries behind the trace viewer: the filtered list, filter choices, the label summary per prompt
version and a conversation's header. Callers own the transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Contact, Conversation, Message, Trace
from textdesk.redact import redact
from web.queries import like_pattern

__all__ = [
    "NO_PROMPT",
    "ConversationHeader",
    "LabelCounts",
    "TraceFilter",
    "conversation_header",
    "conversation_traces",
    "distinct_values",
    "label_summary",
    "recent_conversations",
    "trace_rows",
]

NO_PROMPT = "none"  # the prompt filter's value for turns no prompt answered (rules, offline model)
_SCAN = 2000  # a free-text search looks at most this many newest matching turns


@dataclass(frozen=True)
class TraceFilter:
    route: str | None = None
    intent: str | None = None
    label: str | None = None  # correct | wrong | none
    escalated: bool | None = None
    conversation: int | None = None
    prompt: str | None = None  # a prompt version, or NO_PROMPT
    model: str | None = None
    since: dt.datetime | None = None  # created at or after (UTC)
    until: dt.datetime | None = None  # created before (UTC)
    q: str | None = None  # words in what the customer wrote or the reply
    limit: int = 100


async def trace_rows(session: AsyncSession, f: TraceFilter) -> list[tuple[Trace, Message | None]]:
    """Newest first. The free text is matched in SQL, then again on the redacted text: reviewers see
    only redacted text, so searching for digits of a phone number must not tell whether it is there."""
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
    if f.prompt == NO_PROMPT:
        stmt = stmt.where(col(Trace.prompt_version).is_(None))
    elif f.prompt:
        stmt = stmt.where(Trace.prompt_version == f.prompt)
    if f.model:
        stmt = stmt.where(Trace.model == f.model)
    if f.since is not None:
        stmt = stmt.where(col(Trace.created_at) >= f.since)
    if f.until is not None:
        stmt = stmt.where(col(Trace.created_at) < f.until)
    needle = (f.q or "").strip().lower()
    if needle:
        pat = like_pattern(needle)
        in_body = func.lower(Message.body).like(pat, escape="\\")
        stmt = stmt.where(or_(in_body, func.lower(Trace.reply).like(pat, escape="\\")))
    stmt = stmt.order_by(col(Trace.id).desc()).limit(_SCAN if needle else f.limit)
    rows: list[tuple[Trace, Message | None]] = [(t, m) for t, m in await session.exec(stmt)]
    if needle:
        rows = [
            (t, m)
            for t, m in rows
            if needle in redact(m.body if m else "").lower() or needle in redact(t.reply or "").lower()
        ][: f.limit]
    return rows


async def distinct_values(session: AsyncSession, column: str) -> list[str]:
    """The prompt versions (or models) traces were answered with, for the filter menus."""
    attr = getattr(Trace, column)
    rows = await session.exec(select(attr).where(col(attr).is_not(None)).distinct())
    return sorted(str(v) for v in rows)


@dataclass
class LabelCounts:
    prompt: str | None
    correct: int = 0
    wrong: int = 0
    unlabelled: int = 0

    @property
    def total(self) -> int:
        return self.correct + self.wrong + self.unlabelled


async def label_summary(session: AsyncSession) -> list[LabelCounts]:
    """Per prompt version (None: turns no prompt answered), how reviewers labelled its turns."""
    stmt = select(Trace.prompt_version, Trace.label, func.count()).group_by(
        col(Trace.prompt_version), col(Trace.label)
    )
    by: dict[str | None, LabelCounts] = {}
    for prompt, label, n in await session.exec(stmt):
        row = by.setdefault(prompt, LabelCounts(prompt))
        if label == "correct":
            row.correct += n
        elif label == "wrong":
            row.wrong += n
        else:
            row.unlabelled += n
    return sorted(by.values(), key=lambda r: (r.prompt is None, r.prompt or ""))


@dataclass(frozen=True)
class ConversationHeader:
    conversation: Conversation
    contact: Contact
    turns: int


async def conversation_header(session: AsyncSession, conversation_id: int) -> ConversationHeader | None:
    conv = await session.get(Conversation, conversation_id)
    contact = await session.get(Contact, conv.contact_id) if conv else None
    if conv is None or contact is None:
        return None
    turns = (
        await session.exec(select(func.count()).select_from(Trace).where(Trace.conversation_id == conv.id))
    ).one()
    return ConversationHeader(conv, contact, int(turns))


async def conversation_traces(
    session: AsyncSession, conversation_id: int
) -> list[tuple[Trace, Message | None]]:
    """The conversation's turns in order, each with the customer's message."""
    stmt = (
        select(Trace, Message)
        .join(Message, col(Message.id) == col(Trace.message_id), isouter=True)
        .where(Trace.conversation_id == conversation_id)
        .order_by(col(Trace.id))
    )
    return [(t, m) for t, m in await session.exec(stmt)]


async def recent_conversations(
    session: AsyncSession, limit: int = 50
) -> list[tuple[Conversation, Contact, int]]:
    """Conversations with traced turns, newest first, with their turn counts (the replay picker)."""
    turns = func.count(col(Trace.id))
    stmt = (
        select(Conversation, Contact, turns)
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .join(Trace, col(Trace.conversation_id) == col(Conversation.id))
        .group_by(col(Conversation.id), col(Contact.id))
        .order_by(col(Conversation.last_message_at).desc())
        .limit(limit)
    )
    return [(c, p, int(n)) for c, p, n in await session.exec(stmt)]
