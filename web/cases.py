""" "Save as eval case": one labelled trace -> a docs/architecture.md section 4 case file.

The case replays the conversation's inbound turns up to and including the labelled one, each at
its recorded time (``at``), against the contact as it was before the first of them, and checks
the reviewer's corrected expectations on the last turn only.

What the reviewer could not see does not leave in the file either: the customer's text is
PII-redacted like the trace viewer shows it, the phone number is a fictional 555-01xx one and
the email is dropped. "As it was" is reconstructed from what the store keeps: consent from the
first consent event after the conversation started, bookings created before it and not cancelled
before it (a booking rescheduled since shows its current time), the name unless an update during
the conversation set it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import AuditEvent, Booking, ConsentEvent, Contact, Message, Trace
from textdesk.business import Business
from textdesk.redact import redact

__all__ = ["FIXTURE_PHONE", "CaseExpect", "build_case", "case_id_for", "parse_tools", "write_case"]

FIXTURE_PHONE = "+12125550100"
ROUTES = ("rule", "agent", "handoff", "blocked", "limited")
_ID_SAFE = re.compile(r"[^a-z0-9-]+")


@dataclass
class CaseExpect:
    """The reviewer's corrected expectations for the labelled turn (None = not checked)."""

    route: str | None = None
    intent: str | None = None
    escalated: bool | None = None
    tools: list[dict[str, Any]] | None = None
    reply_contains: list[str] = field(default_factory=list)

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.route:
            out["route"] = self.route
        if self.intent:
            out["intent"] = self.intent
        if self.tools is not None:
            out["tools"] = self.tools
        if self.escalated is not None:
            out["escalated"] = self.escalated
        if self.reply_contains:
            out["reply_contains"] = self.reply_contains
        return out


def parse_tools(text: str) -> list[dict[str, Any]]:
    """One call per line: ``create_booking service=haircut date=2026-03-04 time="15:00"``."""
    calls = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ValueError(f"tools line {n}: {exc}") from exc
        name, args = words[0], {}
        if not re.fullmatch(r"[a-z_]+", name):
            raise ValueError(f"tools line {n}: {name!r} is not a tool name")
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq or not re.fullmatch(r"[a-z_]+", key):
                raise ValueError(f"tools line {n}: expected key=value, got {word!r}")
            args[key] = value
        calls.append({"name": name, "args": args} if args else {"name": name})
    return calls


def tools_text(calls: list[dict[str, Any]]) -> str:
    """The inverse of ``parse_tools``, to prefill the form from what the turn actually did."""
    lines = []
    for c in calls:
        args = " ".join(
            f"{k}={shlex.quote(str(v))}" for k, v in (c.get("args") or {}).items() if k != "summary"
        )
        lines.append(f"{c.get('name')} {args}".strip())
    return "\n".join(lines)


def case_id_for(trace: Trace) -> str:
    return f"saved-trace-{trace.id}"


def _local(at: dt.datetime, business: Business) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(business.tz).replace(microsecond=0).isoformat()


async def _contact_fixture(
    session: AsyncSession, contact: Contact, start: dt.datetime, business: Business
) -> dict[str, Any]:
    first_change = (
        await session.exec(
            select(ConsentEvent)
            .where(ConsentEvent.contact_id == contact.id, col(ConsentEvent.at) >= start)
            .order_by(col(ConsentEvent.at), col(ConsentEvent.id))
        )
    ).first()
    fixture: dict[str, Any] = {
        "phone": FIXTURE_PHONE,
        "consent": first_change.old if first_change else contact.consent,
    }
    renamed = False
    for event in await session.exec(
        select(AuditEvent).where(
            AuditEvent.contact_id == contact.id,
            AuditEvent.kind == "contact.updated",
            col(AuditEvent.at) >= start,
        )
    ):
        renamed = renamed or "name" in (event.data.get("fields") or [])
    if contact.name and not renamed:
        fixture["name"] = contact.name
    bookings = []
    for b in await session.exec(
        select(Booking)
        .where(Booking.contact_id == contact.id, col(Booking.created_at) < start)
        .order_by(col(Booking.start))
    ):
        if b.status != "active" and b.updated_at < start:
            continue
        local = b.start.astimezone(business.tz)
        entry = {
            "id": b.id,
            "service": b.service,
            "date": local.date().isoformat(),
            "time": local.strftime("%H:%M"),
        }
        if b.provider:
            entry["provider"] = b.provider
        bookings.append(entry)
    if bookings:
        fixture["bookings"] = bookings
    return fixture


async def build_case(
    session: AsyncSession,
    trace: Trace,
    business: Business,
    business_ref: str,
    expect: CaseExpect,
    *,
    reviewer: str,
    comment: str = "",
) -> dict[str, Any]:
    """The case file (as a mapping) for ``trace``; ``business_ref`` is the path written to it."""
    if trace.message_id is None or trace.conversation_id is None:
        raise ValueError("this trace has no inbound message to replay")
    inbound = list(
        await session.exec(
            select(Message)
            .where(
                Message.conversation_id == trace.conversation_id,
                Message.direction == "in",
                col(Message.id) <= trace.message_id,
            )
            .order_by(col(Message.id))
        )
    )
    contact = await session.get(Contact, trace.contact_id) if trace.contact_id else None
    if not inbound or contact is None:
        raise ValueError("the conversation of this trace is gone")
    start = inbound[0].created_at
    first_trace = (await session.exec(select(Trace).where(Trace.message_id == inbound[0].id))).first()
    fixture = await _contact_fixture(session, contact, start, business)
    if first_trace is not None and first_trace.route == "handoff":
        fixture["handoff"] = True
    turns: list[dict[str, Any]] = [
        {"user": redact(m.body), "at": _local(m.created_at, business)} for m in inbound
    ]
    wanted = expect.as_yaml()
    if wanted:
        turns[-1]["expect"] = wanted
    case: dict[str, Any] = {
        "id": case_id_for(trace),
        "description": f"Trace {trace.id}, labelled {trace.label or 'unlabelled'} by {reviewer}"
        + (f": {redact(comment.strip())}" if comment.strip() else ""),
        "tags": ["saved", trace.label or "unlabelled"],
        "now": _local(start, business),
        "contact": fixture,
        "turns": turns,
    }
    return {"suite": "saved", "defaults": {"business": business_ref}, "cases": [case]}


def business_ref_for(business_file: Path, saved_dir: Path) -> str:
    """The business file as a path relative to the saved case's folder (as the loader expects)."""
    return os.path.relpath(business_file.resolve(), saved_dir.resolve())


def dump_case(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def write_case(saved_dir: Path, data: dict[str, Any]) -> Path:
    case_id = _ID_SAFE.sub("-", str(data["cases"][0]["id"]).lower()).strip("-")
    saved_dir.mkdir(parents=True, exist_ok=True)
    path = saved_dir / f"{case_id}.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(dump_case(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
