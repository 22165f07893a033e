"""iCalendar for the CalDAV adapter: write a booking as a VEVENT, read VEVENTs as busy time.

Reading is deliberately forgiving because other people's calendar apps write these events:

* ``STATUS:CANCELLED`` and ``TRANSP:TRANSPARENT`` ("show me as free") events block nothing;
* all-day events (``DTSTART;VALUE=DATE``) block whole days in the business's time zone, and
  floating times (no zone) are read in the business's time zone too;
* a missing ``DTEND`` means ``DURATION`` if given, else one day for all-day events and no
  time at all for timed ones (RFC 5545 section 3.6.1);
* the provider is the calendar's (per-provider calendars), else ``X-TEXTDESK-PROVIDER``, else a
  ``CATEGORIES`` value naming a known provider, else None: the whole business is busy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from integrations.calendar.base import BookingInfo
from tools.availability import Busy

__all__ = ["PRODID", "booking_ics", "busy_from_ics", "event_uid", "moved_ics"]

PRODID = "-//textdesk//integrations//EN"
X_BOOKING = "X-TEXTDESK-BOOKING-ID"
X_PROVIDER = "X-TEXTDESK-PROVIDER"


def booking_ics(booking: BookingInfo, now: dt.datetime) -> str:
    """A VCALENDAR holding one opaque VEVENT whose UID is the booking id."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    ev = Event()
    ev.add("uid", booking.booking_id)
    ev.add("dtstamp", now.astimezone(dt.UTC))
    ev.add("created", now.astimezone(dt.UTC))
    ev.add("dtstart", booking.start)
    ev.add("dtend", booking.end)
    ev.add("summary", booking.summary)
    ev.add("description", booking.description)
    ev.add("status", "CONFIRMED")
    ev.add("transp", "OPAQUE")
    ev.add("sequence", 0)
    ev.add("categories", ["textdesk", *([booking.provider] if booking.provider else [])])
    ev.add(X_BOOKING, booking.booking_id)
    if booking.provider:
        ev.add(X_PROVIDER, booking.provider)
    cal.add_component(ev)
    return str(cal.to_ical().decode("utf-8"))


def _main_event(cal: Calendar) -> Any:
    for comp in cal.walk("VEVENT"):
        if comp.get("recurrence-id") is None:
            return comp
    raise ValueError("no VEVENT in calendar data")


def event_uid(ics: str) -> str | None:
    uid = _main_event(Calendar.from_ical(ics)).get("uid")
    return str(uid) if uid is not None else None


def moved_ics(ics: str, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> str:
    """The same event at a new time: DTSTART/DTEND replaced, SEQUENCE bumped (RFC 5546)."""
    cal = Calendar.from_ical(ics)
    ev = _main_event(cal)
    seq = int(ev.get("sequence", 0))
    for key in ("dtstart", "dtend", "duration", "dtstamp", "last-modified", "sequence"):
        if key in ev:
            del ev[key]
    ev.add("dtstart", start.astimezone(dt.UTC))
    ev.add("dtend", end.astimezone(dt.UTC))
    ev.add("dtstamp", now.astimezone(dt.UTC))
    ev.add("last-modified", now.astimezone(dt.UTC))
    ev.add("sequence", seq + 1)
    return str(cal.to_ical().decode("utf-8"))


def _as_utc(value: dt.date | dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(dt.UTC)
    return dt.datetime.combine(value, dt.time(0), tz).astimezone(dt.UTC)


def _span(comp: Any, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime] | None:
    if comp.get("dtstart") is None:
        return None
    raw_start = comp.decoded("dtstart")
    if comp.get("dtend") is not None:
        raw_end = comp.decoded("dtend")
    elif comp.get("duration") is not None:
        raw_end = raw_start + comp.decoded("duration")
    elif isinstance(raw_start, dt.datetime):
        raw_end = raw_start
    else:
        raw_end = raw_start + dt.timedelta(days=1)
    start, end = _as_utc(raw_start, tz), _as_utc(raw_end, tz)
    return (start, end) if end > start else None


def _categories(comp: Any) -> list[str]:
    raw = comp.get("categories")
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    names: list[str] = []
    for item in items:
        names.extend(str(c) for c in getattr(item, "cats", [item]))
    return names


def _provider(comp: Any, fixed: str | None, providers: Sequence[str]) -> str | None:
    if fixed is not None:
        return fixed
    known = {p.lower(): p for p in providers}
    named = comp.get(X_PROVIDER)
    if named is not None:
        return known.get(str(named).strip().lower(), str(named).strip())
    for cat in _categories(comp):
        if cat.strip().lower() in known:
            return known[cat.strip().lower()]
    return None


def busy_from_ics(
    texts: Iterable[str], tz: ZoneInfo, *, provider: str | None = None, providers: Sequence[str] = ()
) -> list[Busy]:
    """Busy intervals from calendar objects (one VCALENDAR text each, recurrences expanded)."""
    out: list[Busy] = []
    for text in texts:
        for comp in Calendar.from_ical(text).walk("VEVENT"):
            if str(comp.get("status", "")).upper() == "CANCELLED":
                continue
            if str(comp.get("transp", "OPAQUE")).upper() == "TRANSPARENT":
                continue
            span = _span(comp, tz)
            if span is None:
                continue
            ref = comp.get(X_BOOKING)
            out.append(
                Busy(
                    span[0],
                    span[1],
                    _provider(comp, provider, providers),
                    str(ref) if ref is not None else None,
                )
            )
    return out
