"""Tables. Datetimes are timezone-aware UTC (SQLModel's UTCDateTime keeps SQLite and PostgreSQL alike)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DDL, JSON, Column, Index, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from store import no_overlap

__all__ = [
    "AuditEvent",
    "Booking",
    "CannedReply",
    "ConsentEvent",
    "Contact",
    "Conversation",
    "Job",
    "Message",
    "Payment",
    "StaffSession",
    "StripeEvent",
    "Trace",
    "TurnLock",
    "User",
    "new_id",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _json(default: Any) -> Any:
    return Field(default_factory=lambda: type(default)(default), sa_column=Column(JSON, nullable=False))


class Contact(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("visitor_id", name="uq_contact_visitor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(index=True, unique=True, max_length=32)  # E.164
    name: str | None = Field(default=None, max_length=120)
    email: str | None = Field(default=None, max_length=254)
    tags: list[str] = _json([])
    consent: str = Field(default="unknown", max_length=16)  # opted_in | unknown | opted_out
    # A web-chat visitor's id; ``phone`` is "visitor:<id>" until they leave a number.
    visitor_id: str | None = Field(default=None, max_length=64)
    # Dialogue state: active task, collected slots, pending question, offered choices.
    state: dict[str, Any] = _json({})
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class ConsentEvent(SQLModel, table=True):
    """Who or what changed a contact's consent, and when (kept forever for compliance)."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    old: str = Field(max_length=16)
    new: str = Field(max_length=16)
    source: str = Field(max_length=40)  # keyword | natural_language | carrier_opt_out | booking | staff
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    actor: str = Field(default="system", max_length=120)
    at: dt.datetime = Field(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str = Field(default="sms", max_length=16)
    # The provider of the latest inbound: replies go back through it.
    provider: str | None = Field(default=None, max_length=16)
    reply_from: str | None = Field(default=None, max_length=64)  # the number they wrote to; replies use it
    # bot | waiting (needs a person) | with_person | resolved
    status: str = Field(default="bot", max_length=16, index=True)
    escalation_reason: str | None = Field(default=None, max_length=32)
    summary: str | None = Field(default=None, sa_column=Column(Text))
    assigned_to: int | None = Field(default=None, foreign_key="user.id")
    tags: list[str] = _json([])
    notes: list[dict[str, Any]] = _json([])
    started_at: dt.datetime = Field(default_factory=utcnow)
    last_message_at: dt.datetime = Field(default_factory=utcnow, index=True)
    escalated_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None


class Message(SQLModel, table=True):
    # A provider's message id is unique for that provider: the webhook-retry idempotency key.
    __table_args__ = (UniqueConstraint("provider", "provider_message_id", name="uq_message_provider_id"),
                      UniqueConstraint("dedupe_key", name="uq_message_dedupe_key"))

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    direction: str = Field(max_length=8)  # in | out
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    channel: str = Field(default="sms", max_length=16)  # sms | whatsapp | webchat | console
    provider: str | None = Field(default=None, max_length=16)  # who carried it (channels/ names them)
    provider_message_id: str | None = Field(default=None, max_length=64)
    # in: received | processed ; out: queued | sending | sent | delivered | undelivered | failed | blocked
    status: str = Field(default="received", max_length=16)
    error: str | None = Field(default=None, max_length=24)  # channels.base.DeliveryError
    error_code: int | None = None  # the provider's own code, for staff
    segments: int = 0
    encoding: str = Field(default="GSM-7", max_length=8)
    author: str = Field(default="bot", max_length=64)  # bot | customer | agent:<id> | system
    # reply | opt_out_confirmation | help | agent | notification: the consent gate depends on it
    kind: str = Field(default="reply", max_length=24)
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    in_reply_to: int | None = Field(default=None, foreign_key="message.id", index=True)
    # How the reply left: "twiml" in the webhook answer, "rest" via the REST API.
    delivery: str | None = Field(default=None, max_length=8)
    # When it was last handed to the provider (claimed past the consent gate), wall clock.
    sent_at: dt.datetime | None = None
    # Messages textdesk starts carry their job's key: one reminder per booking and offset, even
    # when a job runs twice (a lease that expired under a slow worker).
    dedupe_key: str | None = Field(default=None, max_length=160)
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)
    processed_at: dt.datetime | None = None


class Booking(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    service: str = Field(max_length=80)
    provider: str | None = Field(default=None, max_length=80)
    start: dt.datetime = Field(index=True)
    end: dt.datetime
    # active | cancelled | no_show | overlap (sold twice before the no-overlap rule; staff resolve it)
    status: str = Field(default="active", max_length=16)
    confirmed_at: dt.datetime | None = None  # the customer answered "1" to a reminder
    external_id: str | None = Field(default=None, max_length=255)  # the event id in an external calendar
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


for _dialect in ("postgresql", "sqlite"):  # create_all gets the rule the migrations install
    for _statement in no_overlap.ddl(_dialect):
        _ddl = DDL(_statement).execute_if(dialect=_dialect)  # type: ignore[no-untyped-call]  # SQLAlchemy's DDL() has no annotations
        event.listen(SQLModel.metadata.tables["booking"], "after_create", _ddl)


class Trace(SQLModel, table=True):
    """One inbound turn's decision path, for reviewers and replay."""

    __table_args__ = (Index("ix_trace_created", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    route: str = Field(max_length=16)
    rule: str | None = Field(default=None, max_length=16)
    intent: str | None = Field(default=None, max_length=40)
    confidence: float | None = None
    slots: dict[str, Any] = _json({})
    tools: list[dict[str, Any]] = _json([])
    escalated: bool = False
    escalation_reason: str | None = Field(default=None, max_length=32)
    reply: str | None = Field(default=None, sa_column=Column(Text))
    segments: int = 0
    provider: str | None = Field(default=None, max_length=32)
    prompt_version: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=80)
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    steps: list[dict[str, Any]] = _json([])  # every step's decision, in pipeline order
    llm: list[dict[str, Any]] = _json([])  # redacted request/response exchanges
    label: str | None = Field(default=None, max_length=16)  # correct | wrong
    label_comment: str | None = Field(default=None, sa_column=Column(Text))
    labelled_by: str | None = Field(default=None, max_length=254)
    created_at: dt.datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Discrete decisions outside a turn's trace: consent changes, bookings, staff actions."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    conversation_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=64, index=True)  # stable dotted code, e.g. "booking.created"
    actor: str = Field(default="system", max_length=120)
    data: dict[str, Any] = _json({})
    at: dt.datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=254)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)  # admin | agent | reviewer
    active: bool = True
    created_at: dt.datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    """Scheduled work (reminders, follow-ups, deliveries, recovery). Claimed with
    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so each job runs once across workers."""

    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_job_dedupe_key"),
                      Index("ix_job_due", "status", "run_at"))

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # reminder | no_show_followup | send | recover_inbound
    run_at: dt.datetime
    payload: dict[str, Any] = _json({})
    status: str = Field(default="pending", max_length=16)  # pending | running | done | failed | cancelled
    attempts: int = 0
    dedupe_key: str | None = Field(default=None, max_length=160)
    locked_by: str | None = Field(default=None, max_length=64)
    locked_at: dt.datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: dt.datetime = Field(default_factory=utcnow)


class Payment(SQLModel, table=True):
    """A deposit requested for a booking (Stripe Checkout or Payment Link)."""

    id: int | None = Field(default=None, primary_key=True)
    booking_id: str = Field(foreign_key="booking.id", index=True, max_length=40)
    provider: str = Field(default="stripe", max_length=16)
    session_id: str | None = Field(default=None, unique=True, max_length=255)
    url: str = Field(sa_column=Column(Text, nullable=False))
    amount_cents: int = 0
    currency: str = Field(default="usd", max_length=3)
    status: str = Field(default="pending", max_length=16, index=True)  # pending | paid | expired | failed
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class StripeEvent(SQLModel, table=True):
    """Stripe webhook events already applied: the primary key makes handling idempotent."""

    event_id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=64)
    received_at: dt.datetime = Field(default_factory=utcnow)


class TurnLock(SQLModel, table=True):
    """A contact's turn lease on databases without advisory locks (SQLite): one worker process at
    a time answers a contact (see store/turn_lock.py)."""

    key: str = Field(primary_key=True, max_length=64)  # the E.164 phone number
    owner: str = Field(max_length=64)
    expires_at: dt.datetime


class WebhookNonce(SQLModel, table=True):
    """Nonces and token ids of signed webhooks already accepted: a replayed request is refused."""

    __table_args__ = (UniqueConstraint("provider", "nonce", name="uq_webhook_nonce"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    nonce: str = Field(max_length=128)
    seen_at: dt.datetime = Field(default_factory=utcnow, index=True)


class StaffSession(SQLModel, table=True):
    """A signed-in staff browser. The cookie carries a random token; ``id`` is its SHA-256 (hex),
    never the token itself. A session ends when revoked (logout, password or role change,
    deactivation, "sign out everywhere"), past ``expires_at`` or idle too long (web/auth.py)."""

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    password_fp: str = Field(max_length=16)  # the password hash's fingerprint at sign-in
    created_at: dt.datetime = Field(default_factory=utcnow)
    last_seen_at: dt.datetime = Field(default_factory=utcnow)
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None
    user_agent: str | None = Field(default=None, max_length=200)
    ip: str | None = Field(default=None, max_length=45)


class CannedReply(SQLModel, table=True):
    """A reply agents insert into the composer; ``{variables}`` are filled for the conversation
    when inserted (web/canned.py lists them)."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(unique=True, max_length=80)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(default="system", max_length=120)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
