"""Hard keyword rules (DESIGN.md section 1): opt-out, opt-in, HELP, HUMAN. No model involved.

A single-word message matches a keyword in any case, ignoring surrounding whitespace and
punctuation. Natural-language opt-outs ("please stop texting me") are matched by patterns
that need an object like "me", "texting" or "list", so "can I stop by at 3" and "cancel my
appointment" never opt anyone out.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = ["HELP_WORDS", "HUMAN_WORDS", "OPT_IN_WORDS", "OPT_OUT_WORDS", "RuleHit", "match_rule"]

Rule = Literal["opt_out", "opt_in", "help", "human"]

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
HUMAN_WORDS = frozenset({"HUMAN", "AGENT", "REPRESENTATIVE", "OPERATOR"})

_EDGE = re.compile(r"^[\W_]+|[\W_]+$")

_MSGS = (r"(?:text(?:s|ing)?|messag(?:e|es|ing)|sms|contact(?:ing)?|"
         r"send(?:ing)?(?: me)?(?: (?:texts|messages))?|spam(?:ming)?)")
_NL_OPT_OUT = [
    re.compile(p)
    for p in (
        rf"\bstop {_MSGS}(?: me| this number)?\b",
        r"\b(?:please |pls |plz )?stop (?:all |these |the |your )?(?:texts|messages|msgs|sms)\b",
        r"\bstop (?:texting|messaging|contacting|spamming|bothering) (?:me|us|this number)\b",
        r"\b(?:remove|take|delete|drop|unsubscribe) (?:me|my (?:number|phone|contact))\b.{0,30}"
        r"\b(?:list|texts?|messages?|contacts?|database|system)\b",
        r"\b(?:remove|take|delete) (?:me|my number) off\b",
        r"\bunsubscribe me\b",
        r"\bunsubscribe\b.{0,20}\b(?:please|pls|now)\b",
        r"\bopt (?:me )?out\b",
        r"\bi (?:want to |wanna |would like to )?(?:opt out|unsubscribe)\b",
        # "don't text me before 9" is a preference, not an opt-out.
        rf"\b(?:do not|don'?t|dont|never) (?:ever )?{_MSGS} (?:me|this number)\b"
        r"(?! (?:before|after|until|till|at|on|between))",
        r"\bno more (?:texts|messages|msgs|sms)\b",
        r"\blose my number\b",
        r"\bleave me alone\b",
    )
]


@dataclass(frozen=True)
class RuleHit:
    rule: Rule
    how: str  # "keyword" | "natural_language"
    matched: str


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _word(text: str) -> str | None:
    """The message as one bare upper-case word, or None when it is more than a word."""
    core = _EDGE.sub("", _fold(text))
    if not core or not re.fullmatch(r"[A-Za-z]+", core):
        return None
    return core.upper()


def match_rule(text: str, opted_out: bool) -> RuleHit | None:
    """The hard rule ``text`` triggers, if any. ``opted_out`` enables YES as an opt-in."""
    word = _word(text)
    if word is not None:
        if word in OPT_OUT_WORDS:
            return RuleHit("opt_out", "keyword", word)
        if word in OPT_IN_WORDS or (opted_out and word == "YES"):
            return RuleHit("opt_in", "keyword", word)
        if word in HELP_WORDS:
            return RuleHit("help", "keyword", word)
        if word in HUMAN_WORDS:
            return RuleHit("human", "keyword", word)
        return None
    lowered = re.sub(r"\s+", " ", _fold(text).lower().replace("’", "'"))
    for pattern in _NL_OPT_OUT:
        m = pattern.search(lowered)
        if m:
            return RuleHit("opt_out", "natural_language", m.group(0))
    return None
