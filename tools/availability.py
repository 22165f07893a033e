"""Availability from business hours, service duration and existing bookings. Pure functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from textdesk.business import Business

__all__ = ["Busy", "SlotCheck", "check_slot", "find_slots", "next_open_days"]

STEP = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Busy:
    """A busy interval in UTC, for one provider (None = the whole business)."""

    start: dt.datetime
    end: dt.datetime
    provider: str | None
    ref: str | None = None  # the booking id behind it, so a reschedule can ignore its own slot


@dataclass(frozen=True)
class SlotCheck:
    ok: bool
    reason: str  # ok | closed | outside_hours | past | taken | unknown_service
    provider: str | None = None


def _providers(business: Business, provider: str | None) -> list[str | None]:
    if provider:
        return [provider]
    return list(business.providers) or [None]


def _free(busy: Iterable[Busy], provider: str | None, start: dt.datetime, end: dt.datetime) -> bool:
    for b in busy:
        same = provider is None or b.provider is None or b.provider == provider
        if same and b.start < end and start < b.end:
            return False
    return True


def check_slot(
    business: Business,
    busy: Sequence[Busy],
    service: str,
    day: dt.date,
    at: dt.time,
    now: dt.datetime,
    provider: str | None = None,
) -> SlotCheck:
    """Can ``service`` start at ``day`` ``at`` (business time)? Picks the first free provider."""
    svc = business.service(service)
    if svc is None:
        return SlotCheck(False, "unknown_service")
    span = business.open_span(day)
    if span is None:
        return SlotCheck(False, "closed")
    tz = business.tz
    start = dt.datetime.combine(day, at, tz)
    end = start + dt.timedelta(minutes=svc.minutes)
    if start < dt.datetime.combine(day, span[0], tz) or end > dt.datetime.combine(day, span[1], tz):
        return SlotCheck(False, "outside_hours")
    if start <= now:
        return SlotCheck(False, "past")
    for p in _providers(business, provider):
        if _free(busy, p, start.astimezone(dt.UTC), end.astimezone(dt.UTC)):
            return SlotCheck(True, "ok", p)
    return SlotCheck(False, "taken")


def find_slots(
    business: Business,
    busy: Sequence[Busy],
    service: str,
    day: dt.date,
    now: dt.datetime,
    provider: str | None = None,
    after: dt.time | None = None,
    before: dt.time | None = None,
    near: dt.time | None = None,
    limit: int = 3,
) -> list[dt.time]:
    """Free start times on ``day``; nearest to ``near`` first when given, else earliest first."""
    span = business.open_span(day)
    if span is None or business.service(service) is None:
        return []
    tz = business.tz
    t = dt.datetime.combine(day, span[0], tz)
    close = dt.datetime.combine(day, span[1], tz)
    found: list[dt.time] = []
    while t < close:
        clock = t.timetz().replace(tzinfo=None)
        in_window = (after is None or clock >= after) and (before is None or clock < before)
        if in_window and check_slot(business, busy, service, day, clock, now, provider).ok:
            found.append(clock)
        t += STEP
    if near is not None:
        anchor = near.hour * 60 + near.minute
        found.sort(key=lambda c: (abs(c.hour * 60 + c.minute - anchor), c))
        return sorted(found[:limit])
    return found[:limit]


def next_open_days(business: Business, start: dt.date, count: int = 7) -> list[dt.date]:
    """The next ``count`` days from ``start`` (inclusive) on which the business opens."""
    days: list[dt.date] = []
    d = start
    for _ in range(60):
        if business.open_span(d) is not None:
            days.append(d)
            if len(days) == count:
                break
        d += dt.timedelta(days=1)
    return days
