"""Privacy operations: export what textdesk holds about a contact, forget them, purge old text.

Functions take an ``AsyncSession`` and never commit: the caller owns the transaction, so a
forget either happens completely or not at all. Each operation writes an ``AuditEvent``
(``privacy.export``, ``privacy.forget``, ``privacy.purge``) that holds no personal data.

Forgetting and opt-out. Deleting every row of an opted-out contact would also delete the fact
that they opted out, and the next text from that number would start a fresh contact with
consent ``unknown``. So ``forget_contact`` keeps one suppression record: the
``privacy.forget`` audit event carries a keyed hash (HMAC-SHA256) of the E.164 number and the
consent status at deletion. A plain SHA-256 would not do: there are only ~10^10 phone numbers,
so anyone holding the database could reverse it by enumeration; the key comes from
``TEXTDESK_SECRET_KEY`` (``suppression_key``) and never sits in the database. New contacts
must be created through :func:`get_or_create_contact`, which marks a suppressed number opted
out before anything else runs. The latest ``privacy.forget`` record for a number wins: a
number forgotten after it opted back in is not suppressed.

Retention. ``purge_bodies`` blanks message bodies and the free text of traces (reply, model
exchanges, names, emails, summaries) older than N days, keeping the rows and every metric
column (route, intent, tools, segments, tokens, latency), so reports keep working.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store import repo
from store.models import (
    AuditEvent,
    Booking,
    ConsentEvent,
    Contact,
    Conversation,
    Job,
    Message,
    Payment,
    Trace,
    utcnow,
)
from textdesk.errors import TextdeskError
from textdesk.phone import normalize_phone

__all__ = [
    "EXPORT_FORMAT",
    "PURGED",
    "UnknownContact",
    "export_contact",
    "forget_contact",
    "get_or_create_contact",
    "is_suppressed",
    "purge_bodies",
    "subject_digest",
    "suppression_key",
]

EXPORT_FORMAT = "textdesk.contact-export/1"
PURGED = "[purged]"
_FREE_TEXT = frozenset({"name", "email", "summary", "text", "detail"})
_BATCH = 500


class UnknownContact(TextdeskError, LookupError):
    """No contact has this phone number."""


# -- suppression ----------------------------------------------------------------------------------

def suppression_key(secret: str) -> bytes:
    """The HMAC key for suppression records, derived from the app secret for this one purpose.

    Rotating the secret orphans existing records (they stop matching); see the module docstring.
    """
    return hashlib.sha256(f"textdesk:suppression:{secret}".encode()).digest()


def subject_digest(phone: str, key: bytes) -> str:
    """Keyed hash of a number in E.164; the same number always gives the same digest."""
    return hmac.new(key, normalize_phone(phone).encode(), hashlib.sha256).hexdigest()


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"key-id:" + key).hexdigest()[:8]


async def is_suppressed(session: AsyncSession, phone: str, *, key: bytes) -> bool:
    """True when the latest forget record for ``phone`` says it was opted out."""
    digest = subject_digest(phone, key)
    row = (await session.exec(
        select(AuditEvent)
        .where(AuditEvent.kind == "privacy.forget", col(AuditEvent.data)["subject"].as_string() == digest)
        .order_by(col(AuditEvent.id).desc())
    )).first()
    return bool(row is not None and row.data.get("suppressed"))


async def get_or_create_contact(session: AsyncSession, phone: str, *, key: bytes) -> Contact:
    """``repo.get_or_create_contact`` that re-applies a forgotten opt-out to a new contact row.

    Only a newly created row is checked: an existing contact who opted back in stays opted in.
    """
    contact = await repo.contact_by_phone(session, phone)
    if contact is not None:
        return contact
    contact = await repo.get_or_create_contact(session, phone)
    if await is_suppressed(session, phone, key=key):
        await repo.set_consent(session, contact, "opted_out", "suppression", detail="privacy.forget")
    return contact


# -- export ---------------------------------------------------------------------------------------

def _iso(value: dt.datetime) -> str:
    """SQLite hands datetimes back naive; the store writes UTC, so naive means UTC."""
    return (value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)).isoformat()


def _row(obj: Any) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, dt.datetime) else v for k, v in obj.model_dump().items()}


async def _contact(session: AsyncSession, phone: str, *, lock: bool = False) -> Contact:
    q = select(Contact).where(Contact.phone == normalize_phone(phone))
    contact = (await session.exec(q.with_for_update() if lock else q)).first()
    if contact is None:
        raise UnknownContact(f"no contact with number {phone!r}")
    return contact


def _conversation_ids(cid: int) -> Any:
    return select(Conversation.id).where(Conversation.contact_id == cid)


def _payment_filter(cid: int) -> Any:
    return col(Payment.booking_id).in_(select(Booking.id).where(Booking.contact_id == cid))


def _message_filter(cid: int) -> Any:
    return or_(col(Message.contact_id) == cid, col(Message.conversation_id).in_(_conversation_ids(cid)))


def _trace_filter(cid: int) -> Any:
    messages = select(Message.id).where(_message_filter(cid))
    return or_(col(Trace.contact_id) == cid, col(Trace.conversation_id).in_(_conversation_ids(cid)),
               col(Trace.message_id).in_(messages))


def _audit_filter(cid: int) -> Any:
    return or_(col(AuditEvent.contact_id) == cid, col(AuditEvent.conversation_id).in_(_conversation_ids(cid)))


async def export_contact(session: AsyncSession, phone: str, *, actor: str = "system",
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything textdesk stores about ``phone``, as JSON-ready data (raises UnknownContact).

    Traces are exported as stored: their model exchanges were redacted when written.
    """
    contact = await _contact(session, phone)
    cid = contact.id or 0
    tables: dict[str, Any] = {
        "consent_events": select(ConsentEvent).where(col(ConsentEvent.contact_id) == cid)
        .order_by(col(ConsentEvent.id)),
        "conversations": select(Conversation).where(col(Conversation.contact_id) == cid)
        .order_by(col(Conversation.id)),
        "messages": select(Message).where(_message_filter(cid)).order_by(col(Message.id)),
        "bookings": select(Booking).where(col(Booking.contact_id) == cid).order_by(col(Booking.start)),
        "payments": select(Payment).where(_payment_filter(cid)).order_by(col(Payment.id)),
        "traces": select(Trace).where(_trace_filter(cid)).order_by(col(Trace.id)),
        "audit_events": select(AuditEvent).where(_audit_filter(cid)).order_by(col(AuditEvent.id)),
    }
    at = now or utcnow()
    out: dict[str, Any] = {"format": EXPORT_FORMAT, "exported_at": _iso(at), "contact": _row(contact)}
    for name, query in tables.items():
        out[name] = [_row(r) for r in await session.exec(query)]
    counts = {name: len(out[name]) for name in tables}
    await repo.audit(session, "privacy.export", contact_id=cid, actor=actor, at=at, counts=counts)
    await session.flush()
    return out


# -- forget ---------------------------------------------------------------------------------------

async def forget_contact(session: AsyncSession, phone: str, actor: str, *, key: bytes,
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Delete the contact and every row about them; keep a keyed-hash suppression record.

    Audit events about the contact are kept for accountability (kind, actor, time) but are
    detached from the deleted rows and emptied of data. Local payment rows go with their
    bookings; their Stripe session ids are returned (``payment_sessions``) because Stripe keeps
    its own record, as do saved eval case files (``saved_cases``). Returns what was done; a
    number with no contact is a no-op (``found: False``) that leaves suppression untouched.
    """
    at = now or utcnow()
    try:
        contact = await _contact(session, phone, lock=True)  # PostgreSQL: waits for in-flight turns
    except UnknownContact:
        await repo.audit(session, "privacy.forget", actor=actor, at=at, found=False)
        return {"found": False, "suppressed": await is_suppressed(session, phone, key=key)}
    cid = contact.id or 0
    last = (await session.exec(select(ConsentEvent).where(ConsentEvent.contact_id == cid)
                               .order_by(col(ConsentEvent.id).desc()))).first()
    saved_cases = [str(e.data.get("file")) for e in await session.exec(
        select(AuditEvent).where(_audit_filter(cid), AuditEvent.kind == "trace.case_saved"))]
    msgs = select(Message.id).where(_message_filter(cid))
    deleted: dict[str, int] = {}

    async def run(name: str, stmt: Any) -> None:
        deleted[name] = int((await session.exec(stmt)).rowcount or 0)

    deleted["jobs"] = await _delete_jobs(session, cid)

    await run("traces", delete(Trace).where(_trace_filter(cid)))
    await session.exec(update(Message).where(col(Message.in_reply_to).in_(msgs)).values(in_reply_to=None))
    await run("messages", delete(Message).where(_message_filter(cid)))
    payments = [p.session_id for p in await session.exec(select(Payment).where(_payment_filter(cid)))
                if p.session_id]
    await run("payments", delete(Payment).where(_payment_filter(cid)))
    await run("bookings", delete(Booking).where(col(Booking.contact_id) == cid))
    await run("consent_events", delete(ConsentEvent).where(col(ConsentEvent.contact_id) == cid))
    privacy = col(AuditEvent.kind).startswith("privacy.")
    await run("audit_detached", update(AuditEvent).where(_audit_filter(cid), ~privacy)
              .values(contact_id=None, conversation_id=None, data={}))
    await session.exec(update(AuditEvent).where(_audit_filter(cid), privacy)
                       .values(contact_id=None, conversation_id=None))
    await run("conversations", delete(Conversation).where(col(Conversation.contact_id) == cid))
    consent = contact.consent
    await session.delete(contact)
    await session.flush()
    deleted["contacts"] = 1
    record: dict[str, Any] = {
        "found": True, "subject": subject_digest(contact.phone, key), "alg": "hmac-sha256",
        "key_id": _key_id(key), "consent": consent, "suppressed": consent == "opted_out",
        "consent_source": last.source if last else None,
        "consent_changed_at": _iso(last.at) if last else None, "deleted": deleted,
    }
    await repo.audit(session, "privacy.forget", actor=actor, at=at, **record)
    await session.flush()
    return {**record, "saved_cases": saved_cases, "payment_sessions": payments}


async def _delete_jobs(session: AsyncSession, cid: int) -> int:
    """Scheduled jobs (reminders, sends) that name the contact's bookings or messages."""
    bookings = list(await session.exec(select(Booking.id).where(Booking.contact_id == cid)))
    rows = await session.exec(select(Message.id).where(_message_filter(cid)))
    messages = [m for m in rows if m is not None]
    n = 0
    for key, ids, cast in (("booking_id", bookings, "as_string"), ("message_id", messages, "as_integer")):
        for i in range(0, len(ids), _BATCH):
            field = getattr(col(Job.payload)[key], cast)()
            res = await session.exec(delete(Job).where(field.in_(ids[i:i + _BATCH])))
            n += int(res.rowcount or 0)
    return n


# -- retention ------------------------------------------------------------------------------------

def _scrub(fields: dict[str, Any]) -> dict[str, Any]:
    """Blank the free-text values (names, emails, summaries) of a slots or tool-arguments dict."""
    return {k: PURGED if k in _FREE_TEXT and isinstance(v, str) and v else v for k, v in fields.items()}


def _purge_step(step: dict[str, Any]) -> dict[str, Any]:
    data = step.get("data") or {}
    out = {**step, "data": {k: _scrub(v) if k in ("args", "slots") and isinstance(v, dict) else v
                            for k, v in data.items()}}
    reason = str(out.get("reason") or "")
    if out.get("step") == "rules" and reason.startswith("natural_language:"):
        out["reason"] = f"natural_language:{PURGED}"  # the matched phrase is the customer's words
    return out


def _purge_exchange(ex: dict[str, Any]) -> dict[str, Any]:
    """Keep what metrics need (model, prompt, tokens, latency, error, note codes), drop the text."""
    fields = ("prompt_version", "model", "tokens_in", "tokens_out", "ms", "at_ms", "error")
    keep = {k: ex.get(k) for k in fields}
    response = ex.get("response") or {}
    keep["request"] = []
    keep["response"] = {"finish_reason": response.get("finish_reason")} if response else None
    calls = ex.get("tool_calls_raw") or []
    keep["tool_calls_raw"] = [{"name": c.get("name") or (c.get("function") or {}).get("name")} for c in calls]
    keep["validation"] = [str(n).split(":", 1)[0] for n in ex.get("validation") or []]
    return keep


def _purge_trace(t: Trace) -> bool:
    before = (t.reply, t.slots, t.tools, t.steps, t.llm, t.label_comment)
    if t.reply:
        t.reply = ""
    t.slots = _scrub(t.slots)
    t.tools = [{**c, "args": _scrub(c.get("args") or {})} for c in t.tools]
    t.steps = [_purge_step(s) for s in t.steps]
    t.llm = [_purge_exchange(e) for e in t.llm]
    if t.label_comment:
        t.label_comment = ""
    return (t.reply, t.slots, t.tools, t.steps, t.llm, t.label_comment) != before


async def _last_cutoff(session: AsyncSession) -> dt.datetime | None:
    rows = await session.exec(select(AuditEvent).where(AuditEvent.kind == "privacy.purge"))
    cutoffs = [dt.datetime.fromisoformat(str(e.data["cutoff"])) for e in rows if e.data.get("cutoff")]
    return max(cutoffs) if cutoffs else None


async def purge_bodies(session: AsyncSession, now: dt.datetime, retention_days: int, *,
                       full: bool = False, actor: str = "system") -> int:
    """Blank text older than ``retention_days`` (0 = keep forever); return the rows changed.

    Messages lose their body; traces their reply, model exchanges and free-text fields; old
    conversations their summary and note texts. The messages and summary of a conversation
    still with a person (``waiting``/``with_person``) are left alone until it is handed back.
    Traces are scanned from the previous run's cutoff on (``full=True`` rescans all of them);
    messages and conversations are checked in full every run.
    """
    if retention_days <= 0:
        return 0
    cutoff = (now - dt.timedelta(days=retention_days)).astimezone(dt.UTC)
    held = select(Conversation.id).where(col(Conversation.status).in_(repo.HANDOFF_STATUSES))
    res = await session.exec(update(Message).where(
        col(Message.created_at) < cutoff, col(Message.body) != "", col(Message.conversation_id).not_in(held),
    ).values(body=""))
    counts = {"messages": int(res.rowcount or 0), "traces": 0, "conversations": 0}

    since = None if full else await _last_cutoff(session)
    last_id = 0
    while True:
        q = select(Trace).where(col(Trace.created_at) < cutoff, col(Trace.id) > last_id)
        if since is not None:
            q = q.where(col(Trace.created_at) >= since)
        batch = list(await session.exec(q.order_by(col(Trace.id)).limit(_BATCH)))
        if not batch:
            break
        for t in batch:
            if _purge_trace(t):
                session.add(t)
                counts["traces"] += 1
        last_id = batch[-1].id or last_id
        await session.flush()

    convs = await session.exec(select(Conversation).where(
        col(Conversation.last_message_at) < cutoff, col(Conversation.status).not_in(repo.HANDOFF_STATUSES)))
    for conv in convs:
        notes = [{**n, "text": ""} if n.get("text") else n for n in conv.notes]
        if conv.summary or notes != conv.notes:
            conv.summary = "" if conv.summary else conv.summary
            conv.notes = notes
            session.add(conv)
            counts["conversations"] += 1
    await repo.audit(session, "privacy.purge", actor=actor, at=now, retention_days=retention_days,
                     cutoff=cutoff.isoformat(), full=full, **counts)
    await session.flush()
    return sum(counts.values())
