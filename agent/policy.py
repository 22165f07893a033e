"""Deterministic conversation policy: the model proposes, this code decides.

Order, as in Rasa's command processor: clean (merge the understanding into the dialogue
state), check invariants (escalation topics, confidence), then act. Invariants kept here, not
in prompt wording: one question per reply, explicit confirmation before any state-changing
tool except ``escalate``, low confidence asks once and escalates the second time. The task
flows themselves (book, reschedule, cancel, update contact) live in agent/flows.py.
"""

from __future__ import annotations

import datetime as dt

from agent import flows
from agent.decision import Decision, PolicyContext, ask, escalate, resume
from agent.replies import R, when_text
from agent.state import DialogueState
from agent.types import ESCALATION_REASONS, BookingView, Understanding
from tools.faq import answer

__all__ = ["BookingView", "Decision", "PolicyContext", "decide"]

_TOPIC_REASON = {"billing": "billing", "refund": "billing", "complaint": "complaint"}
_TASKS = {"book_appointment", "reschedule_appointment", "cancel_appointment", "update_contact"}


async def decide(u: Understanding, st: DialogueState, ctx: PolicyContext) -> Decision:
    """One turn of policy. Mutates ``st``; tools run through ``ctx.run_tool``."""
    b = ctx.business
    if u.error is not None:
        return await escalate(ctx, st, "other", u.intent, "provider_error", R.outage())

    proposed_escalation = _absorb_proposals(u, st, ctx)
    if proposed_escalation is not None:
        return await escalate(ctx, st, proposed_escalation, u.intent, f"model.{proposed_escalation}")
    if u.topic is not None and u.topic in b.escalate_topics:
        reason = _TOPIC_REASON.get(u.topic, "sensitive")
        return await escalate(ctx, st, reason, u.intent, f"topic.{u.topic}")
    if u.intent in ("billing", "complaint"):
        return await escalate(ctx, st, u.intent, u.intent, u.intent)
    if u.intent == "request_human" and u.confidence >= ctx.clarify_threshold:
        return await escalate(ctx, st, "requested", "request_human", "requested", R.human())

    if st.pending == "reminder" and st.booking_id:
        reminded = await _reminder_reply(ctx, st, u)
        if reminded is not None:
            return reminded

    if u.abandon and st.task:
        task = st.task
        st.clear_task()
        keeps = task in ("cancel_appointment", "reschedule_appointment", "update_contact")
        return Decision(R.kept() if keeps else R.dropped(), task, "policy.abandon")

    answers_pending = _answers_pending(u, st)
    switching = (
        u.intent is not None
        and u.intent != st.task
        and u.confidence >= ctx.clarify_threshold
        and not (answers_pending and u.intent not in _TASKS)
    )
    if switching and u.intent in _TASKS:
        st.clear_task()
        st.task = u.intent
    if not switching and not answers_pending and st.task is None and u.confidence < ctx.clarify_threshold:
        return await _low_confidence(ctx, st, u)
    if not switching and not answers_pending and st.task and u.intent is None and not u.slots.given():
        return await _low_confidence(ctx, st, u)
    st.low_conf = 0

    intent = u.intent if switching or st.task is None else st.task
    if intent == "ask_question":
        return _answer(ctx, st, u)
    if intent == "check_appointment":
        return _check(ctx, st, u)
    if intent == "greeting":
        said = R.thanks() if _is_thanks(ctx.text) else R.greeting(b)
        return resume(st, said, "greeting", "policy.greeting")
    if intent == "out_of_scope":
        return resume(st, R.out_of_scope(b), "out_of_scope", "policy.out_of_scope")
    if intent == "request_human":  # low-confidence request for a person: a person anyway
        return await escalate(ctx, st, "requested", "request_human", "requested", R.human())

    st.task = intent
    if intent == "book_appointment":
        return await flows.book(ctx, st, u)
    if intent == "reschedule_appointment":
        return await flows.reschedule(ctx, st, u)
    if intent == "cancel_appointment":
        return await flows.cancel(ctx, st, u)
    if intent == "update_contact":
        return await flows.update_contact(ctx, st, u)
    return await _low_confidence(ctx, st, u)


def _absorb_proposals(u: Understanding, st: DialogueState, ctx: PolicyContext) -> str | None:
    """A model's proposed tool calls are read as intent and slots, never executed as such: the
    same confirmation rules apply as for any other turn. Booking ids must be the sender's own
    (the provider already dropped others; checked again here). Returns an escalation reason
    when the model proposed a hand-off, which needs no confirmation."""
    own = {bk.id for bk in ctx.bookings}
    if st.pending == "confirm" and u.affirm is not None:
        return None  # a yes/no answers the confirmation; a repeated proposal must not reopen it
    for call in u.proposed:
        if call.name == "escalate":
            reason = str(call.args.get("reason", "other"))
            return reason if reason in ESCALATION_REASONS else "other"
        if call.name == "create_booking":
            for k in ("service", "date", "time", "provider"):
                if getattr(u.slots, k) is None and call.args.get(k):
                    setattr(u.slots, k, str(call.args[k]))
        elif call.name in ("reschedule_booking", "cancel_booking"):
            bid = call.args.get("booking_id")
            if bid in own and st.booking_id is None:
                st.booking_id = str(bid)
            if call.name == "reschedule_booking":
                for k in ("date", "time"):
                    if getattr(u.slots, k) is None and call.args.get(k):
                        setattr(u.slots, k, str(call.args[k]))
        elif call.name == "update_contact":
            for k in ("name", "email"):
                if getattr(u.slots, k) is None and call.args.get(k):
                    setattr(u.slots, k, str(call.args[k]))
    return None


async def _reminder_reply(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision | None:
    """ "Reply 1 to confirm, 2 to reschedule, 3 to cancel" after a reminder."""
    target = next((bk for bk in ctx.bookings if bk.id == st.booking_id), None)
    choice = u.choice or (1 if u.affirm else None)
    if target is None or choice not in (1, 2, 3):
        st.pending, st.booking_id = None, None
        return None
    if choice == 1:
        st.clear_task()
        return Decision(
            f"Thanks, see you {when_text(target.date, target.time)}!",
            "check_appointment",
            "policy.reminder.confirmed",
            confirmed_booking=target.id,
        )
    if choice == 2:
        st.task, st.pending, st.slots = "reschedule_appointment", None, {"service": target.service}
        return ask(st, "date", R.ask_new_date(target.service), "reschedule_appointment",
                   "policy.reminder.reschedule")
    st.task = "cancel_appointment"
    return ask(st, "confirm", R.confirm_cancel(target.line()), "cancel_appointment", "policy.reminder.cancel")


def _is_thanks(text: str) -> bool:
    return any(w in text.lower() for w in ("thank", "thx", "ty ", "appreciate"))


def _answers_pending(u: Understanding, st: DialogueState) -> bool:
    if st.pending is None:
        return False
    if u.intent == "ask_question" and u.evidence.get("decided_by", "").startswith("grounded"):
        return False  # a question about the business mid-flow is an aside, even if it names a service
    if st.pending in ("confirm",) and u.affirm is not None:
        return True
    if st.pending in ("time", "pick_booking") and u.choice is not None:
        return True
    return (bool(u.slots.given()) or u.part_of_day is not None or u.after is not None
            or u.span_first is not None or u.prefer is not None)


async def _low_confidence(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    st.low_conf += 1
    if st.low_conf >= 2:
        return await escalate(ctx, st, "low_confidence", u.intent, "low_confidence")
    if st.task and st.pending == "time" and st.offers and u.affirm:
        reply = R.which_offer(len(st.offers))  # "yes" to three offered times: which one?
    elif st.task and st.last_question:
        reply = f"Sorry, I didn't catch that. {st.last_question}"
    else:
        reply = R.clarify()
    return Decision(reply, st.task or u.intent, "policy.clarify", dict(st.slots))


def _answer(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    service = u.slots.service or st.slots.get("service") or st.context_service
    day = dt.date.fromisoformat(u.slots.date) if u.slots.date else None
    found = answer(ctx.business, ctx.text, services=[service] if service else None, day=day,
                   context=bool(st.task or st.context_service))
    if u.slots.service:
        st.context_service = u.slots.service  # "ok can i book that thursday" refers back to it
    if found is None:
        d = resume(st, R.unknown_question(ctx.business), "ask_question", "policy.faq.unknown")
    else:
        d = resume(st, found.text, "ask_question", "policy.faq.answer")
        d.data = {"answer": found.source, "score": found.score, "grounded_by": found.grounded_by}
    d.slots = dict(st.slots)
    return d


def _check(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    understood = {k: v for k, v in u.slots.given().items() if k in ("service", "date", "time", "provider")}
    if not ctx.bookings:
        d = resume(st, R.no_bookings(), "check_appointment", "policy.check.none")
    else:
        named = [bk for bk in ctx.bookings if bk.id in u.refs] or ctx.bookings
        d = resume(st, R.your_bookings([bk.line() for bk in named]), "check_appointment", "policy.check.list")
    d.slots = {**understood, **dict(st.slots)}
    return d
