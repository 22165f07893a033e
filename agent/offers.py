"""Which times to offer: free slots that satisfy everything the customer said at once.

A request may pin a day or give a range of days ("next week"), a window ("after 5", mornings),
a provider, and a preference ("earliest"). Offers come from the same availability rules the
booking tool checks (tools.availability), so an offered time is bookable when it is offered.
Pure functions over the business, the busy list and the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from agent.state import Offer
from textdesk.business import Business
from tools.availability import Busy, check_slot, find_slots, next_open_days

__all__ = ["Ask", "days_between", "find_offers", "provider_for", "window"]

_WINDOW_OF_PART = {
    "morning": (None, dt.time(12)),
    "afternoon": (dt.time(12), dt.time(17)),
    "evening": (dt.time(17), None),
    "night": (dt.time(17), None),
}


@dataclass(frozen=True)
class Ask:
    """What the customer asked for, as the policy hands it to the offer search."""

    service: str
    days: Sequence[dt.date]  # candidate days in order (one for a pinned date)
    provider: str | None = None
    after: dt.time | None = None
    before: dt.time | None = None
    near: dt.time | None = None
    prefer: str | None = None  # earliest | latest
    weekdays: frozenset[int] | None = None


def window(
    after: str | None, before: str | None, part_of_day: str | None
) -> tuple[dt.time | None, dt.time | None]:
    a = dt.time.fromisoformat(after) if after else None
    b = dt.time.fromisoformat(before) if before else None
    if a is None and b is None and part_of_day:
        return _WINDOW_OF_PART.get(part_of_day, (None, None))
    return a, b


def days_between(b: Business, first: dt.date, last: dt.date, today: dt.date) -> list[dt.date]:
    start = max(first, today)
    span = (last - start).days + 1
    return [d for d in next_open_days(b, start, max(1, span)) if d <= last]


def find_offers(b: Business, busy: list[Busy], ask: Ask, now: dt.datetime, limit: int = 3
                ) -> tuple[list[Offer], bool]:
    """Up to ``limit`` offers and whether they honour the window (False: the window had nothing,
    so these are the nearest times outside it). One day: the earliest (or nearest) times of
    that day. Several days: with a preference, the earliest (latest) times overall; without one,
    the first time of each of the first days, so the customer sees a spread."""
    days = [d for d in ask.days if ask.weekdays is None or d.weekday() in ask.weekdays] or list(ask.days)
    for honour in (True, False):
        after, before = (ask.after, ask.before) if honour else (None, None)
        per_day: list[list[Offer]] = []
        for d in days:
            times = find_slots(b, busy, ask.service, d, now, ask.provider, after, before, ask.near,
                               limit=limit if len(days) == 1 else 48)
            if ask.prefer == "latest":
                times = sorted(times, reverse=True)
            offers = [Offer(date=d.isoformat(), time=t.strftime("%H:%M"),
                            provider=ask.provider) for t in times]
            if offers:
                per_day.append(offers)
        if per_day:
            if len(days) == 1:
                return per_day[0][:limit], honour or (ask.after is None and ask.before is None)
            if ask.prefer in ("earliest", "latest"):
                flat = [o for day in per_day for o in day]
                if ask.prefer == "latest":
                    flat = sorted(flat, key=lambda o: (o.date, o.time), reverse=True)
                return flat[:limit], honour or (ask.after is None and ask.before is None)
            spread = [day[0] for day in per_day[:limit]]
            rest = [o for day in per_day for o in day[1:]]
            return (spread + rest)[:limit], honour or (ask.after is None and ask.before is None)
        if ask.after is None and ask.before is None:
            break
    return [], True


def provider_for(b: Business, busy: list[Busy], service: str, offer: Offer, now: dt.datetime) -> str | None:
    """Who would take an offered time (the first free provider), for offers that name one."""
    check = check_slot(b, busy, service, dt.date.fromisoformat(offer.date), dt.time.fromisoformat(offer.time),
                       now, offer.provider)
    return check.provider if check.ok else None
