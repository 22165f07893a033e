"""Hard keyword rules (docs/architecture.md section 1): opt-out, opt-in, HELP, HUMAN. No model involved.

A single-word message matches a keyword in any case, ignoring surrounding whitespace and
punctuation. Natural-language opt-outs are matched by families of phrasing (stop sending,
don't text me, no more texts, take me off the list, unsubscribe, leave me alone), each needing
its object ("me", "texts", "the list"), and by the keyword said as a clause of its own at the end
or start of a message ("no more of these for me, stop"). So "can I stop by at 3", "can't stop
thinking about it" and "cancel my appointment" never opt anyone out.
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

# Natural-language opt-outs, by the ways people say it. Each needs its object (texts, messages,
# me, my number, the list...), so "can I stop by at 3" and "cancel my appointment" never match.
_MSGS = (r"(?:texts?|texting|messag(?:e|es|ing)|msgs?|sms|reminders?|notifications?|alerts?|"
         r"contact(?:ing)?|spam(?:ming)?|these|this)")
_ME = r"(?:me|us|this number|my (?:number|phone|cell))"
_NL_OPT_OUT: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(p))
    for name, p in (
        # stop / quit / cease doing it
        ("stop_sending", rf"\b(?:stop|quit|cease|end|halt|pause) (?:all |these |the |your |ur |those |any )?"
                         rf"(?:sending (?:me |us )?(?:all |these |the |your |any )?)?{_MSGS}\b"),
        ("stop_texting", rf"\b(?:stop|quit|cease) (?:texting|messaging|contacting|spamming|bothering|"
                         rf"calling|pinging|sending) {_ME}\b"),
        # don't want it any more
        ("dont_text", rf"\b(?:do not|don'?t|dont|never|pls don'?t|please don'?t) (?:ever )?"
                      rf"(?:text|message|contact|sms|spam|send) {_ME}\b"
                      r"(?! (?:before|after|until|till|at|on|between|so early|this early|that early))"),
        ("no_more", rf"\bno (?:more|further) {_MSGS}\b"),
        ("dont_want", rf"\bi (?:don'?t|dont|do not) (?:want|need|wish to (?:get|receive)) "
                      rf"(?:any more |anymore |"
                      rf"these |your |ur |the |any )?{_MSGS}\b"),
        ("dont_want_any", r"\bi (?:don'?t|dont|do not) want (?:to (?:get|receive|hear from) )"
                          r"(?:you|u|these|your (?:texts|messages))"),
        # take me off the list
        ("remove_me", r"\b(?:remove|take|delete|drop|erase|unsubscribe|unenroll|un-?enroll) "
                      r"(?:me|us|this number|my (?:number|phone|cell|contact|info))\b.{0,30}"
                      r"\b(?:list|lists|texts?|messages?|contacts?|database|system|group)\b"),
        ("remove_off", r"\b(?:remove|take|delete|drop) (?:me|us|this number|my number) (?:off|out)\b"),
        ("want_off", r"\b(?:i want|i'?d like|put me|get me|i need to be) (?:off|out of) "
                     r"(?:your|the|this|ur) (?:list|texts|messages|system)\b"),
        ("unsubscribe", r"\bunsubscrib(?:e|ing)\b|\bun-?subscribe\b"),
        ("opt_out", r"\bopt(?:ing)? (?:me |us )?out\b|\bopt-?out\b"),
        ("leave_alone", r"\blose my number\b|\bleave me alone\b|\bforget my number\b"),
    )
]
# The keyword said as its own clause: "no more of these texts for me, stop", "STOP. i mean it".
_KEYWORD = r"(?:stop|stopall|unsubscribe|optout|revoke)"
_POLITE = r"(?:please|pls|plz|now|already|thanks|thx|ty|it|asap|immediately|right now|for real)"
_TRAILING = re.compile(rf"(?:^|[.,;:!?\-–—)]\s*|\s(?:so|just|now|please|pls|i said)\s+)"
                       rf"(?:please |pls |plz |just |i said |now |so )?{_KEYWORD}"
                       rf"(?:\s+{_POLITE})*\s*[.!]*\s*$")
_LEADING = re.compile(rf"^(?:please |pls |just )?{_KEYWORD}(?:\s+{_POLITE})*\s*[.,;:!]+\s*(?P<rest>.*)$")
_MESSAGING = re.compile(rf"\b{_MSGS}\b|\b(?:bother|spam|annoying|harass)")


def _nl_opt_out(lowered: str) -> tuple[str, str] | None:
    for name, pattern in _NL_OPT_OUT:
        m = pattern.search(lowered)
        if m:
            return name, m.group(0)
    if _TRAILING.search(lowered):
        return "trailing_keyword", lowered[-40:]
    lead = _LEADING.match(lowered)
    if lead and (not lead.group("rest") or _MESSAGING.search(lead.group("rest"))
                 or len(lead.group("rest").split()) <= 4):
        return "leading_keyword", lowered[:40]
    return None


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
    hit = _nl_opt_out(lowered)
    if hit is not None:
        return RuleHit("opt_out", "natural_language", hit[1])
    return None
