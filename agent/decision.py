"""What policy works with and what it returns: the turn's context, the decision, and the few
moves every flow shares (ask the one pending question, answer an aside, hand over)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent.replies import R
from agent.state import DialogueState
from agent.types import BookingView
from textdesk.business import Business
from tools.actions import ToolResult
from tools.availability import Busy

__all__ = ["Decision", "PolicyContext", "RunTool", "ask", "escalate", "resume"]

RunTool = Callable[[str, dict[str, Any]], Awaitable[ToolResult]]


@dataclass
class PolicyContext:
    business: Business
    now: dt.datetime
    bookings: list[BookingView]
    busy: list[Busy]
    run_tool: RunTool
    clarify_threshold: float = 0.55
    text: str = ""
    # Busy times read again from the store, after a tool found a slot taken by someone else.
    refresh_busy: Callable[[], Awaitable[list[Busy]]] | None = None

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.business.tz).date()


@dataclass
class Decision:
    reply: str | None
    intent: str | None
    reason: str
    slots: dict[str, str] = field(default_factory=dict)
    calls: list[ToolResult] = field(default_factory=list)
    confirmed_booking: str | None = None  # the customer confirmed attendance after a reminder
    data: dict[str, Any] = field(default_factory=dict)  # for the trace: what grounded an answer...

    @property
    def escalation(self) -> ToolResult | None:
        return next((c for c in self.calls if c.name == "escalate" and c.ok), None)


def ask(st: DialogueState, pending: str, question: str, intent: str, reason: str) -> Decision:
    """Ask the one question the bot now waits on."""
    st.pending, st.last_question = pending, question
    return Decision(question, intent, reason, dict(st.slots))


def resume(st: DialogueState, reply: str, intent: str, reason: str) -> Decision:
    """Answer an aside, then repeat the pending question so the flow is not lost."""
    if st.task and st.last_question:
        reply = f"{reply} {st.last_question}"
    return Decision(reply, intent, reason, dict(st.slots))


def _summary(ctx: PolicyContext, st: DialogueState, intent: str | None) -> str:
    bits = [f"Intent: {intent or st.task or 'unclear'}."]
    if st.slots:
        bits.append("Collected: " + ", ".join(f"{k}={v}" for k, v in st.slots.items()) + ".")
    if ctx.text:
        bits.append(f'Last message: "{ctx.text[:160]}"')
    return " ".join(bits)[:480]


async def escalate(
    ctx: PolicyContext, st: DialogueState, reason: str, intent: str | None, why: str, reply: str | None = None
) -> Decision:
    summary = _summary(ctx, st, intent)
    result = await ctx.run_tool("escalate", {"reason": reason, "summary": summary})
    task, slots = st.task, dict(st.slots)
    st.clear_task()
    st.low_conf = 0
    return Decision(reply or R.escalated(), intent or task, f"policy.escalate.{why}", slots, [result])
