"""What an agent needs at a glance: the collected fields, a short summary, the next step.

Pure functions over the conversation, the contact and its dialogue state (no I/O).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store.models import Contact, Conversation, Message

__all__ = ["collected_fields", "next_step", "summary"]

TASKS = {
    "book_appointment": "Booking",
    "reschedule_appointment": "Rescheduling",
    "cancel_appointment": "Cancelling",
    "check_appointment": "Checking an appointment",
    "ask_question": "Question",
    "update_contact": "Updating details",
    "request_human": "Asked for a person",
    "billing": "Billing",
    "complaint": "Complaint",
    "greeting": "Greeting",
    "out_of_scope": "Out of scope",
}
_WAITING = {  # DialogueState.pending, in words
    "confirm": "the customer to confirm",
    "time": "the customer to pick a time",
    "pick_booking": "the customer to say which booking",
    "change": "the customer to say what to change",
    "reminder": "an answer to the reminder",
}
_NEEDS = {"book_appointment": ("service", "date", "time"), "reschedule_appointment": ("date", "time")}
_REASON_STEPS = {
    "billing": "Billing question: check the payment record, then reply with what you found.",
    "complaint": "Complaint: apologise, ask what went wrong, and offer a fix or a call back.",
    "requested": "The customer asked for a person: reply personally.",
    "low_confidence": "The bot could not understand: read the last messages and answer directly.",
    "sensitive": "Sensitive topic: answer carefully, or offer a call with the owner.",
    "repeated_failure": "The bot kept failing: finish the task by hand using the collected fields.",
    "other": "Read the transcript and reply.",
}


def _state(contact: Contact) -> dict[str, Any]:
    return contact.state if isinstance(contact.state, dict) else {}


def collected_fields(contact: Contact, recorded: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Name and email from the record, then the slots the bot collected, in a fixed order.

    ``recorded`` are the newest slots a turn's trace recorded: a handoff clears the dialogue
    state, but the agent still wants to see what the customer had already said.
    """
    st = _state(contact)
    slots = st.get("slots") or recorded or {}
    out = [("Name", contact.name or ""), ("Email", contact.email or "")]
    for key in ("service", "provider", "date", "time"):
        if slots.get(key):
            out.append((key.capitalize(), str(slots[key])))
    if st.get("task"):
        out.append(("Task", TASKS.get(str(st["task"]), str(st["task"]))))
    if st.get("pending"):
        out.append(("Waiting for", _WAITING.get(str(st["pending"]), str(st["pending"]))))
    return [(k, v) for k, v in out if v]


def summary(conv: Conversation, contact: Contact, messages: Sequence[Message] = ()) -> str:
    """Where the conversation stands now, rebuilt on every render (so after every turn): the task
    and what is collected, then the customer's latest words. The summary written at escalation
    time only describes that moment, so it comes last, marked as such."""
    st = _state(contact)
    task = st.get("task")
    parts: list[str] = []
    if task:
        slots = st.get("slots") or {}
        have = ", ".join(f"{k} {v}" for k, v in slots.items() if v)
        line = TASKS.get(str(task), str(task))
        if have:
            line += f": {have}"
        if st.get("pending"):
            line += f"; waiting for {st['pending']}"
        parts.append(line + ".")
    latest = next((m for m in reversed(messages) if m.direction == "in" and m.body), None)
    if latest is not None:
        words = latest.body if len(latest.body) <= 160 else latest.body[:157] + "..."
        parts.append(f'Latest from the customer: "{words}"')
    if conv.summary:
        parts.append(f"At escalation: {conv.summary}")
    return " ".join(parts) or "No task in progress."


def next_step(conv: Conversation, contact: Contact) -> str:
    if conv.status == "resolved":
        return "Resolved: nothing to do."
    if conv.status == "bot":
        return "The bot is handling this conversation; step in only if it goes wrong."
    st = _state(contact)
    task = str(st.get("task") or "")
    missing = [s for s in _NEEDS.get(task, ()) if not (st.get("slots") or {}).get(s)]
    step = _REASON_STEPS.get(conv.escalation_reason or "other", _REASON_STEPS["other"])
    if task in _NEEDS and missing:
        step += f" The {TASKS[task].lower()} still needs: {', '.join(missing)}."
    elif task in _NEEDS:
        step += f" The {TASKS[task].lower()} has everything it needs: confirm it with the customer."
    return f"Claim it. {step}" if conv.status == "waiting" and conv.assigned_to is None else step
