"""The default calendar: textdesk's own Booking table.

The booking tools write the rows; this adapter answers ``busy`` from active bookings and, on
``create``/``move``, re-checks committed bookings from a fresh session, so a booking another
worker committed since the offer was made is reported as ``CalendarConflict``. The external id
is the booking id itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.calendar.base import BookingInfo, conflicting
from integrations.errors import CalendarConflict, CalendarNotFound
from store import repo
from store.models import Booking
from tools.availability import Busy

__all__ = ["BuiltinCalendar"]


class BuiltinCalendar:
    name = "builtin"

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._lock = asyncio.Lock()

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        async with self.sessions() as s:
            return await repo.busy_between(s, start, end)

    async def _check(
        self, booking_id: str, start: dt.datetime, end: dt.datetime, provider: str | None
    ) -> None:
        clash = conflicting(await self.busy(start, end), start, end, provider, booking_id)
        if clash:
            raise CalendarConflict(f"booking {booking_id}: overlaps {clash[0].ref}", provider=provider)

    async def create(self, booking: BookingInfo) -> str:
        async with self._lock:
            await self._check(booking.booking_id, booking.start, booking.end, booking.provider)
        return booking.booking_id

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        async with self.sessions() as s:
            row = await s.get(Booking, external_id)
        if row is None or row.status != "active":
            raise CalendarNotFound(f"no active booking {external_id}")
        async with self._lock:
            await self._check(external_id, start, end, row.provider)

    async def cancel(self, external_id: str) -> None:
        """Nothing to do: the cancel tool sets the row's status in the turn's transaction."""

    async def aclose(self) -> None:
        """No connections of its own (the session factory belongs to the app)."""
