"""Per-contact dialogue state, stored as JSON on the contact row between turns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["DialogueState", "Offer"]


class Offer(BaseModel):
    """One offered time: "1) Thu Jun 11 3:30 PM with Maya"."""

    date: str
    time: str
    provider: str | None = None


class DialogueState(BaseModel):
    """What the bot is in the middle of. Policy reads and writes it; nothing else does."""

    task: str | None = None  # the active intent
    slots: dict[str, str] = Field(default_factory=dict)
    # The one question the bot is waiting on: service | date | time | confirm | pick_booking | clarify
    pending: str | None = None
    choices: list[str] = Field(default_factory=list)  # booking ids offered to pick from
    offers: list[Offer] = Field(default_factory=list)  # times offered, numbered from 1
    # How flexible the request is, for the next offer: span_first/span_last (days), after/before,
    # part_of_day, prefer (earliest | latest).
    flex: dict[str, str] = Field(default_factory=dict)
    booking_id: str | None = None  # target of a reschedule or cancel
    assigned: str | None = None  # the free provider policy picked when none was asked for
    low_conf: int = 0  # consecutive low-confidence turns
    blocked: int = 0  # injection blocks in this conversation
    last_question: str | None = None  # for drop-off reports: the question left unanswered
    context_service: str | None = None  # the service last talked about, for "book that"

    @classmethod
    def load(cls, raw: dict[str, Any] | None) -> DialogueState:
        try:
            return cls.model_validate(raw or {})
        except ValueError:
            return cls()  # a state from an older version is dropped, not fatal

    def clear_task(self) -> None:
        self.task, self.slots, self.pending, self.choices, self.offers = None, {}, None, [], []
        self.flex = {}
        self.booking_id, self.last_question, self.assigned = None, None, None
