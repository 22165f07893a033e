"""The understanding contract: what a provider returns for one inbound turn.

Providers (offline, openai, replay) only *propose*: an intent, normalized slots, dialogue acts
and a confidence. Policy code decides what happens; tools act for the bound contact only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.replies import when_text

__all__ = [
    "ESCALATION_REASONS",
    "INTENTS",
    "BookingView",
    "Exchange",
    "Intent",
    "ProposedCall",
    "Slots",
    "Understanding",
]

Intent = Literal[
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
    "check_appointment",
    "ask_question",
    "update_contact",
    "request_human",
    "billing",
    "complaint",
    "greeting",
    "out_of_scope",
]
INTENTS: tuple[str, ...] = Intent.__args__  # type: ignore[attr-defined]

EscalationReason = Literal[
    "requested", "low_confidence", "billing", "complaint", "sensitive", "repeated_failure", "other"
]
ESCALATION_REASONS: tuple[str, ...] = EscalationReason.__args__  # type: ignore[attr-defined]


class Slots(BaseModel):
    """Normalized slot values (docs/architecture.md section 2). ``None`` means not mentioned."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = None
    date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    time: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    provider: str | None = None
    name: str | None = Field(default=None, max_length=120)
    email: str | None = Field(default=None, max_length=254)

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class BookingView(BaseModel):
    """One of the sender's own active bookings, business-local, as understanding and policy see it."""

    model_config = ConfigDict(frozen=True)

    id: str
    service: str
    provider: str | None
    date: str  # YYYY-MM-DD
    time: str  # HH:MM

    def line(self) -> str:
        who = f" with {self.provider}" if self.provider else ""
        return f"{self.service}{who} on {when_text(self.date, self.time)}"


class ProposedCall(BaseModel):
    """A tool call a model proposed, after schema validation. Policy decides whether it runs."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Exchange(BaseModel):
    """One request/response with a model, redacted, for the trace."""

    prompt_version: str
    model: str
    request: list[dict[str, Any]]
    response: dict[str, Any] | None = None
    tool_calls_raw: list[dict[str, Any]] = Field(default_factory=list)
    validation: list[str] = Field(default_factory=list)  # errors found, repairs made
    tokens_in: int = 0
    tokens_out: int = 0
    ms: float = 0.0
    error: str | None = None
    # time.perf_counter() when it was sent; the pipeline stores it as ``at_ms`` in the turn, and a
    # process-local clock reading means nothing elsewhere, so it is never serialized.
    started_s: float | None = Field(default=None, exclude=True)


class Understanding(BaseModel):
    """One turn's understanding: what the customer wants, as far as the provider can tell."""

    intent: Intent | None = None
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    slots: Slots = Field(default_factory=Slots)
    # Dialogue acts that answer the bot's pending question.
    affirm: bool | None = None  # yes / no to a confirmation
    choice: int | None = Field(default=None, ge=1, le=20)  # "2" picks the second offer
    part_of_day: str | None = None  # "afternoon" when no exact time was given
    after: str | None = None  # "after 5" -> "17:00"
    before: str | None = None
    target_date: str | None = None  # a date naming an existing booking ("move my thursday one")
    refs: list[str] = Field(default_factory=list)  # ids of the sender's bookings the text refers to
    span_first: str | None = None  # a range of days the customer is open to ("next week")
    span_last: str | None = None
    prefer: str | None = None  # earliest | latest
    later: str | None = None  # "later" | "earlier": move a booking without a new time
    evidence: dict[str, str] = Field(default_factory=dict)  # what decided the intent, for the trace
    same_day: bool = False  # "same day, later": keep the booking's date
    topic: str | None = None  # an escalate topic the message touched (billing, medical...)
    abandon: bool = False  # "never mind", "forget it"
    proposed: list[ProposedCall] = Field(default_factory=list)
    # Bookkeeping for the trace and evals.
    provider: str = "offline"
    prompt_version: str | None = None
    model: str | None = None
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    exchanges: list[Exchange] = Field(default_factory=list)
    error: str | None = None  # provider failure that policy must turn into a safe reply
    fallback: str | None = None  # what was done instead ("offline", ...)
