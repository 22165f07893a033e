"""Canned replies: the ``{variables}`` a reply may use, checking them, and filling them in for one
conversation (server-side, when an agent inserts the reply into the composer).

A variable with no value for the conversation (a contact without a name, no upcoming booking)
stays in the text as written, so the agent sees it in the reply box and edits it before sending.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from agent.timeparse import format_date, format_time
from store.models import Booking, CannedReply, Contact
from textdesk.business import Business
from web.auth import Staff

__all__ = ["VARIABLES", "Filled", "canned_replies", "fill", "unknown_variables", "values_for"]

# name -> what it becomes (shown on the admin page)
VARIABLES: dict[str, str] = {
    "first_name": "The customer's first name (from their contact name).",
    "business_name": "The business's name.",
    "next_booking": 'The customer\'s next booking, e.g. "Haircut on Wed Dec 9 at 2:00 PM with Kim".',
    "agent_name": 'The agent\'s name, from their email ("sam.lee@..." becomes "Sam Lee").',
}
_VARIABLE = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Filled:
    text: str
    missing: list[str]  # variables left as written: no value for this conversation


def unknown_variables(body: str) -> list[str]:
    """``{names}`` in ``body`` that are not variables, each once (a typo would reach customers)."""
    return list(dict.fromkeys(n for n in _VARIABLE.findall(body) if n not in VARIABLES))


def fill(body: str, values: Mapping[str, str | None]) -> Filled:
    """Every known ``{variable}`` replaced by its value; text in braces that is not a variable, and
    variables without a value, stay as written."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in VARIABLES:
            return m.group(0)
        value = values.get(name)
        if not value:
            if name not in missing:
                missing.append(name)
            return m.group(0)
        return value

    return Filled(_VARIABLE.sub(sub, body), missing)


def _agent_name(email: str) -> str:
    local = email.partition("@")[0]
    return " ".join(part.capitalize() for part in re.split(r"[._+-]+", local) if part)


async def values_for(
    session: AsyncSession, contact: Contact, staff: Staff, business: Business, now: dt.datetime
) -> dict[str, str | None]:
    """The variables' values for a reply to ``contact`` written by ``staff``."""
    booking = (
        await session.exec(
            select(Booking)
            .where(Booking.contact_id == contact.id, Booking.status == "active", col(Booking.start) >= now)
            .order_by(col(Booking.start))
        )
    ).first()
    next_booking = None
    if booking is not None:
        start = booking.start.astimezone(business.tz)
        when = f"{format_date(start.date())} at {format_time(start.time(), hour12=business.hour12)}"
        with_whom = f" with {booking.provider}" if booking.provider else ""
        next_booking = f"{booking.service} on {when}{with_whom}"
    name = (contact.name or "").strip()
    return {
        "first_name": name.split()[0] if name else None,
        "business_name": business.name,
        "next_booking": next_booking,
        "agent_name": _agent_name(staff.email) or None,
    }


async def canned_replies(session: AsyncSession) -> list[CannedReply]:
    return list(await session.exec(select(CannedReply).order_by(col(CannedReply.title))))
