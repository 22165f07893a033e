"""`textdesk check`: what a business file will make textdesk misread, before it goes live.

Problems are things customers will hit: an alias two services share (it singles out neither), a
FAQ question with too few words of its own to be matched, two providers with one first name, a
service nobody can ask for by another word, an escalation topic with no words to recognise it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from textdesk.business import Business
from textdesk.vocab import GENERIC, content_words, words

__all__ = ["problems"]


def problems(b: Business, known_topics: frozenset[str]) -> list[str]:
    out: list[str] = []
    owners: dict[str, set[str]] = defaultdict(set)
    for s in b.services:
        for phrase in (s.name, *s.aliases):
            owners[phrase.lower()].add(s.name)
    out += [f"alias {a!r} belongs to several services ({', '.join(sorted(o))}): it picks none"
            for a, o in sorted(owners.items()) if len(o) > 1]
    out += [f"service {s.name!r} has no aliases: customers must type its name" for s in b.services
            if not s.aliases]
    for item in b.faq:
        own = [w for w in content_words(item.q) if w not in GENERIC]
        if not own:
            out.append(f"FAQ {item.q!r} has no words of its own to match; say what it is about")
    first: dict[str, list[str]] = defaultdict(list)
    for p in b.providers:
        ws = [w for w in words(p.replace(".", " ")) if w not in ("dr", "doctor", "mr", "mrs", "ms")]
        if ws:
            first[ws[0]].append(p)
    out += [f"providers {', '.join(ps)} share the first name {f!r}" for f, ps in first.items() if len(ps) > 1]
    if not any(b.open_span(d) for d in _week()):
        out.append("the business is closed every day")
    for topic in b.escalate_topics:
        if topic.lower() not in known_topics and not any(len(w) >= 4 for w in topic.split()):
            out.append(f"escalation topic {topic!r} has no words long enough to recognise it")
    return out


def _week() -> list[dt.date]:
    monday = dt.date(2026, 1, 5)
    return [monday + dt.timedelta(days=i) for i in range(7)]
