"""`textdesk check`: what a business file will make textdesk misread, or carriers filter, before it
goes live. Every problem comes with its fix.

Understanding problems are things customers will hit: an alias two services share (it singles out
neither), a FAQ question with too few words of its own to be matched, two providers with one first
name, a service nobody can ask for by another word, an escalation topic with no words to recognise
it. Deliverability problems (HELP and opt-in wording, segments, links, quiet hours, the number's
10DLC registration) are in textdesk/deliverability.py.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from textdesk.business import Business
from textdesk.deliverability import Problem, deliverability
from textdesk.vocab import GENERIC, content_words, words

__all__ = ["Problem", "problems", "understanding"]


def problems(b: Business, known_topics: frozenset[str]) -> list[Problem]:
    """The whole report: understanding problems first, then deliverability ones."""
    return understanding(b, known_topics) + deliverability(b)


def understanding(b: Business, known_topics: frozenset[str]) -> list[Problem]:
    out: list[Problem] = []
    owners: dict[str, set[str]] = defaultdict(set)
    for s in b.services:
        for phrase in (s.name, *s.aliases):
            owners[phrase.lower()].add(s.name)
    out += [_p(f"alias {a!r} belongs to several services ({', '.join(sorted(o))}): it picks none",
               "keep it in the `aliases:` of one service only")
            for a, o in sorted(owners.items()) if len(o) > 1]
    out += [_p(f"service {s.name!r} has no aliases: customers must type its name",
               "add the words customers use for it to its `aliases:`") for s in b.services if not s.aliases]
    for item in b.faq:
        own = [w for w in content_words(item.q) if w not in GENERIC]
        if not own:
            out.append(_p(f"FAQ {item.q!r} has no words of its own to match",
                          "say what it is about in its `q:`"))
    first: dict[str, list[str]] = defaultdict(list)
    for p in b.providers:
        ws = [w for w in words(p.replace(".", " ")) if w not in ("dr", "doctor", "mr", "mrs", "ms")]
        if ws:
            first[ws[0]].append(p)
    out += [_p(f"providers {', '.join(ps)} share the first name {f!r}",
               "write them in `providers:` so their first words differ")
            for f, ps in first.items() if len(ps) > 1]
    if not any(b.open_span(d) for d in _week()):
        out.append(_p("the business is closed every day", "give at least one day opening `hours:`"))
    for topic in b.escalate_topics:
        if topic.lower() not in known_topics and not any(len(w) >= 4 for w in topic.split()):
            out.append(_p(f"escalation topic {topic!r} has no words long enough to recognise it",
                          "name it in `escalate_topics:` with a word of 4 letters or more"))
    return out


def _p(what: str, fix: str) -> Problem:
    return Problem(what, fix, "understanding")


def _week() -> list[dt.date]:
    monday = dt.date(2026, 1, 5)
    return [monday + dt.timedelta(days=i) for i in range(7)]
