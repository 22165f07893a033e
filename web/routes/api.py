"""The JSON API under /api (OpenAPI schema at /schema). Same session cookie as the pages;
anonymous -> 401, wrong role -> 403. Conversations for agents and admins, traces (redacted)
for reviewers and admins."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from litestar import Controller, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.params import FromQuery as Q

from store.models import Trace
from textdesk.redact import redact, redact_obj
from web.deps import CurrentStaff, Db
from web.guards import ANY_STAFF, INBOX, REVIEW, requires
from web.handoff import collected_fields, next_step, summary
from web.queries import InboxFilter, conversation_view, inbox_rows
from web.trace_queries import TraceFilter, trace_rows


def _in_range(row_id: int) -> bool:
    """Ids are 32-bit in the database; a larger one cannot exist (and would be a driver error)."""
    return 0 < row_id <= 2**31 - 1


__all__ = ["api_router"]

Status = Literal["waiting", "with_person", "bot", "resolved"]
Reason = Literal[
    "requested", "low_confidence", "billing", "complaint", "sensitive", "repeated_failure", "other"
]
Route = Literal["rule", "agent", "handoff", "blocked", "limited"]
Label = Literal["correct", "wrong", "none"]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Maximum number of items")]


@dataclass
class Me:
    id: int
    email: str
    role: str


@dataclass
class ConversationItem:
    id: int
    status: str
    escalation_reason: str | None
    summary: str | None
    tags: list[str]
    contact_name: str | None
    phone: str
    assignee: str | None
    last_message_at: dt.datetime
    waiting_since: dt.datetime | None


@dataclass
class MessageItem:
    id: int
    direction: str
    body: str
    status: str
    error_code: int | None
    segments: int
    author: str
    kind: str
    delivery: str | None
    created_at: dt.datetime


@dataclass
class ConversationDetail:
    id: int
    status: str
    escalation_reason: str | None
    summary: str
    next_step: str
    tags: list[str]
    notes: list[dict[str, Any]]
    contact_name: str | None
    phone: str
    assignee: str | None
    fields: dict[str, str]
    messages: list[MessageItem] = field(default_factory=list)


@dataclass
class TraceItem:
    id: int
    message_id: int | None
    conversation_id: int | None
    route: str
    rule: str | None
    intent: str | None
    confidence: float | None
    escalated: bool
    escalation_reason: str | None
    label: str | None
    created_at: dt.datetime
    text: str | None


@dataclass
class TraceDetail:
    id: int
    message_id: int | None
    conversation_id: int | None
    route: str
    rule: str | None
    intent: str | None
    confidence: float | None
    slots: dict[str, Any]
    tools: list[dict[str, Any]]
    escalated: bool
    escalation_reason: str | None
    reply: str | None
    segments: int
    provider: str | None
    prompt_version: str | None
    model: str | None
    llm_calls: int
    tokens_in: int
    tokens_out: int
    latency_ms: float
    steps: list[dict[str, Any]]
    llm: list[dict[str, Any]]
    label: str | None
    label_comment: str | None
    labelled_by: str | None
    created_at: dt.datetime


@get("/me", guards=[requires(*ANY_STAFF)], summary="The signed-in user")
async def me(staff: CurrentStaff) -> Me:
    return Me(staff.id, staff.email, staff.role)


class ConversationsAPI(Controller):
    path = "/conversations"
    guards = [requires(*INBOX)]  # noqa: RUF012
    tags = ["conversations"]  # noqa: RUF012

    @get("/", summary="Conversations, people-needed first")
    async def list_conversations(
        self,
        db: Db,
        status: Q[Status | None] = None,
        reason: Q[Reason | None] = None,
        tag: Q[str | None] = None,
        q: Q[str | None] = None,
        limit: Limit = 100,
    ) -> list[ConversationItem]:
        rows = await inbox_rows(db, InboxFilter(status=status, reason=reason, tag=tag, q=q, limit=limit))
        return [
            ConversationItem(
                r.id,
                r.status,
                r.reason,
                r.summary,
                r.tags,
                r.name,
                r.phone,
                r.assignee,
                r.last_message_at,
                r.waiting_since,
            )
            for r in rows
        ]

    @get("/{conversation_id:int}", summary="One conversation with its transcript")
    async def get_conversation(self, db: Db, conversation_id: FromPath[int]) -> ConversationDetail:
        view = await conversation_view(db, conversation_id) if _in_range(conversation_id) else None
        if view is None:
            raise NotFoundException(f"no conversation {conversation_id}")
        c, contact = view.conversation, view.contact
        return ConversationDetail(
            id=c.id or 0,
            status=c.status,
            escalation_reason=c.escalation_reason,
            summary=summary(c, contact),
            next_step=next_step(c, contact),
            tags=list(c.tags),
            notes=list(c.notes),
            contact_name=contact.name,
            phone=contact.phone,
            assignee=view.assignee,
            fields=dict(collected_fields(contact, view.last_slots)),
            messages=[
                MessageItem(
                    m.id or 0,
                    m.direction,
                    m.body,
                    m.status,
                    m.error_code,
                    m.segments,
                    m.author,
                    m.kind,
                    m.delivery,
                    m.created_at,
                )
                for m in view.messages
            ],
        )


class TracesAPI(Controller):
    path = "/traces"
    guards = [requires(*REVIEW)]  # noqa: RUF012
    tags = ["traces"]  # noqa: RUF012

    @get("/", summary="Recent turns (PII-redacted)")
    async def list_traces(
        self,
        db: Db,
        route: Q[Route | None] = None,
        intent: Q[str | None] = None,
        label: Q[Label | None] = None,
        limit: Limit = 100,
    ) -> list[TraceItem]:
        rows = await trace_rows(db, TraceFilter(route=route, intent=intent, label=label, limit=limit))
        return [
            TraceItem(
                t.id or 0,
                t.message_id,
                t.conversation_id,
                t.route,
                t.rule,
                t.intent,
                t.confidence,
                t.escalated,
                t.escalation_reason,
                t.label,
                t.created_at,
                redact(m.body) if m else None,
            )
            for t, m in rows
        ]

    @get("/{trace_id:int}", summary="One turn's decision path (PII-redacted)")
    async def get_trace(self, db: Db, trace_id: FromPath[int]) -> TraceDetail:
        t = await db.get(Trace, trace_id) if _in_range(trace_id) else None
        if t is None:
            raise NotFoundException(f"no trace {trace_id}")
        return TraceDetail(
            id=t.id or 0,
            message_id=t.message_id,
            conversation_id=t.conversation_id,
            route=t.route,
            rule=t.rule,
            intent=t.intent,
            confidence=t.confidence,
            slots=redact_obj(t.slots),
            tools=redact_obj(t.tools),
            escalated=t.escalated,
            escalation_reason=t.escalation_reason,
            reply=redact(t.reply) if t.reply else None,
            segments=t.segments,
            provider=t.provider,
            prompt_version=t.prompt_version,
            model=t.model,
            llm_calls=t.llm_calls,
            tokens_in=t.tokens_in,
            tokens_out=t.tokens_out,
            latency_ms=t.latency_ms,
            steps=redact_obj(t.steps),
            llm=redact_obj(t.llm),
            label=t.label,
            label_comment=redact(t.label_comment) if t.label_comment else None,
            labelled_by=t.labelled_by,
            created_at=t.created_at,
        )


api_router = Router(path="/api", route_handlers=[me, ConversationsAPI, TracesAPI])
