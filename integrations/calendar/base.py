"""The calendar seam: one small async interface, and the write protocol every adapter shares.

An adapter answers four questions: what is busy between two instants, put this booking in the
calendar, move it, take it out. The textdesk booking id travels inside the external event
(iCalendar ``UID`` and ``X-TEXTDESK-BOOKING-ID``, Google ``extendedProperties.private``), and
the external id an adapter returns is what textdesk stores next to the booking.

Never a double booking: ``guarded_write`` checks the slot, writes, then looks again. If another
event overlaps after our write, ours is undone and ``CalendarConflict`` raised, so the policy makes
a new offer. Inside one process writes are serialised by a lock, so exactly one of two racing
creates wins; across processes the post-write check still guarantees that no two overlapping
events both survive (writers that see each other both back off, pause randomly and try again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from integrations.errors import CalendarConflict, CalendarNotFound, CalendarUnavailable
from tools.availability import Busy

__all__ = [
    "BookingInfo",
    "Busy",
    "CalendarAdapter",
    "CalendarConflict",
    "CalendarNotFound",
    "CalendarUnavailable",
    "conflicting",
    "guarded_write",
    "merge_busy",
    "overlaps",
]

T = TypeVar("T")


def _aware_utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class BookingInfo:
    """What a calendar needs to know about a textdesk booking (times are aware, kept in UTC)."""

    booking_id: str
    service: str
    start: dt.datetime
    end: dt.datetime
    provider: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    business: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware_utc(self.start, "start"))
        object.__setattr__(self, "end", _aware_utc(self.end, "end"))
        if self.end <= self.start:
            raise ValueError("end must be after start")

    @property
    def summary(self) -> str:
        who = self.contact_name or "customer"
        with_ = f" with {self.provider}" if self.provider else ""
        return f"{self.service.capitalize()}: {who}{with_}"

    @property
    def description(self) -> str:
        lines = [f"Booked by text message (textdesk booking {self.booking_id})."]
        if self.contact_phone:
            lines.append(f"Phone: {self.contact_phone}")
        return "\n".join(lines)


@runtime_checkable
class CalendarAdapter(Protocol):
    """Where bookings live. ``builtin`` is textdesk's own table; the others mirror it outside."""

    name: str

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        """Busy intervals overlapping [start, end), with provider (None = whole business) and ref."""
        ...

    async def create(self, booking: BookingInfo) -> str:
        """Write the booking; return the external id to store. Raises CalendarConflict if taken."""
        ...

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        """Move an event written by ``create``. Raises CalendarConflict or CalendarNotFound."""
        ...

    async def cancel(self, external_id: str) -> None:
        """Remove the event. Idempotent: an event that is already gone is not an error."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def overlaps(busy: Busy, start: dt.datetime, end: dt.datetime, provider: str | None) -> bool:
    """Same rule as ``tools.availability``: None on either side means the whole business."""
    same = provider is None or busy.provider is None or busy.provider == provider
    return same and busy.start < end and start < busy.end


def merge_busy(*sources: Iterable[Busy]) -> list[Busy]:
    """Union of busy lists; an external event that mirrors a textdesk booking (same ``ref``) and a
    local booking row are the same appointment and kept once (the first source wins)."""
    seen: set[str] = set()
    out: list[Busy] = []
    for source in sources:
        for b in source:
            if b.ref is not None:
                if b.ref in seen:
                    continue
                seen.add(b.ref)
            out.append(b)
    return sorted(out, key=lambda b: (b.start, b.end, b.provider or ""))


def conflicting(
    busy: Sequence[Busy], start: dt.datetime, end: dt.datetime, provider: str | None, own_ref: str | None
) -> list[Busy]:
    """The intervals in ``busy`` that clash with [start, end) for ``provider``, ignoring our own."""
    return [b for b in busy if (own_ref is None or b.ref != own_ref) and overlaps(b, start, end, provider)]


async def _jitter(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0.05, 0.25) * attempt)


async def guarded_write(
    lock: asyncio.Lock,
    *,
    taken: Callable[[], Awaitable[bool]],
    write: Callable[[], Awaitable[T]],
    contested: Callable[[T], Awaitable[bool]],
    undo: Callable[[T], Awaitable[None]],
    what: str,
    provider: str | None = None,
    attempts: int = 3,
    pause: Callable[[int], Awaitable[None]] = _jitter,
) -> T:
    """Check, write, re-check; undo and raise CalendarConflict when the slot turned out taken.

    Two writers in different processes can each see the other after writing; both undo. A short
    random pause and a fresh check then let one of them through (the other sees it and gives up),
    so a tie does not turn away both customers. Safety never depends on the pause: an event is
    kept only if its writer saw no clash after writing.
    """
    for attempt in range(1, attempts + 1):
        async with lock:
            if await taken():
                raise CalendarConflict(f"{what}: slot is already taken", provider=provider)
            result = await write()
            if not await contested(result):
                return result
            await undo(result)
        if attempt < attempts:
            await pause(attempt)
    raise CalendarConflict(f"{what}: slot was taken at the same time", provider=provider)
