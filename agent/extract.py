"""Deterministic slot and dialogue-act extraction against the business file.

Used by the offline provider, and to normalize whatever a model returns (a model saying
"Haircut " or "kimberly" is mapped to the business's canonical names here, in code).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path

import yaml

from agent.state import Offer
from agent.timeparse import parse_when
from textdesk.business import Business
from textdesk.vocab import STOP, vocabulary

__all__ = [
    "detect_abandon",
    "detect_affirm",
    "detect_choice",
    "detect_topic",
    "extract_email",
    "extract_name",
    "known_topics",
    "match_provider",
    "match_service",
    "pick_offer",
]

_TOPICS_FILE = Path(__file__).parent / "nlu" / "topics.yaml"

_WORD = re.compile(r"[a-z0-9']+")
# A confirmation is a short message made only of yes-words and filler ("ok yes book it",
# "yess 👍", "sure thing thanks"); it needs at least one core yes-word.
_YES_CORE = frozenset(
    [
        "y",
        "ya",
        "yah",
        "yes",
        "yess",
        "yesss",
        "yeah",
        "yeahh",
        "yea",
        "yep",
        "yepp",
        "yup",
        "ye",
        "yas",
        "sure",
        "ok",
        "okay",
        "okey",
        "k",
        "kk",
        "confirm",
        "confirmed",
        "correct",
        "right",
        "perfect",
        "great",
        "good",
        "absolutely",
        "definitely",
        "alright",
        "aight",
        "works",
        "fine",
        "👍",
        "✅",
        "👌",
        "🙏",
        "💯",
    ]
)
_YES_FILLER = frozenset(
    [
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "book",
        "it",
        "do",
        "that",
        "go",
        "ahead",
        "sounds",
        "sound",
        "lets",
        "let's",
        "let",
        "us",
        "and",
        "for",
        "me",
        "thing",
        "of",
        "course",
        "cool",
        "awesome",
        "lol",
        "haha",
        "that's",
        "thats",
        "is",
        "that'll",
        "would",
        "be",
        "all",
        "set",
        "🙏",
        "😊",
        "🙂",
        "😀",
        "❤️",
        "!",
        ".",
    ]
)
_NO_START = re.compile(r"^(?:no+|nope|nah|not really|negative|wrong|that's wrong|thats wrong|not that)\b")
_EMOJI_TOKEN = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
_ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "one": 1,
    "two": 2,
    "three": 3,
}
_CHOICE = re.compile(
    r"^(?:#|no\.?\s*|num(?:ber)?\s*|option\s*|opt\s*|choice\s*)?(\d{1,2})[).!]?(?:\s*(?:please|pls|plz|thanks))?$"
    r"|^(?:the\s+)?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th|one|two|three)(?:\s+one)?"
    r"(?:\s*(?:please|pls|plz|thanks))?$"
)
_ABANDON = re.compile(
    r"^(?:(?:oh|ok|okay|actually|wait|hmm+|um+|no|sorry|jk|lol)[\s,.!]+)*"
    r"(?:never ?mind|nvm|forget (?:it|about it|that|the whole thing)|cancel that|scratch that|"
    r"don'?t worry(?: about it)?|no worries|not anymore|leave it|keep (?:it|the old one|my (?:old )?\w+)"
    r"(?: as is| the same)?|i'?ll keep it|i changed my mind)\b"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_NAME = re.compile(
    r"\b(?:my name is|my name's|my names|name is|name's|call me|change my name to|name to|"
    r"put it under|put me down as|put me down under|book it under|under the name|it'?s under)\s+"
    r"([A-Za-z][A-Za-z'-]{1,30}(?:\s+[A-Za-z][A-Za-z'-]{1,30})?)"
    r"|(?:^|[,.;!]\s*|\b(?:and|oh|also|btw|but)\s+)(?:hi+|hey+|hello|hiya)?[\s,!.]*"
    r"(?:this is|it'?s|its|i'?m|im|i am)\s+"
    r"([A-Za-z][A-Za-z'-]{1,30})(?=\s*(?:[,.!]|here\b|$|from\b|and\b|btw\b|by the way\b|not\b|again\b))",
    re.I,
)
_NOT_NAMES = frozenset(
    [
        "a",
        "an",
        "the",
        "here",
        "there",
        "me",
        "my",
        "late",
        "running",
        "going",
        "good",
        "fine",
        "ok",
        "okay",
        "free",
        "busy",
        "available",
        "not",
        "sorry",
        "just",
        "gonna",
        "wondering",
        "looking",
        "trying",
        "calling",
        "texting",
        "on",
        "in",
        "at",
        "about",
        "for",
        "still",
        "back",
        "done",
        "ready",
    ]
)

def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def match_service(business: Business, text: str) -> str | None:
    """The canonical service a message names: a name or alias (typos tolerated), or a word only
    one service has ("sports massage" -> massage, "cracked screen" -> screen repair)."""
    return vocabulary(business).service(text)


def match_provider(business: Business, text: str) -> str | None:
    m = vocabulary(business).provider(text)
    return m.value if m else None


_YES_LEAD = re.compile(
    r"^(?:(?:oh|ah|um+|hmm+|well|great|perfect|awesome|cool|nice)[\s,.!]+)?"
    r"(?:y+e+s+|ye+a+h*|yea|yep+|yup|ya+|yas+|sure|ok(?:ay)?|okey|k+|alright|aight|absolutely|definitely|"
    r"correct|confirm(?:ed)?|perfect|great|sounds (?:good|great|perfect)|that works|works for me|"
    r"that(?:'s| is|s) (?:the one|right|correct|fine|perfect|great)|do it|go ahead|book it|please do|"
    r"let'?s do it|lets do (?:it|that)|deal|bet|for sure|100)\b")
# After a yes, these words mean the customer is changing or doubting something.
_YES_BUT = re.compile(
    r"\b(?:but|actually|instead|change|different|not|don'?t|dont|wait|cancel|rather|no|nope|hold on|"
    r"except|unless|only if|question)\b")


def detect_affirm(text: str) -> bool | None:
    """True for a confirmation (also with extra words: "yes thats the one", "yep sounds good
    thanks"), False for a refusal, None for anything else."""
    t = text.strip().lower().replace("’", "'")
    if _NO_START.match(t):
        return False
    toks = [x for x in _EMOJI_TOKEN.findall(t) if x not in {",", ".", "!", "?"}]
    if (
        0 < len(toks) <= 8
        and any(x in _YES_CORE for x in toks)
        and all(x in _YES_CORE or x in _YES_FILLER for x in toks)
    ):
        return True
    m = _YES_LEAD.match(t)
    if m and len(toks) <= 14 and not _YES_BUT.search(t[m.end():]) and "?" not in t:
        return True
    return None


_CHOICE_LEAD = re.compile(
    r"^(?:ok(?:ay)?|k|yes|yeah|yep|sure|um+|hmm+|lets do|let's do|i'?ll take|i'?ll do|go with|gimme)[\s,.!]+")


def detect_choice(text: str) -> int | None:
    """A number or position picked from a numbered list: "2", "ok 2", "#2", "the first one"."""
    m = _CHOICE.match(_CHOICE_LEAD.sub("", text.strip().lower()))
    if not m:
        return None
    if m.group(1):
        return int(m.group(1))
    return _ORDINALS.get(m.group(2))


_PICK_EARLIEST = re.compile(
    r"\b(?:earliest|soonest|first (?:one|available|slot|time)|whatever(?:'s| is|s) first|the first)\b")
_PICK_LATEST = re.compile(r"\b(?:latest|last (?:one|slot|time)|the last)\b")
_BARE_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\b")


def pick_offer(text: str, offers: list[Offer], today: dt.date) -> int | None:
    """Which offered time (1-based) the customer took: a number or position, "earliest", a time
    that one offer has ("the 10:30", "3 works"), its day ("the thursday one"), or, when only one
    time was offered, a plain yes ("yep that works")."""
    if not offers:
        return None
    n = detect_choice(text)
    if n is not None:
        return n if 1 <= n <= len(offers) else None
    low = text.lower()
    order = sorted(range(len(offers)), key=lambda i: (offers[i].date, offers[i].time))
    if _PICK_EARLIEST.search(low):
        return order[0] + 1
    if _PICK_LATEST.search(low):
        return order[-1] + 1
    when = parse_when(text, dt.datetime.combine(today, dt.time(12)))
    hits = list(range(len(offers)))
    if when.time is not None:
        hits = [i for i in hits if offers[i].time == when.time.strftime("%H:%M")]
    elif bare := _BARE_TIME.search(low):
        h, mm = int(bare.group(1)), int(bare.group(2) or 0)
        hits = [i for i in hits if int(offers[i].time[:2]) % 12 == h % 12 and int(offers[i].time[3:]) == mm]
    if when.date is not None:
        hits = [i for i in hits if offers[i].date == when.date.isoformat()]
    if len(hits) == 1 and (when.time is not None or when.date is not None or _BARE_TIME.search(low)):
        return hits[0] + 1
    if len(offers) == 1 and detect_affirm(text):
        return 1
    return None


def detect_abandon(text: str) -> bool:
    return bool(_ABANDON.match(text.strip().lower()))


@functools.cache
def _lexicon() -> dict[str, tuple[str, ...]]:
    raw = yaml.safe_load(_TOPICS_FILE.read_text(encoding="utf-8")) or {}
    return {str(k).lower(): tuple(str(w).lower() for w in v) for k, v in raw.items()}


def known_topics() -> frozenset[str]:
    """Topics the lexicon knows how people talk about."""
    return frozenset(_lexicon())


_TOPIC_TOKEN = re.compile(r"[a-z0-9'$]+")
_GENERIC_TOPIC_WORDS = frozenset({"pet", "dog", "cat", "client", "customer", "issue", "problem", "claim"})
_ORDER = ("emergency", "legal", "medical", "injury", "refund", "billing", "complaint")


def _topic_words(topic: str) -> tuple[str, ...]:
    """How people talk about a business's escalation topic: the lexicon entry for the topic, or
    for its distinctive words ("pet injury" -> injury), plus the topic's own words."""
    lex = _lexicon()
    name = topic.lower()
    if name in lex:
        return (*lex[name], f" {name}")
    found: list[str] = [f" {name}"]
    for w in name.split():
        if w in _GENERIC_TOPIC_WORDS:
            continue
        found += [*lex.get(w, ()), f" {w}"]
    return tuple(found)


def detect_topic(text: str, topics: list[str]) -> str | None:
    """The first of the business's escalation topics the message is on, if any."""
    low = " " + " ".join(_TOPIC_TOKEN.findall(text.lower().replace("’", "'"))) + " "
    ranked = sorted(topics, key=lambda t: _ORDER.index(t) if t in _ORDER else len(_ORDER))
    for topic in ranked:
        if any(k in low for k in _topic_words(topic)):
            return topic
    return None


def extract_email(text: str) -> str | None:
    m = _EMAIL.search(text)
    return m.group(0).lower() if m else None


def extract_name(text: str, business: Business | None = None) -> str | None:
    """The customer's own name, only when the text clearly gives one ("my name is Priya",
    "hi, this is Sam here"); common words, times and the business's own words are never names."""
    v = vocabulary(business) if business is not None else None
    for m in _NAME.finditer(text):
        parts = (m.group(1) or m.group(2) or "").split()
        if not parts or parts[0].lower() in _NOT_NAMES or parts[0].lower() in STOP:
            continue
        kept = [w for w in parts if w.lower() not in _NOT_NAMES and w.lower() not in STOP
                and parse_when(w, _EPOCH).date is None]
        if kept and len(kept) < len(parts):  # "Priya tomorrow": the name, not the rest
            kept = kept[:1]
        if v is not None:
            kept = [w for w in kept if not v.knows(w) or w.lower() in v.first_names]
        if kept:
            return " ".join(w.capitalize() for w in kept)
    return None


_EPOCH = dt.datetime(2026, 1, 1)
