"""Tool argument models. The same model validates a call and generates the JSON schema a
model sees, so they cannot drift. No tool takes a phone number or a contact id: the contact
is bound from the session by code (see tools/context.py)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.types import EscalationReason

__all__ = [
    "STATE_CHANGING",
    "TOOL_MODELS",
    "CancelBooking",
    "CreateBooking",
    "Escalate",
    "FindSlots",
    "ListBookings",
    "RescheduleBooking",
    "TagContact",
    "UpdateContact",
    "tool_json_schemas",
]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateBooking(_Args):
    """Book an appointment for the customer after they confirmed service, date and time."""

    service: str = Field(description="A service name from the business file")
    date: str = Field(pattern=_DATE, description="YYYY-MM-DD in the business time zone")
    time: str = Field(pattern=_TIME, description="HH:MM, 24 h")
    provider: str | None = Field(default=None, description="A provider name, if requested")


class RescheduleBooking(_Args):
    """Move one of the customer's own bookings to a new date and time."""

    booking_id: str = Field(max_length=40)
    date: str = Field(pattern=_DATE)
    time: str = Field(pattern=_TIME)


class CancelBooking(_Args):
    """Cancel one of the customer's own bookings."""

    booking_id: str = Field(max_length=40)


class UpdateContact(_Args):
    """Update the customer's own name or email."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    email: str | None = Field(default=None, max_length=254)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v.lower() if v else v


class TagContact(_Args):
    """Add a tag to the customer's own record."""

    tag: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")


class Escalate(_Args):
    """Hand the conversation to a person."""

    reason: EscalationReason
    summary: str = Field(default="", max_length=500)


class FindSlots(_Args):
    """Read tool: free start times for a service on a date."""

    service: str
    date: str = Field(pattern=_DATE)
    provider: str | None = None


class ListBookings(_Args):
    """Read tool: the customer's own upcoming bookings."""


TOOL_MODELS: dict[str, type[_Args]] = {
    "create_booking": CreateBooking,
    "reschedule_booking": RescheduleBooking,
    "cancel_booking": CancelBooking,
    "update_contact": UpdateContact,
    "tag_contact": TagContact,
    "escalate": Escalate,
    "find_slots": FindSlots,
    "list_bookings": ListBookings,
}
STATE_CHANGING = frozenset(
    {"create_booking", "reschedule_booking", "cancel_booking", "update_contact", "tag_contact", "escalate"}
)


def tool_json_schemas(names: list[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI-style function tool definitions generated from the pydantic models."""
    out: list[dict[str, Any]] = []
    for name, model in TOOL_MODELS.items():
        if names is not None and name not in names:
            continue
        schema = model.model_json_schema()
        schema.pop("title", None)
        schema["additionalProperties"] = False
        out.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": (model.__doc__ or "").strip(),
                    "parameters": schema,
                },
            }
        )
    return out


ToolName = Literal[
    "create_booking", "reschedule_booking", "cancel_booking", "update_contact", "tag_contact",
    "escalate", "find_slots", "list_bookings",
]
