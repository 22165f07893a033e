"""Remembering webhook event ids, so a redelivered Stripe event is applied once.

``seen(event_id)`` is an atomic check-and-record: False the first time (and the id is now
recorded), True afterwards. If applying the event then fails, ``forget`` lets Stripe's retry
through. A database implementation inserts into a table whose primary key is the event id and
treats the unique violation as "seen"; doing that insert in the same transaction as the payment
update makes record-and-apply atomic (docs/integrations.md, table ``stripe_event``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Protocol

__all__ = ["MemorySeenEvents", "SeenEvents"]


class SeenEvents(Protocol):
    async def seen(self, event_id: str) -> bool:
        """True when ``event_id`` was recorded before; otherwise record it and return False."""
        ...

    async def forget(self, event_id: str) -> None:
        """Un-record an id whose processing failed, so a retry is processed."""
        ...


class MemorySeenEvents:
    """In-process, bounded (oldest ids forgotten first). Fine for one worker and for tests."""

    def __init__(self, max_ids: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._max = max_ids
        self._lock = asyncio.Lock()

    async def seen(self, event_id: str) -> bool:
        async with self._lock:
            if event_id in self._ids:
                return True
            self._ids[event_id] = None
            while len(self._ids) > self._max:
                self._ids.popitem(last=False)
            return False

    async def forget(self, event_id: str) -> None:
        async with self._lock:
            self._ids.pop(event_id, None)
