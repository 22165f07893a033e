"""How flexible a customer is: a range of days, a window in the day, a preference.

``agent.timeparse`` finds one date and one exact time; this finds what a booking request says
around them: "sometime next week", "this weekend", "in the next few days" (a range of days),
"mornings", "around lunch", "later in the day", "after work" (a window), "earliest",
"whatever's first", "any time" (a preference). The policy offers times that satisfy all of it.
English words only; dates resolve against the business-local ``today``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

__all__ = ["Span", "parse_span"]


@dataclass(frozen=True)
class Span:
    first: dt.date | None = None  # inclusive range of days
    last: dt.date | None = None
    after: dt.time | None = None  # window within a day
    before: dt.time | None = None
    prefer: str | None = None  # earliest | latest
    weekdays: frozenset[int] | None = None  # "weekdays", "most days": which days of the week

    @property
    def flexible(self) -> bool:
        return self.first is not None or self.after is not None or self.before is not None


_WK = r"(?:week|wk|wek)"
_RANGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b(?:early|beginning of|start of) next {_WK}\b"), "early_next_week"),
    (re.compile(rf"\b(?:late|later|end of|end of the) next {_WK}\b"), "late_next_week"),
    (re.compile(rf"\bnext {_WK}\b|\bthe {_WK} after\b|\bfollowing {_WK}\b"), "next_week"),
    (re.compile(rf"\b(?:later|end of|the end of|end of the|rest of) (?:this|the) {_WK}\b"), "late_this_week"),
    (re.compile(rf"\bthis {_WK}\b|\bsometime this\b|\bthis coming {_WK}\b|\bwithin the {_WK}\b"),
     "this_week"),
    (re.compile(r"\bnext (?:weekend|wknd|wkend)\b"), "next_weekend"),
    (re.compile(r"\b(?:this|the|on the|over the) (?:weekend|wknd|wkend)\b|\bweekend\b"), "this_weekend"),
    (re.compile(r"\b(?:next|in the next|within the next|coming) (?:few|couple(?: of)?|2|3|two|three) days\b|"
                r"\bin a (?:few|couple(?: of)?) days\b"), "few_days"),
    (re.compile(r"\b(?:in|within) (?:2|two) weeks\b|\bnext (?:2|two|couple(?: of)?) weeks\b"), "two_weeks"),
    (re.compile(r"\b(?:any ?day|whenever|any ?time|asap|as soon as|soonest|earliest|first available|"
                r"next available|first opening|next opening)\b"), "soon"),
]
_WINDOWS: list[tuple[re.Pattern[str], tuple[dt.time | None, dt.time | None]]] = [
    (re.compile(r"\b(?:around|at|over|during|before|after)? ?lunch(?:time| time| break)?\b|\bmidday\b|"
                r"\bnoonish\b|\baround noon\b"), (dt.time(11, 30), dt.time(13, 30))),
    (re.compile(r"\b(?:later in the day|late in the day|end of (?:the )?day|late afternoon|"
                r"after (?:school|work)|evenings?|nights?|after hours)\b"), (dt.time(16, 0), None)),
    (re.compile(r"\b(?:first thing|early morning|early in the morning|early)\b"), (None, dt.time(10, 30))),
    (re.compile(r"\bmornings?\b|\bam only\b|\bbefore noon\b"), (None, dt.time(12, 0))),
    (re.compile(r"\bafternoons?\b|\bpm\b(?! *\d)"), (dt.time(12, 0), dt.time(17, 0))),
]
_EARLIEST = re.compile(
    r"\b(?:earliest|soonest|asap|as soon as|first available|next available|first opening|next opening|"
    r"whatever(?:'s| is|s)? (?:first|earliest|soonest|open)|first thing|the first|any ?time|whenever|"
    r"whatever works|what(?:ever)? you have first)\b")
_LATEST = re.compile(r"\b(?:latest|last (?:one|slot|appointment|time)|as late as)\b")
_WEEKDAYS = re.compile(r"\b(?:weekdays?|most days|any weekday|during the week|mon(?:day)?[- ]fri(?:day)?)\b")
_WEEKENDS = re.compile(r"\bweekends? only\b")


def _week(today: dt.date, weeks: int) -> tuple[dt.date, dt.date]:
    monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(weeks=weeks)
    return monday, monday + dt.timedelta(days=6)


def _saturday(today: dt.date, following: bool) -> dt.date:
    sat = today + dt.timedelta(days=(5 - today.weekday()) % 7)
    if today.weekday() == 6:  # on a Sunday, "this weekend" is today
        sat = today - dt.timedelta(days=1)
    return sat + dt.timedelta(days=7) if following else sat


def _range(kind: str, today: dt.date) -> tuple[dt.date, dt.date]:
    if kind == "next_week":
        return _week(today, 1)
    if kind == "early_next_week":
        first, _ = _week(today, 1)
        return first, first + dt.timedelta(days=2)
    if kind == "late_next_week":
        first, last = _week(today, 1)
        return first + dt.timedelta(days=3), last
    if kind == "this_week":
        return today, _week(today, 0)[1]
    if kind == "late_this_week":
        last = _week(today, 0)[1]
        return max(today, last - dt.timedelta(days=3)), last
    if kind in ("this_weekend", "next_weekend"):
        sat = _saturday(today, kind == "next_weekend")
        return max(today, sat), sat + dt.timedelta(days=1)
    if kind == "few_days":
        return today + dt.timedelta(days=1), today + dt.timedelta(days=3)
    if kind == "two_weeks":
        return today, today + dt.timedelta(days=14)
    return today, today + dt.timedelta(days=13)  # soon / any day


def parse_span(text: str, today: dt.date) -> Span:
    low = text.lower().replace("’", "'")
    first = last = None
    for rx, kind in _RANGES:
        if rx.search(low):
            first, last = _range(kind, today)
            break
    after = before = None
    for rx, (a, b) in _WINDOWS:
        if rx.search(low):
            after, before = a, b
            break
    prefer = "earliest" if _EARLIEST.search(low) else "latest" if _LATEST.search(low) else None
    weekdays = (frozenset(range(5)) if _WEEKDAYS.search(low) else
                frozenset({5, 6}) if _WEEKENDS.search(low) else None)
    return Span(first, last, after, before, prefer, weekdays)
