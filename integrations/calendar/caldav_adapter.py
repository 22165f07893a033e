"""CalDAV calendars (Nextcloud, Fastmail, iCloud, Radicale, ...) through the ``caldav`` library.

Busy time comes from a time-range search of events (recurrences expanded, see ``ical`` for how
all-day, transparent and cancelled events count). Bookings are written as one resource each,
``<calendar>/<booking id>.ics`` with ``UID`` = booking id; the resource URL is the external id.

Writes use conditional PUTs so the server arbitrates: ``If-None-Match: *`` for a create (a
retried create finds its own resource), ``If-Match: <etag>`` for a move (a staff edit made in the
meantime is not overwritten). Around each write ``guarded_write`` searches right before the PUT
and again after it.

The caldav client is synchronous (requests/niquests): every call runs in a worker thread, one at
a time per adapter, on purpose, so the event loop never blocks and the HTTP session is never
shared between threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

import caldav
from caldav.lib.error import DAVError

from integrations.calendar.base import BookingInfo, conflicting, guarded_write
from integrations.calendar.ical import X_BOOKING, X_PROVIDER, booking_ics, busy_from_ics, moved_ics
from integrations.errors import CalendarConflict, CalendarError, CalendarNotFound, CalendarUnavailable
from textdesk.clock import Clock, SystemClock
from tools.availability import Busy

__all__ = ["CalDAVCalendar", "CalDAVConfig"]

log = logging.getLogger("textdesk.integrations.caldav")
T = TypeVar("T")
_ICS = {"Content-Type": "text/calendar; charset=utf-8"}


@dataclass(frozen=True)
class CalDAVConfig:
    """Where the calendars are.

    ``url`` is the calendar collection URL, or, when ``calendar`` (a display name) is given, any
    URL the server discovers the principal from (iCloud: ``https://caldav.icloud.com/``).
    ``provider_calendars`` maps a provider to their own calendar (URL or display name); events
    there are that provider's. Bookings without a mapped provider go to the main calendar, where
    ``X-TEXTDESK-PROVIDER`` or a matching ``CATEGORIES`` value says whose they are.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    calendar: str | None = None
    provider_calendars: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0


class CalDAVCalendar:
    name = "caldav"

    def __init__(
        self, config: CalDAVConfig, tz: ZoneInfo, *, providers: Sequence[str] = (), clock: Clock | None = None
    ) -> None:
        self.config, self.tz, self.providers = config, tz, tuple(providers)
        self.clock = clock or SystemClock()
        client_cls: Any = caldav.DAVClient  # caldav's own annotations confuse mypy here
        self._client = client_cls(
            url=config.url, username=config.username, password=config.password, timeout=int(config.timeout)
        )
        self._calendars: dict[str | None, Any] | None = None
        self._io = threading.Lock()
        self._write = asyncio.Lock()

    # -- plumbing ---------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        def call() -> T:
            with self._io:
                return fn()

        try:
            return await asyncio.to_thread(call)
        except CalendarError:
            raise
        except (DAVError, OSError) as exc:  # requests/niquests errors are OSErrors
            log.warning("caldav.unavailable", extra={"error": type(exc).__name__})
            raise CalendarUnavailable(f"CalDAV server error: {type(exc).__name__}: {exc}") from exc

    def _resolve(self, ref: str) -> Any:
        if ref.startswith(("http://", "https://")):
            return self._client.calendar(url=ref)
        return self._client.principal().calendar(name=ref)

    def _cals(self) -> dict[str | None, Any]:
        """Calendar objects by provider (None = the main calendar); resolved once, in the thread."""
        if self._calendars is None:
            cals: dict[str | None, Any] = {None: self._resolve(self.config.calendar or self.config.url)}
            for provider, ref in self.config.provider_calendars.items():
                cals[provider] = self._resolve(ref)
            self._calendars = cals
        return self._calendars

    @staticmethod
    def _check(resp: Any, what: str, ok: tuple[int, ...]) -> Any:
        if resp.status in ok:
            return resp
        if resp.status in (401, 403):
            raise CalendarUnavailable(f"{what}: not authorised (HTTP {resp.status})")
        raise CalendarUnavailable(f"{what}: HTTP {resp.status} {getattr(resp, 'reason', '')}".strip())

    # -- reads ------------------------------------------------------------------------------------

    def _busy_sync(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        out: list[Busy] = []
        for provider, cal in self._cals().items():
            found = cal.search(
                start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC), event=True, expand=True
            )
            out.extend(
                busy_from_ics((o.data for o in found), self.tz, provider=provider, providers=self.providers)
            )
        return [b for b in out if b.start < end and start < b.end]

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        return await self._run(lambda: self._busy_sync(start, end))

    def _get(self, url: str) -> tuple[str, str | None]:
        resp = self._client.request(url, "GET")
        if resp.status in (404, 410):
            raise CalendarNotFound(f"no calendar event at {url}")
        self._check(resp, "GET event", (200,))
        return str(resp.raw), resp.headers.get("ETag")

    # -- writes -----------------------------------------------------------------------------------

    def _target(self, provider: str | None) -> Any:
        cals = self._cals()
        return cals.get(provider, cals[None])

    def _put(self, url: str, body: str, headers: Mapping[str, str], what: str) -> str | None:
        resp = self._client.put(url, body, {**_ICS, **headers})
        if resp.status == 412:
            raise CalendarConflict(f"{what}: the event changed on the server meanwhile")
        self._check(resp, what, (200, 201, 204))
        etag: str | None = resp.headers.get("ETag")
        return etag

    def _delete(self, url: str) -> None:
        self._check(self._client.delete(url), "DELETE event", (200, 204, 404, 410))

    async def create(self, booking: BookingInfo) -> str:
        url = await self._run(
            lambda: str(self._target(booking.provider).url.join(quote(booking.booking_id, safe="") + ".ics"))
        )
        body = booking_ics(booking, self.clock.now())
        span = (booking.start, booking.end, booking.provider, booking.booking_id)

        async def taken() -> bool:
            return bool(conflicting(await self.busy(booking.start, booking.end), *span))

        def put_new() -> str:
            resp = self._client.put(url, body, {**_ICS, "If-None-Match": "*"})
            if resp.status != 412:  # 412: this booking's own resource exists (a retried create)
                self._check(resp, "PUT event", (200, 201, 204))
            return url

        async def write() -> str:
            return await self._run(put_new)

        async def undo(written: str) -> None:
            await self._run(lambda: self._delete(written))

        return await guarded_write(
            self._write,
            taken=taken,
            write=write,
            contested=lambda _: taken(),
            undo=undo,
            what=f"booking {booking.booking_id}",
            provider=booking.provider,
        )

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise ValueError("start and end must be aware, with end after start")
        old, etag = await self._run(lambda: self._get(external_id))
        meta = _meta(old)
        ref = meta.get(X_BOOKING)
        if ref is None:
            raise CalendarNotFound(f"{external_id} was not written by textdesk; not moving it")
        provider = meta.get(X_PROVIDER)
        if provider is None:  # a per-provider calendar says whose it is
            cals = await self._run(self._cals)
            provider = next(
                (p for p, c in cals.items() if p is not None and external_id.startswith(str(c.url))), None
            )
        new = moved_ics(old, start, end, self.clock.now())

        async def taken() -> bool:
            return bool(conflicting(await self.busy(start, end), start, end, provider, ref))

        async def write() -> str | None:
            return await self._run(
                lambda: self._put(external_id, new, {"If-Match": etag} if etag else {}, "PUT moved event")
            )

        async def undo(_: str | None) -> None:
            await self._run(lambda: self._put(external_id, old, {}, "PUT restored event"))

        await guarded_write(
            self._write,
            taken=taken,
            write=write,
            contested=lambda _: taken(),
            undo=undo,
            what=f"move {external_id}",
            provider=provider,
        )

    async def cancel(self, external_id: str) -> None:
        await self._run(lambda: self._delete(external_id))

    async def aclose(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _meta(ics: str) -> dict[str, str]:
    from icalendar import Calendar

    for comp in Calendar.from_ical(ics).walk("VEVENT"):
        return {k: str(comp[k]) for k in (X_BOOKING, X_PROVIDER) if comp.get(k) is not None}
    return {}
