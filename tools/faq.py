"""Read tool: answer a question from the business file only (never invent facts)."""

from __future__ import annotations

import datetime as dt
import re

from rapidfuzz import fuzz

from textdesk.business import DAYS, Business

__all__ = ["answer_faq", "day_hours_text", "hours_text"]

_DAY_NAMES = dict(zip(DAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))
_HOURS = re.compile(
    r"\b(hours?|open|opening hours|close[sd]?|closing|what time do you|when do you (?:open|close))\b"
)
_PRICE = re.compile(r"\b(price|prices|pricing|cost|costs|how much|hw much|charge for|charge)\b")
_DURATION = re.compile(r"\bhow long\b|\bduration\b|\btake[s]?\b.*\blong\b|\bminutes\b")
_SERVICES = re.compile(r"\b(what services|which services|what do you (?:do|offer)|services do you|menu)\b")
_PROVIDERS = re.compile(r"\b(who works|stylists?|which providers|who(?:'s| is) available|staff)\b")


def _hm(t: str) -> str:
    h, m = (int(x) for x in t.split(":"))
    return f"{h % 12 or 12}:{m:02d} {'AM' if h < 12 else 'PM'}"


def hours_text(b: Business) -> str:
    """'Mon-Wed 9am-6pm, Thu-Fri 9am-8pm, Sat 10am-4pm, Sun closed' (consecutive days grouped)."""
    groups: list[tuple[list[str], str]] = []
    for day in DAYS:
        span = b.hours.get(day, "closed")
        label = "closed" if span == "closed" else "-".join(_hm(p) for p in span.split("-"))
        if groups and groups[-1][1] == label:
            groups[-1][0].append(day)
        else:
            groups.append(([day], label))
    parts = []
    for days, label in groups:
        name = _DAY_NAMES[days[0]] if len(days) == 1 else f"{_DAY_NAMES[days[0]]}-{_DAY_NAMES[days[-1]]}"
        parts.append(f"{name} {label}")
    return ", ".join(parts)


def _mentioned_services(b: Business, text: str) -> list[str]:
    found: list[str] = []
    for alias, name in b.service_vocabulary().items():
        if re.search(rf"\b{re.escape(alias)}s?\b", text) and name not in found:
            found.append(name)
    return found


def day_hours_text(b: Business, day: dt.date) -> str:
    name = _DAY_NAMES[DAYS[day.weekday()]]
    span = b.hours.get(DAYS[day.weekday()], "closed")
    if span == "closed":
        return f"We're closed on {name} {day.strftime('%b')} {day.day}. Our hours: {hours_text(b)}."
    start, end = span.split("-")
    return f"On {name} {day.strftime('%b')} {day.day} we're open {_hm(start)} to {_hm(end)}."


def answer_faq(
    b: Business, question: str, services: list[str] | None = None, day: dt.date | None = None
) -> str | None:
    """The business's answer to ``question``, or None when the file does not say.

    ``services`` are services the caller already recognised (with typo tolerance) or knows from
    the conversation; ``day`` is a date the question mentions, for "are you open saturday".
    """
    text = question.lower()
    services = [*(services or []), *(n for n in _mentioned_services(b, text) if n not in (services or []))]
    if _PRICE.search(text) or (_DURATION.search(text) and services):
        chosen = [b.service(n) for n in services] or list(b.services)
        bits = []
        for s in chosen:
            if s is None:
                continue
            price = f" is {s.price}" if s.price else ""
            bits.append(f"A {s.name}{price} ({s.minutes} min)")
        return ". ".join(bits) + "."
    best, score = None, 0.0
    for item in b.faq:
        sc = fuzz.token_set_ratio(text, item.q.lower())
        if sc > score:
            best, score = item, sc
    if best is not None and score >= 72:
        return best.a
    if _HOURS.search(text):
        return day_hours_text(b, day) if day is not None else f"Our hours: {hours_text(b)}."
    if _SERVICES.search(text):
        return "We offer " + ", ".join(f"{s.name} ({s.price})" for s in b.services) + "."
    if _PROVIDERS.search(text) and b.providers:
        return f"Our team: {', '.join(b.providers)}."
    if re.search(r"\b(where|address|located|location|parking|park|directions)\b", text):
        for item in b.faq:
            if re.search(r"\b(where|locat|address)", item.q.lower()):
                return item.a
    if re.search(r"\bwalk[- ]?ins?\b|\bwalk in\b", text):
        for item in b.faq:
            if "walk" in item.q.lower():
                return item.a
    return None
