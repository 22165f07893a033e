"""Read tool: answer a question from the business file only, and only when it is about this
business (never invent facts, never answer the world with the business's facts).

A question is *grounded* when it matches a FAQ entry's own words, names one of the business's
services or providers or the business itself, or asks one of the standard business-fact
questions (hours, location, prices, services, team) addressed to the business ("are you open",
"where r u", "your prices") or carried by the conversation ("how much?" right after talking
about a service). A cue word alone ("where", "how much", "close") grounds nothing: "where do
pearls come from", "how much is a ps5" and "what time does the DMV close" have the cue and no
business in them. Each answer says what grounded it and how strongly (for the trace).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from textdesk.business import DAYS, Business
from textdesk.vocab import content_words, vocabulary

__all__ = ["GROUNDING_THRESHOLD", "Answer", "answer", "day_hours_text", "hours_text", "outside_subject"]

# A FAQ entry grounds a question when this share of its question's content words is in the text
# (a word counts when its stem matches, it is clipped or a near-typo: textdesk.vocab).
GROUNDING_THRESHOLD = 0.5

_DAY_NAMES = dict(zip(DAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_YOU = re.compile(r"\b(?:you|u|ur|your|yours|y'?all|ya|yous|you guys|ur place|your place)\b")
# The standard questions any business answers; each needs the business as its subject.
_FACTS: dict[str, re.Pattern[str]] = {
    "hours": re.compile(r"\b(hours?|open|opening|close[sd]?|closing|what time do|when do|how late|how early|"
                        r"until when|til when|till when)\b"),
    "price": re.compile(r"\b(price|prices|pricing|cost|costs|how much|hw much|(?:you|u) charge|charge for|"
                        r"rates?|fee|fees)\b"),
    "duration": re.compile(r"\bhow long\b|\bduration\b|\btake[s]?\b.*\blong\b|\bminutes\b"),
    "location": re.compile(r"\b(where|address|located|location|parking|park|directions|find you)\b"),
    "services": re.compile(r"\b(what services|which services|what do you (?:do|offer)|services do you|"
                           r"menu|do you (?:do|offer|have))\b"),
    "providers": re.compile(r"\b(who works|who(?:'s| is) (?:there|working|available)|staff|team)\b"),
    "contact": re.compile(r"\b(phone number|ur number|your number|number (?:to|i can) call|call you|"
                          r"email address|your email|ur email|contact you|reach you|"
                          r"talk to you on the phone)\b"),
}
_FACT_WORDS = re.compile(r"^(?:hours?|open\w*|clos\w*|address|locat\w*|parking|park|directions|price\w*|"
                         r"cost\w*|charge\w*|rates?|fees?|long|duration|minutes|services?|offer|staff|team|"
                         r"time|today|tomorrow|tonight|weekend|weekends|week|late|early)$")
_DAYNAMES = frozenset((
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mon", "tue",
    "tues", "wed", "thu", "thurs", "fri", "sat", "sun", "weekday", "weekdays",
))
# A customer on their way here: parking and directions need no "you" to be about the business.
_ARRIVAL = re.compile(r"\b(?:park|parking|get there|get to you|find you|directions|which entrance|lock up|"
                      r"where (?:do|should|can) (?:i|we) (?:go|park|enter|come))\b")
# "what time does the DMV close": a third party is the subject of the question.
_THIRD_PARTY = re.compile(
    r"\b(?:does|do|is|are|did|was|were|will|would|can|could)\s+(?:the|a|an|my|his|her|their|that|this)\s+"
    r"(?P<noun>[a-z][a-z'-]+)"
    r"|\bhow much (?:is|are|does|do|was|were)\s+(?:a|an|the|one|some)?\s*(?P<item>[a-z0-9][a-z0-9'-]+)"
    r"|\bwhere (?:do|does|did|is|are|was|were|can i find)\s+(?P<thing>[a-z][a-z'-]+)"
    r"|\bhow long (?:do|does|will|would|can|should)\s+(?P<lasting>[a-z][a-z'-]+)"
    r"|\b(?:buy|purchase|order|rent)\s+(?:a|an|the|some|one)?\s*(?P<bought>[a-z0-9][a-z0-9'-]+)"
    r"|(?<!my )(?<!our )(?<!his )(?<!her )(?<!your )(?<!ur )\b(?P<owner>[a-z]{3,})'s\b"  # "united's policy"
)
_NOT_OWNERS = frozenset((
    "what", "it", "that", "there", "who", "where", "how", "here", "let", "he", "she", "what's",
    "today", "tomorrow", "tonight", "yesterday", "mom", "dad",
))


@dataclass(frozen=True)
class Answer:
    """An answer from the file, with what grounded it: ``faq:<n>``, ``price``, ``hours``, ..."""

    text: str
    source: str
    score: float
    grounded_by: str  # faq | service | provider | business | you | context


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


def day_hours_text(b: Business, day: dt.date) -> str:
    name = _DAY_NAMES[DAYS[day.weekday()]]
    span = b.hours.get(DAYS[day.weekday()], "closed")
    if span == "closed":
        return f"We're closed on {name} {day.strftime('%b')} {day.day}. Our hours: {hours_text(b)}."
    start, end = span.split("-")
    return f"On {name} {day.strftime('%b')} {day.day} we're open {_hm(start)} to {_hm(end)}."


def outside_subject(b: Business, text: str) -> str | None:
    """The outside subject of a question, if it has one ("the DMV", "a ps5", "pearls",
    "united's"): something that is neither this business nor one of its services."""
    return _third_party(b, " ".join(_TOKEN.findall(text.lower().replace("’", "'"))))


def _third_party(b: Business, text: str) -> str | None:
    v = vocabulary(b)
    for m in _THIRD_PARTY.finditer(text):
        owner = m.group("owner")
        if owner:
            if owner not in _NOT_OWNERS and owner not in _DAYNAMES and not v.knows(owner):
                return owner
            continue
        noun = (m.group("noun") or m.group("item") or m.group("thing") or m.group("lasting")
                or m.group("bought"))
        if noun and noun not in ("you", "u", "ur", "y'all") and not v.knows(noun) and not v.service(noun):
            if noun in ("it", "that", "this", "there", "they", "he", "she", "we", "i"):
                continue
            return noun
    return None


def _faq(b: Business, text: str) -> tuple[int, float] | None:
    """The FAQ entry whose question's words the text covers best, and that share."""
    overlap = vocabulary(b).faq_overlap(text)
    if not overlap:
        return None
    i = max(range(len(overlap)), key=lambda k: overlap[k])
    return i, overlap[i]


def _faq_sharing(b: Business, text: str) -> int | None:
    """A FAQ entry whose question or answer has one of the text's distinctive words (not a
    service name, not a function word): "prenatal" finds the entry about prenatal massage."""
    v = vocabulary(b)
    own = {w for w in content_words(text) if not v.knows(w) and not _FACT_WORDS.search(w)}
    for i, item in enumerate(b.faq):
        entry = set(content_words(f"{item.q} {item.a}"))
        if own & entry:
            return i
    return None


def answer(
    b: Business,
    question: str,
    services: list[str] | None = None,
    day: dt.date | None = None,
    context: bool = False,
) -> Answer | None:
    """The business's grounded answer to ``question``, or None when the file does not say or the
    question is not about this business.

    ``services`` are services already recognised in the text or known from the conversation;
    ``context`` says the conversation is about this business already (a task or service in
    progress), which grounds a short elliptical question ("how much?", "how long does it take?").
    """
    text = " ".join(_TOKEN.findall(question.lower().replace("’", "'")))
    v = vocabulary(b)
    named = [m.value for m in v.services(question)]
    services = [*named, *(s for s in (services or []) if s not in named)]
    provider = v.provider(question)
    outside = _third_party(b, text)
    you = bool(_YOU.search(text))
    coming = bool(_ARRIVAL.search(text)) and not outside  # "where do i park", "how do i get there"
    # "whats the address", "hours on monday?": a bare business-fact question with nothing else in
    # it is a customer asking the business they are texting.
    rest = [w for w in content_words(question) if not _FACT_WORDS.search(w) and not v.knows(w)
            and w not in _DAYNAMES]
    bare = not outside and not rest and any(rx.search(text) for rx in _FACTS.values())
    ground = ("service" if named else "provider" if provider else "business" if v.names_business(question)
              else "you" if you and not outside else "arrival" if coming else "bare" if bare
              else "context" if context and not outside and len(content_words(question)) <= 4 else None)

    faq = _faq(b, question)
    if faq is not None and faq[1] >= GROUNDING_THRESHOLD and outside is None:
        i, score = faq
        return Answer(b.faq[i].a, f"faq:{i}", round(score, 3), "faq")
    if ground is None:
        return None
    if _FACTS["price"].search(text) or (_FACTS["duration"].search(text) and services):
        chosen = [b.service(n) for n in services] or list(b.services)
        bits = [f"A {s.name}{f' is {s.price}' if s.price else ''} ({s.minutes} min)" for s in chosen if s]
        return Answer(". ".join(bits) + ".", "price", 1.0, ground)
    if _FACTS["hours"].search(text):
        said = day_hours_text(b, day) if day is not None else f"Our hours: {hours_text(b)}."
        return Answer(said, "hours", 1.0, ground)
    if _FACTS["services"].search(text) and not named:
        listed = ", ".join(f"{s.name} ({s.price})" if s.price else s.name for s in b.services)
        return Answer(f"We offer {listed}.", "services", 1.0, ground)
    if _FACTS["services"].search(text) and named:  # "do you offer prenatal massage?"
        svc = b.service(named[0])
        said = f"Yes, we offer {svc.name}{f' ({svc.price})' if svc and svc.price else ''}." if svc else ""
        extra = _faq_sharing(b, question)
        return Answer(f"{said} {b.faq[extra].a}".strip() if extra is not None else said,
                      f"services+faq:{extra}" if extra is not None else "services", 1.0, ground)
    if _FACTS["providers"].search(text) and b.providers:
        return Answer(f"Our team: {', '.join(b.providers)}.", "providers", 1.0, ground)
    if _FACTS["contact"].search(text):
        return Answer(f"{b.support}.", "contact", 1.0, ground)
    if _FACTS["location"].search(text):
        for i, item in enumerate(b.faq):
            if re.search(r"\b(where|locat|address|find)", item.q.lower()):
                return Answer(item.a, f"faq:{i}", 1.0, ground)
    if faq is not None and faq[1] >= 0.35:  # weaker FAQ match, but the question is about us
        i, score = faq
        return Answer(b.faq[i].a, f"faq:{i}", round(score, 3), ground)
    shared = v.answer_overlap(question)
    if shared and max(shared) >= 2:  # the answer itself says what was asked, in its own words
        i = max(range(len(shared)), key=lambda k: shared[k])
        return Answer(b.faq[i].a, f"faq:{i}", 0.5, ground)
    return None
