"""Deterministic slot and dialogue-act extraction against the business file.

Used by the offline provider, and to normalize whatever a model returns (a model saying
"Haircut " or "kimberly" is mapped to the business's canonical names here, in code).
"""

from __future__ import annotations

import itertools
import re

from rapidfuzz import fuzz, process

from textdesk.business import Business

__all__ = [
    "detect_abandon",
    "detect_affirm",
    "detect_choice",
    "detect_topic",
    "extract_email",
    "extract_name",
    "match_provider",
    "match_service",
]

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
    r"(?:my name is|my name's|name is|name's|this is|it'?s|its|i am|i'm|im|put it under|under the name|"
    r"call me|change my name to|name to)\s+([A-Za-z][A-Za-z'-]{1,30}(?:\s+[A-Za-z][A-Za-z'-]{1,30})?)",
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

_TOPICS: dict[str, tuple[str, ...]] = {
    "refund": ("refund", "money back", "reimburse"),
    "billing": (
        "charged",
        "charge me",
        "overcharg",
        "double charg",
        "billing",
        "bill ",
        "invoice",
        "receipt",
        "my card",
        "payment",
        "deposit back",
        "dispute",
        "charged twice",
    ),
    "complaint": (
        "complain",
        "complaint",
        "rude",
        "terrible",
        "horrible",
        "worst",
        "ruined",
        "awful",
        "disgusting",
        "unprofessional",
        "not happy",
        "unhappy",
        "botched",
        "disappointed",
        "waited",
        "apologiz",
        "apologis",
        "never again",
        "nobody",
        "no one",
        "ignored",
        "uneven",
        "wrong color",
    ),
    "medical": (
        "allergic",
        "allergy",
        "reaction",
        "rash",
        "burn",
        "bleeding",
        "infection",
        "infected",
        "swollen",
        "swelling",
        "pregnan",
        "medication",
        "medical",
        "doctor",
        "hospital",
        "scalp is",
        "chemo",
        "cancer",
        "psoriasis",
        "eczema",
        "dermatitis",
        "flare",
        "lice",
        "stitches",
        "surgery",
        "blister",
        "hives",
        "breathing",
    ),
    "legal": ("lawyer", "attorney", "sue ", "suing", "lawsuit", "legal", "court", "small claims"),
}


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def match_service(business: Business, text: str) -> str | None:
    """The canonical service a message mentions, tolerating typos ("hiarcut", "colour")."""
    vocab = business.service_vocabulary()
    toks = tokens(text)
    grams = (
        toks
        + [a + b for a, b in itertools.pairwise(toks)]
        + [f"{a} {b}" for a, b in itertools.pairwise(toks)]
    )
    for g in grams:
        for cand in (g, g.rstrip("s"), g[:-2] if g.endswith("es") else g):
            if cand in vocab:
                return vocab[cand]
    long_aliases = [a for a in vocab if len(a) >= 4]
    for g in grams:
        if len(g) < 4:
            continue
        hit = process.extractOne(g, long_aliases, scorer=fuzz.ratio, score_cutoff=84 if len(g) >= 5 else 80)
        if hit is not None:
            return vocab[hit[0]]
    return None


def match_provider(business: Business, text: str) -> str | None:
    toks = tokens(text)
    for p in business.providers:
        low = p.lower()
        for t in toks:
            if t == low or (len(low) >= 4 and len(t) >= 4 and fuzz.ratio(t, low) >= 75):
                return p
    return None


def detect_affirm(text: str) -> bool | None:
    """True for a bare confirmation, False for a refusal, None for anything else."""
    t = text.strip().lower()
    if _NO_START.match(t):
        return False
    toks = [x for x in _EMOJI_TOKEN.findall(t) if x not in {",", ".", "!", "?"}]
    if (
        0 < len(toks) <= 8
        and any(x in _YES_CORE for x in toks)
        and all(x in _YES_CORE or x in _YES_FILLER for x in toks)
    ):
        return True
    return None


def detect_choice(text: str) -> int | None:
    m = _CHOICE.match(text.strip().lower())
    if not m:
        return None
    if m.group(1):
        return int(m.group(1))
    return _ORDINALS.get(m.group(2))


def detect_abandon(text: str) -> bool:
    return bool(_ABANDON.match(text.strip().lower()))


def detect_topic(text: str, topics: list[str]) -> str | None:
    low = f" {text.lower()} "
    for topic in ("legal", "medical", "refund", "billing", "complaint"):
        if topic in topics and any(k in low for k in _TOPICS[topic]):
            return topic
    for topic in topics:  # business-defined topics without a keyword table: the word itself
        if topic not in _TOPICS and re.search(rf"\b{re.escape(topic.lower())}\b", low):
            return topic
    return None


def extract_email(text: str) -> str | None:
    m = _EMAIL.search(text)
    return m.group(0).lower() if m else None


def extract_name(text: str) -> str | None:
    for m in _NAME.finditer(text):
        words = [w for w in m.group(1).split() if w.lower() not in _NOT_NAMES]
        if not words or m.group(1).split()[0].lower() in _NOT_NAMES:
            continue
        if words[-1].lower() in {"btw", "here", "thanks", "please", "pls"}:
            words = words[:-1]
        if words:
            return " ".join(w.capitalize() for w in words)
    return None
