"""CRM events: what textdesk tells the outside world, with a stable JSON shape (version 1).

Every event has the same envelope; only the sections its type needs are filled, the others are
``null`` so receivers can rely on the keys being there::

    {"booking": {...} | null, "contact": {...}, "escalation": {...} | null,
     "id": "evt_...", "occurred_at": "2026-03-02T14:00:00Z", "tag": "vip" | null,
     "type": "booking.created", "version": 1}

``to_json`` sorts keys and uses no whitespace, so the body (and its signature) is byte-for-byte
reproducible. Datetimes are UTC with a ``Z``. Adding a field is a compatible change; renaming or
removing one bumps ``version``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from store.models import Booking, Contact

__all__ = [
    "EVENT_TYPES",
    "BookingData",
    "ContactData",
    "CrmEvent",
    "EscalationData",
    "EventType",
    "booking_event",
    "contact_event",
    "escalation_event",
    "tag_event",
]

EventType = Literal[
    "contact.created",
    "contact.updated",
    "tag.added",
    "booking.created",
    "booking.rescheduled",
    "booking.cancelled",
    "conversation.escalated",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("datetimes in CRM events must be timezone-aware")
    return value.astimezone(dt.UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactData(_Frozen):
    id: int | None = None
    phone: str
    name: str | None = None
    email: str | None = None
    tags: list[str] = []
    consent: str = "unknown"

    @classmethod
    def of(cls, contact: Contact) -> ContactData:
        return cls(
            id=contact.id,
            phone=contact.phone,
            name=contact.name,
            email=contact.email,
            tags=list(contact.tags or []),
            consent=contact.consent,
        )


class BookingData(_Frozen):
    id: str
    service: str
    provider: str | None = None
    start: dt.datetime
    end: dt.datetime
    status: str = "active"
    timezone: str | None = None  # the business's, for showing local times to staff
    previous_start: dt.datetime | None = None  # booking.rescheduled only
    external_id: str | None = None  # the calendar event, when an external calendar holds it

    @field_validator("start", "end", "previous_start")
    @classmethod
    def _utc_times(cls, v: dt.datetime | None) -> dt.datetime | None:
        return _utc(v) if v is not None else None

    @classmethod
    def of(
        cls,
        booking: Booking,
        *,
        timezone: str | None = None,
        previous_start: dt.datetime | None = None,
        external_id: str | None = None,
    ) -> BookingData:
        return cls(
            id=booking.id,
            service=booking.service,
            provider=booking.provider,
            start=booking.start,
            end=booking.end,
            status=booking.status,
            timezone=timezone,
            previous_start=previous_start,
            external_id=external_id,
        )


class EscalationData(_Frozen):
    conversation_id: int | None = None
    reason: str
    summary: str = ""


class CrmEvent(_Frozen):
    version: Literal[1] = 1
    id: str
    type: EventType
    occurred_at: dt.datetime
    contact: ContactData
    booking: BookingData | None = None
    tag: str | None = None
    escalation: EscalationData | None = None

    @field_validator("occurred_at")
    @classmethod
    def _utc_time(cls, v: dt.datetime) -> dt.datetime:
        return _utc(v)

    def to_json(self) -> str:
        """The canonical body: sorted keys, no whitespace, UTF-8 kept as is."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    @classmethod
    def from_json(cls, body: str | bytes) -> CrmEvent:
        return cls.model_validate_json(body)


def _new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def contact_event(
    kind: Literal["contact.created", "contact.updated"],
    contact: Contact,
    at: dt.datetime,
    *,
    event_id: str | None = None,
) -> CrmEvent:
    return CrmEvent(id=event_id or _new_id(), type=kind, occurred_at=at, contact=ContactData.of(contact))


def tag_event(contact: Contact, tag: str, at: dt.datetime, *, event_id: str | None = None) -> CrmEvent:
    return CrmEvent(
        id=event_id or _new_id(), type="tag.added", occurred_at=at, contact=ContactData.of(contact), tag=tag
    )


def booking_event(
    kind: Literal["booking.created", "booking.rescheduled", "booking.cancelled"],
    contact: Contact,
    booking: Booking,
    at: dt.datetime,
    *,
    timezone: str | None = None,
    previous_start: dt.datetime | None = None,
    external_id: str | None = None,
    event_id: str | None = None,
) -> CrmEvent:
    data = BookingData.of(booking, timezone=timezone, previous_start=previous_start, external_id=external_id)
    return CrmEvent(
        id=event_id or _new_id(), type=kind, occurred_at=at, contact=ContactData.of(contact), booking=data
    )


def escalation_event(
    contact: Contact,
    reason: str,
    summary: str,
    at: dt.datetime,
    *,
    conversation_id: int | None = None,
    event_id: str | None = None,
) -> CrmEvent:
    return CrmEvent(
        id=event_id or _new_id(),
        type="conversation.escalated",
        occurred_at=at,
        contact=ContactData.of(contact),
        escalation=EscalationData(conversation_id=conversation_id, reason=reason, summary=summary),
    )
