"""Which conversations are at risk, and why: pure functions over a conversation's messages and its
turns' trace steps, so the inbox can flag them and sort them up.

Signals, each with its reason in words: the bot asked the same question twice; the bot had to ask
for clarification twice (a loop); the customer sounds upset (``risk_words.yaml``, shouting, "!!!");
a reply failed or is still being retried; the customer texted twice with no answer in between, or a
person holds the conversation and the customer has waited past the idle-claim limit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from textdesk.clock import as_aware

__all__ = ["RISK_LABELS", "MessageFacts", "risk_reasons", "sounds_upset"]

WORDS_FILE = Path(__file__).with_name("risk_words.yaml")
RISK_LABELS = {
    "failed_send": "A reply did not reach them",
    "repeated_question": "The bot asked the same question twice",
    "clarify_loop": "The bot kept not understanding",
    "upset": "The customer sounds upset",
    "texting_again": "Texted again with no answer",
    "idle_claim": "Held, but nobody has answered",
}
_LOOKBACK = 12  # the newest messages the signals look at: old trouble that was sorted out is not risk


class _Words(BaseModel):
    negative: list[str] = Field(min_length=1)


@cache
def _negative() -> re.Pattern[str]:
    """The word list, validated once (a broken file fails the first request, loudly)."""
    words = _Words.model_validate(yaml.safe_load(WORDS_FILE.read_text(encoding="utf-8")))
    alts = "|".join(re.escape(w.strip().lower()).replace(r"\ ", r"\s+") for w in words.negative if w.strip())
    return re.compile(rf"\b(?:{alts})\b", re.IGNORECASE)


def sounds_upset(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    shouting = len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7
    return shouting or "!!" in text or "??" in text or bool(_negative().search(text))


@dataclass(frozen=True)
class MessageFacts:
    direction: str  # in | out
    author: str
    body: str
    status: str
    created_at: dt.datetime



def _question(body: str) -> str | None:
    asked = re.findall(r"[^.!?\n]*\?", body)
    return " ".join(asked[-1].lower().split()) if asked else None


def risk_reasons(
    messages: Sequence[MessageFacts],
    steps: Sequence[Sequence[dict[str, Any]]],
    *,
    status: str,
    now: dt.datetime,
    idle_after: dt.timedelta | None,
) -> list[str]:
    """The conversation's risk reasons (keys of ``RISK_LABELS``), most urgent first; [] when fine.
    ``messages`` oldest first; ``steps`` each turn's trace steps, oldest first."""
    if status == "resolved":
        return []
    recent = list(messages)[-_LOOKBACK:]
    reasons: list[str] = []
    outbound = [m for m in recent if m.direction == "out"]
    if outbound and outbound[-1].status in ("failed", "undelivered", "retrying"):
        reasons.append("failed_send")
    trailing_in = 0
    for m in reversed(recent):
        if m.direction != "in":
            break
        trailing_in += 1
    last = recent[-1] if recent else None
    if (
        status == "with_person"
        and idle_after is not None
        and last is not None
        and last.direction == "in"
        and now - as_aware(last.created_at) >= idle_after
    ):
        reasons.append("idle_claim")
    elif trailing_in >= 2:
        reasons.append("texting_again")
    if any(sounds_upset(m.body) for m in recent if m.direction == "in"):
        reasons.append("upset")
    # The question itself, without the "Sorry, I didn't catch that." around it.
    questions = [q for m in outbound if m.author == "bot" and (q := _question(m.body))]
    if len(questions) != len(set(questions)):
        reasons.append("repeated_question")
    clarified = sum(
        1
        for turn in list(steps)[-_LOOKBACK:]
        for s in turn
        if s.get("step") == "policy" and s.get("outcome") == "clarify"
    )
    if clarified >= 2:
        reasons.append("clarify_loop")
    return reasons
