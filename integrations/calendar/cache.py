"""A short-lived cache in front of an external calendar's ``busy``.

A turn that offers times asks for busy time; asking Google or a CalDAV server on every message
would spend most of the turn's budget on the network. Offers may use a view up to ``ttl`` old:
correctness does not depend on it, because ``create`` and ``move`` re-check the calendar itself
and raise ``CalendarConflict`` if the slot went meanwhile. Every write through this wrapper
drops the cache.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from integrations.calendar.base import BookingInfo, CalendarAdapter
from textdesk.clock import Clock, SystemClock
from tools.availability import Busy

__all__ = ["CachingCalendar"]


class CachingCalendar:
    def __init__(
        self,
        inner: CalendarAdapter,
        *,
        ttl: dt.timedelta = dt.timedelta(seconds=60),
        clock: Clock | None = None,
    ) -> None:
        self.inner, self.ttl, self.clock = inner, ttl, clock or SystemClock()
        self.name = inner.name
        self._window: tuple[dt.datetime, dt.datetime, dt.datetime, list[Busy]] | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._window = None

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        async with self._lock:  # one fetch for concurrent turns
            cached, now = self._window, self.clock.now()
            fresh = cached is not None and now - cached[2] < self.ttl
            if cached is None or not (fresh and cached[0] <= start and end <= cached[1]):
                lo, hi = (min(start, cached[0]), max(end, cached[1])) if cached and fresh else (start, end)
                cached = (lo, hi, now, await self.inner.busy(lo, hi))
                self._window = cached
        return [b for b in cached[3] if b.start < end and start < b.end]

    async def create(self, booking: BookingInfo) -> str:
        try:
            return await self.inner.create(booking)
        finally:
            self.invalidate()

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        try:
            await self.inner.move(external_id, start, end)
        finally:
            self.invalidate()

    async def cancel(self, external_id: str) -> None:
        try:
            await self.inner.cancel(external_id)
        finally:
            self.invalidate()

    async def aclose(self) -> None:
        await self.inner.aclose()
