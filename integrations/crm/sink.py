"""Where CRM events go without ever holding up a customer's turn.

``EventSink.emit`` is synchronous and never blocks or raises: the turn hands the event over and
moves on. ``QueueSink`` keeps events in a bounded in-memory queue and one worker task delivers
them to each ``Destination`` (generic webhook, HubSpot), each with its own bounded retries.

This queue is lost on restart. The durable version is the transactional outbox described in
docs/integrations.md: the turn inserts an ``integration_event`` row in the same transaction
as the change it describes, and a worker (using the same ``Destination.deliver``) sends rows
marked ``pending`` and records the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from integrations.crm.events import CrmEvent
from integrations.errors import DeliveryFailed

__all__ = ["Destination", "EventSink", "MemorySink", "NullSink", "QueueSink", "SinkStats"]

log = logging.getLogger("textdesk.integrations.crm")

DeadLetter = Callable[[CrmEvent, str, Exception], Awaitable[None]]


class Destination(Protocol):
    """One place events are delivered to. ``deliver`` retries on its own, then raises DeliveryFailed."""

    name: str

    async def deliver(self, event: CrmEvent) -> None: ...


class EventSink(Protocol):
    def emit(self, event: CrmEvent) -> None:
        """Accept an event for later delivery. Never blocks, never raises."""
        ...

    async def start(self) -> None: ...

    async def stop(self, grace: float = 5.0) -> None: ...


class NullSink:
    """No CRM configured."""

    def emit(self, event: CrmEvent) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self, grace: float = 5.0) -> None:
        return None


class MemorySink(NullSink):
    """Records events (tests, evals, the console)."""

    def __init__(self) -> None:
        self.events: list[CrmEvent] = []

    def emit(self, event: CrmEvent) -> None:
        self.events.append(event)


@dataclass
class SinkStats:
    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0


class QueueSink:
    """Bounded queue + one worker. When the queue is full the event is dropped and counted: a CRM
    outage must not grow memory without bound or slow the SMS path."""

    def __init__(
        self, destinations: Sequence[Destination], *, maxsize: int = 1000, on_dead: DeadLetter | None = None
    ) -> None:
        self.destinations = list(destinations)
        self.on_dead = on_dead
        self.stats = SinkStats()
        self._queue: asyncio.Queue[CrmEvent] = asyncio.Queue(maxsize=maxsize)
        self._worker: asyncio.Task[None] | None = None

    def emit(self, event: CrmEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.warning("crm.dropped", extra={"event_id": event.id, "type": event.type})
            return
        self.stats.accepted += 1

    async def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="textdesk-crm-sink")

    async def stop(self, grace: float = 5.0) -> None:
        """Deliver what is queued (up to ``grace`` seconds), then stop the worker."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    async def drain(self) -> None:
        """Wait until everything queued so far has been handled (tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                for dest in self.destinations:
                    await self._deliver(dest, event)
            finally:
                self._queue.task_done()

    async def _deliver(self, dest: Destination, event: CrmEvent) -> None:
        try:
            await dest.deliver(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a destination's bug must not kill the worker
            self.stats.failed += 1
            permanent = isinstance(exc, DeliveryFailed) and exc.permanent
            log.warning(
                "crm.delivery_failed",
                extra={
                    "destination": dest.name,
                    "event_id": event.id,
                    "type": event.type,
                    "permanent": permanent,
                    "error": str(exc),
                },
            )
            if self.on_dead is not None:
                try:
                    await self.on_dead(event, dest.name, exc)
                except Exception:
                    log.exception("crm.dead_letter_failed")
            return
        self.stats.delivered += 1
