"""Deterministic conversation policy: the model proposes, this code decides.

Order, as in Rasa's command processor: clean (merge the understanding into the dialogue
state), check invariants (escalation topics, confidence), then act. Invariants kept here, not
in prompt wording: one question per reply, explicit confirmation before any state-changing
tool except ``escalate``, low confidence asks once and escalates the second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent.replies import R, when_text
from agent.state import DialogueState
from agent.types import ESCALATION_REASONS, Understanding
from textdesk.business import Business
from tools.actions import ToolResult
from tools.availability import Busy, check_slot, find_slots, next_open_days
from tools.faq import answer_faq

__all__ = ["BookingView", "Decision", "PolicyContext", "decide"]

RunTool = Callable[[str, dict[str, Any]], Awaitable[ToolResult]]

_TOPIC_REASON = {"billing": "billing", "refund": "billing", "complaint": "complaint"}
_TASKS = {"book_appointment", "reschedule_appointment", "cancel_appointment", "update_contact"}


@dataclass(frozen=True)
class BookingView:
    id: str
    service: str
    provider: str | None
    date: str
    time: str

    def line(self) -> str:
        who = f" with {self.provider}" if self.provider else ""
        return f"{self.service}{who} on {when_text(self.date, self.time)}"


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


@dataclass
class Decision:
    reply: str | None
    intent: str | None
    reason: str
    slots: dict[str, str] = field(default_factory=dict)
    calls: list[ToolResult] = field(default_factory=list)
    confirmed_booking: str | None = None  # the customer confirmed attendance after a reminder

    @property
    def escalation(self) -> ToolResult | None:
        return next((c for c in self.calls if c.name == "escalate" and c.ok), None)


async def escalate(
    ctx: PolicyContext, st: DialogueState, reason: str, intent: str | None, why: str, reply: str | None = None
) -> Decision:
    summary = _summary(ctx, st, intent)
    result = await ctx.run_tool("escalate", {"reason": reason, "summary": summary})
    task, slots = st.task, dict(st.slots)
    st.clear_task()
    st.low_conf = 0
    return Decision(reply or R.escalated(), intent or task, f"policy.escalate.{why}", slots, [result])


def _summary(ctx: PolicyContext, st: DialogueState, intent: str | None) -> str:
    bits = [f"Intent: {intent or st.task or 'unclear'}."]
    if st.slots:
        bits.append("Collected: " + ", ".join(f"{k}={v}" for k, v in st.slots.items()) + ".")
    if ctx.text:
        bits.append(f'Last message: "{ctx.text[:160]}"')
    return " ".join(bits)[:480]


def _local_now(ctx: PolicyContext) -> dt.datetime:
    return ctx.now.astimezone(ctx.business.tz)


def _t(s: str | None) -> dt.time | None:
    return dt.time.fromisoformat(s) if s else None


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
        carry = st.slots if _compatible(st.task, u.intent) else {}
        st.clear_task()
        st.task, st.slots = u.intent, dict(carry)
    if not switching and not answers_pending and st.task is None and u.confidence < ctx.clarify_threshold:
        return await _low_confidence(ctx, st, u)
    if not switching and not answers_pending and st.task and u.intent is None and not u.slots.given():
        return await _low_confidence(ctx, st, u)
    st.low_conf = 0

    intent = u.intent if switching or st.task is None else st.task
    if intent == "ask_question":
        return _answer(ctx, st, u)
    if intent == "check_appointment":
        return _check(ctx, st)
    if intent == "greeting":
        return _resume(
            st, R.thanks() if _is_thanks(ctx.text) else R.greeting(b), "greeting", "policy.greeting"
        )
    if intent == "out_of_scope":
        return _resume(st, R.out_of_scope(b), "out_of_scope", "policy.out_of_scope")
    if intent == "request_human":  # low-confidence request for a person: a person anyway
        return await escalate(ctx, st, "requested", "request_human", "requested", R.human())

    st.task = intent
    if intent == "book_appointment":
        return await _book(ctx, st, u)
    if intent == "reschedule_appointment":
        return await _reschedule(ctx, st, u)
    if intent == "cancel_appointment":
        return await _cancel(ctx, st, u)
    if intent == "update_contact":
        return await _update_contact(ctx, st, u)
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
        return _ask(
            st, "date", R.ask_new_date(target.service), "reschedule_appointment", "policy.reminder.reschedule"
        )
    st.task = "cancel_appointment"
    return _ask(
        st, "confirm", R.confirm_cancel(target.line()), "cancel_appointment", "policy.reminder.cancel"
    )


def _compatible(old: str | None, new: str) -> bool:
    return old == new


def _is_thanks(text: str) -> bool:
    return any(w in text.lower() for w in ("thank", "thx", "ty ", "appreciate"))


def _answers_pending(u: Understanding, st: DialogueState) -> bool:
    if st.pending is None:
        return False
    if st.pending in ("confirm",) and u.affirm is not None:
        return True
    if st.pending in ("time", "pick_booking") and u.choice is not None:
        return True
    return bool(u.slots.given()) or u.part_of_day is not None or u.after is not None


def _resume(st: DialogueState, reply: str, intent: str, reason: str) -> Decision:
    """Answer an aside, then repeat the pending question so the flow is not lost."""
    if st.task and st.last_question:
        reply = f"{reply} {st.last_question}"
    return Decision(reply, intent, reason, dict(st.slots))


async def _low_confidence(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    st.low_conf += 1
    if st.low_conf >= 2:
        return await escalate(ctx, st, "low_confidence", u.intent, "low_confidence")
    reply = f"Sorry, I didn't catch that. {st.last_question}" if st.task and st.last_question else R.clarify()
    return Decision(reply, st.task or u.intent, "policy.clarify", dict(st.slots))


def _answer(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    service = u.slots.service or st.slots.get("service") or st.context_service
    day = dt.date.fromisoformat(u.slots.date) if u.slots.date else None
    answer = answer_faq(ctx.business, ctx.text, services=[service] if service else None, day=day)
    if u.slots.service:
        st.context_service = u.slots.service  # "ok can i book that thursday" refers back to it
    if answer is None:
        return _resume(st, R.unknown_question(ctx.business), "ask_question", "policy.faq.unknown")
    return _resume(st, answer, "ask_question", "policy.faq.answer")


def _check(ctx: PolicyContext, st: DialogueState) -> Decision:
    if not ctx.bookings:
        return _resume(st, R.no_bookings(), "check_appointment", "policy.check.none")
    return _resume(
        st, R.your_bookings([bk.line() for bk in ctx.bookings]), "check_appointment", "policy.check.list"
    )


def _ask(st: DialogueState, pending: str, question: str, intent: str, reason: str) -> Decision:
    st.pending, st.last_question = pending, question
    return Decision(question, intent, reason, dict(st.slots))


def _merge(st: DialogueState, u: Understanding, keys: tuple[str, ...]) -> None:
    for k, v in u.slots.given().items():
        if k in keys:
            st.slots[k] = v


def _pick_choice(st: DialogueState, u: Understanding) -> str | None:
    if u.choice is not None and st.choices and 1 <= u.choice <= len(st.choices):
        return st.choices[u.choice - 1]
    return None


def _picked_provider(st: DialogueState, u: Understanding) -> str | None:
    """The provider an offer named for the picked time (offers after a clash mix providers)."""
    if u.choice is not None and 1 <= u.choice <= len(st.choice_providers):
        return st.choice_providers[u.choice - 1]
    return None


async def _book(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    b = ctx.business
    intent = "book_appointment"
    if st.pending == "time":
        picked = _pick_choice(st, u)
        if picked is not None:
            st.slots["time"] = picked
            if st.choice_date:
                st.slots["date"] = st.choice_date
            who = _picked_provider(st, u)
            if who is not None and st.slots.get("provider"):
                st.slots["provider"] = who  # they asked for someone else and took this one instead
    if st.pending == "confirm" and u.affirm is True and not u.slots.given():
        return await _create(ctx, st)
    _merge(st, u, ("service", "date", "time", "provider"))
    if st.pending == "confirm" and u.affirm is False and not u.slots.given():
        return _ask(st, "change", R.what_to_change(), intent, "policy.book.change")
    if not st.slots.get("service") and st.context_service:
        st.slots["service"] = st.context_service
    service = st.slots.get("service")
    if not service or b.service(service) is None:
        st.slots.pop("service", None)
        return _ask(st, "service", R.ask_service(b), intent, "policy.book.ask_service")

    def confirm(date: str, time: str, provider: str | None) -> str:
        return R.confirm_booking(service, date, time, provider)

    return await _book_when(ctx, st, u, service, intent, confirm)


ConfirmText = Callable[[str, str, str | None], str]


async def _book_when(
    ctx: PolicyContext,
    st: DialogueState,
    u: Understanding,
    service: str,
    intent: str,
    confirm: ConfirmText,
    exclude: str | None = None,
) -> Decision:
    """Shared by booking and rescheduling: settle date and time, then ask to confirm."""
    b = ctx.business
    provider = st.slots.get("provider")
    date_s = st.slots.get("date")
    if not date_s:
        q = R.ask_date(service) if intent == "book_appointment" else R.ask_new_date(service)
        return _ask(st, "date", q, intent, "policy.ask_date")
    day = dt.date.fromisoformat(date_s)
    busy = [x for x in ctx.busy if exclude is None or x.ref != exclude]
    if day < _local_now(ctx).date():
        st.slots.pop("date", None)
        st.slots.pop("time", None)
        return _ask(st, "date", f"That date has passed. {R.ask_date(service)}", intent, "policy.date_past")
    time_s = st.slots.get("time")
    if time_s:
        check = check_slot(b, busy, service, day, dt.time.fromisoformat(time_s), ctx.now, provider)
        if check.ok:
            st.assigned = check.provider
            return _ask(
                st, "confirm", confirm(date_s, time_s, provider or check.provider), intent, "policy.confirm"
            )
        st.slots.pop("time", None)
        return _offer(
            ctx,
            st,
            u,
            service,
            day,
            provider,
            intent,
            busy,
            near=dt.time.fromisoformat(time_s),
            lead=R.taken_lead(),
        )
    return _offer(ctx, st, u, service, day, provider, intent, busy)


def _offer(
    ctx: PolicyContext,
    st: DialogueState,
    u: Understanding,
    service: str,
    day: dt.date,
    provider: str | None,
    intent: str,
    busy: list[Busy],
    near: dt.time | None = None,
    lead: str = "",
) -> Decision:
    b = ctx.business
    after, before = _t(u.after), _t(u.before)
    if u.part_of_day and not (after or before):
        after, before = {
            "morning": (None, dt.time(12)),
            "afternoon": (dt.time(12), dt.time(17)),
            "evening": (dt.time(17), None),
        }.get(u.part_of_day, (None, None))
    times = find_slots(b, busy, service, day, ctx.now, provider, after, before, near)
    if not times and (after or before):
        times = find_slots(b, busy, service, day, ctx.now, provider, near=near)
    st.choice_providers = []
    if times:
        st.choices = [t.strftime("%H:%M") for t in times]
        st.choice_date = day.isoformat()
        q = R.offer_times(service, day.isoformat(), st.choices, provider, lead)
        return _ask(st, "time", q, intent, "policy.offer_times")
    reason = "closed" if b.open_span(day) is None else "full"
    st.slots.pop("date", None)
    nxt = [
        d
        for d in next_open_days(b, day + dt.timedelta(days=1), 3)
        if find_slots(b, busy, service, d, ctx.now, provider)
    ]
    if nxt:
        d2 = nxt[0]
        times = find_slots(b, busy, service, d2, ctx.now, provider, near=near)
        st.choices = [t.strftime("%H:%M") for t in times]
        st.choice_date = d2.isoformat()
        lead2 = R.day_full(day.isoformat(), reason, lead)
        q = R.offer_times(service, d2.isoformat(), st.choices, provider, lead2)
        return _ask(st, "time", q, intent, f"policy.offer_next_day.{reason}")
    return _ask(st, "date", R.no_times(service, day.isoformat(), reason, lead), intent,
                f"policy.no_times.{reason}")


async def _create(ctx: PolicyContext, st: DialogueState) -> Decision:
    s = st.slots
    args: dict[str, Any] = {"service": s["service"], "date": s["date"], "time": s["time"]}
    if s.get("provider"):  # only when asked for: otherwise the tool takes whoever is free then
        args["provider"] = s["provider"]
    result = await ctx.run_tool("create_booking", args)
    if result.ok:
        prov = result.args.get("provider")
        reply = R.booked(s["service"], s["date"], s["time"], prov)
        if st.assigned and prov and prov != st.assigned:
            reply = R.booked_instead(s["service"], s["date"], s["time"], prov, st.assigned)
        if result.data.get("payment_url"):
            reply = R.booked_with_deposit(
                s["service"],
                s["date"],
                s["time"],
                str(result.data["deposit"]),
                str(result.data["payment_url"]),
            )
        slots = dict(s)
        slots.update({"provider": prov} if prov else {})
        st.clear_task()
        st.context_service = None
        return Decision(reply, "book_appointment", "policy.book.created", slots, [result])
    # Someone took the slot meanwhile (or it became invalid): a new offer, never a double booking.
    st.slots.pop("time", None)
    st.assigned = None
    if result.code == "taken":
        d = await _offer_after_clash(
            ctx, st, s["service"], s["date"], args["time"], s.get("provider"), "book_appointment"
        )
    else:
        d = _offer(
            ctx,
            st,
            Understanding(),
            s["service"],
            dt.date.fromisoformat(s["date"]),
            s.get("provider"),
            "book_appointment",
            ctx.busy,
            lead=R.taken_lead(),
        )
    d.calls.append(result)
    d.reason = f"policy.book.tool_failed.{result.code}"
    return d


async def _offer_after_clash(
    ctx: PolicyContext,
    st: DialogueState,
    service: str,
    date: str,
    time: str,
    provider: str | None,
    intent: str,
    exclude: str | None = None,
    other_providers: bool = True,
) -> Decision:
    """Another customer won the slot a moment ago: offer what is free now, read fresh. With a
    provider asked for, the same time with someone else is one of the options."""
    b = ctx.business
    if ctx.refresh_busy is not None:
        ctx.busy = await ctx.refresh_busy()
    busy = [x for x in ctx.busy if exclude is None or x.ref != exclude]
    day, at = dt.date.fromisoformat(date), dt.time.fromisoformat(time)
    options: list[tuple[dt.time, str | None]] = []
    if provider and other_providers:
        free = (p for p in b.providers if check_slot(b, busy, service, day, at, ctx.now, p).ok)
        other = next((p for p in free if p != provider), None)
        if other is not None:
            options.append((at, other))
    for t in find_slots(b, busy, service, day, ctx.now, provider, near=at, limit=3):
        check = check_slot(b, busy, service, day, t, ctx.now, provider)
        options.append((t, check.provider if b.providers else None))
    anchor = at.hour * 60 + at.minute
    options = sorted(options, key=lambda o: (abs(o[0].hour * 60 + o[0].minute - anchor), o[0]))[:3]
    if not options:
        return _offer(ctx, st, Understanding(), service, day, provider, intent, busy, lead=R.clash_lead(time))
    st.choices = [t.strftime("%H:%M") for t, _ in options]
    st.choice_providers = [p for _, p in options]
    st.choice_date = date
    q = R.clash_offer(time, [(t.strftime("%H:%M"), p) for t, p in options])
    return _ask(st, "time", q, intent, "policy.offer_after_clash")


def _resolve_booking(
    ctx: PolicyContext, st: DialogueState, u: Understanding, hint_date: str | None
) -> list[BookingView]:
    if st.booking_id:
        return [bk for bk in ctx.bookings if bk.id == st.booking_id]
    cands = list(ctx.bookings)
    svc = u.slots.service
    if svc and any(bk.service == svc for bk in cands):
        cands = [bk for bk in cands if bk.service == svc]
    if hint_date and any(bk.date == hint_date for bk in cands):
        cands = [bk for bk in cands if bk.date == hint_date]
    return cands


async def _pick_target(
    ctx: PolicyContext, st: DialogueState, u: Understanding, action: str, intent: str, hint_date: str | None
) -> BookingView | Decision:
    if st.pending == "pick_booking":
        picked = _pick_choice(st, u)
        if picked is not None:
            st.booking_id = picked
    cands = _resolve_booking(ctx, st, u, hint_date)
    if not cands:
        st.clear_task()
        return Decision(R.no_bookings(), intent, f"policy.{action}.no_bookings")
    if len(cands) > 1:
        st.choices, st.choice_providers = [bk.id for bk in cands[:5]], []
        return _ask(
            st,
            "pick_booking",
            R.pick_booking(action, [bk.line() for bk in cands[:5]]),
            intent,
            f"policy.{action}.pick",
        )
    st.booking_id = cands[0].id
    return cands[0]


async def _cancel(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    intent = "cancel_appointment"
    if st.pending == "confirm" and st.booking_id:
        if u.affirm is True:
            result = await ctx.run_tool("cancel_booking", {"booking_id": st.booking_id})
            line = next((bk.line() for bk in ctx.bookings if bk.id == st.booking_id), "appointment")
            st.clear_task()
            if result.ok:
                return Decision(R.cancelled(line), intent, "policy.cancel.done", {}, [result])
            return Decision(R.no_bookings(), intent, f"policy.cancel.failed.{result.code}", {}, [result])
        if u.affirm is False:
            st.clear_task()
            return Decision(R.kept(), intent, "policy.cancel.kept")
    target = await _pick_target(ctx, st, u, "cancel", intent, u.slots.date)
    if isinstance(target, Decision):
        return target
    return _ask(st, "confirm", R.confirm_cancel(target.line()), intent, "policy.cancel.confirm")


async def _reschedule(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    intent = "reschedule_appointment"
    if st.pending == "confirm" and st.booking_id and u.affirm is not None and not u.slots.given():
        if u.affirm is False:
            st.pending = "change"
            return _ask(st, "date", R.what_to_change(), intent, "policy.reschedule.change")
        args = {"booking_id": st.booking_id, "date": st.slots["date"], "time": st.slots["time"]}
        result = await ctx.run_tool("reschedule_booking", args)
        target = next((bk for bk in ctx.bookings if bk.id == st.booking_id), None)
        what = target.service if target else "appointment"
        slots = dict(st.slots)
        if result.ok:
            st.clear_task()
            return Decision(
                R.rescheduled(what, args["date"], args["time"]),
                intent,
                "policy.reschedule.done",
                slots,
                [result],
            )
        st.slots.pop("time", None)
        if result.code == "taken":  # the booking keeps its provider: other times only
            d = await _offer_after_clash(
                ctx, st, what, args["date"], args["time"], target.provider if target else None, intent,
                exclude=st.booking_id, other_providers=False,
            )
        else:
            busy = [x for x in ctx.busy if x.ref != st.booking_id]
            d = _offer(
                ctx,
                st,
                Understanding(),
                what,
                dt.date.fromisoformat(args["date"]),
                target.provider if target else None,
                intent,
                busy,
                lead=R.taken_lead(),
            )
        d.calls.append(result)
        d.reason = f"policy.reschedule.tool_failed.{result.code}"
        return d
    picking = st.booking_id is None
    hint = u.target_date or (u.slots.date if picking and _is_booked_date(ctx, u.slots.date) else None)
    picked = await _pick_target(ctx, st, u, "reschedule", intent, hint)
    if isinstance(picked, Decision):
        return picked
    booking = picked
    new = u.slots.given()
    if hint and new.get("date") == hint and not u.target_date:
        new.pop("date")
    if st.pending == "time":
        chosen = _pick_choice(st, u)
        if chosen is not None:
            new["time"] = chosen
            if st.choice_date:
                new["date"] = st.choice_date
    for k in ("date", "time"):
        if k in new:
            st.slots[k] = new[k]
    if "time" in new and ("date" not in new or u.same_day) and (u.same_day or not st.slots.get("date")):
        st.slots["date"] = booking.date  # "can I come at 5 instead" keeps the day
    st.slots["service"] = booking.service
    old = when_text(booking.date, booking.time)

    def confirm(date: str, time: str, provider: str | None) -> str:
        return R.confirm_reschedule(booking.service, old, date, time)

    return await _book_when(ctx, st, u, booking.service, intent, confirm, exclude=booking.id)


def _is_booked_date(ctx: PolicyContext, date: str | None) -> bool:
    return date is not None and any(bk.date == date for bk in ctx.bookings)


async def _update_contact(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    intent = "update_contact"
    if st.pending == "confirm" and u.affirm is not None and not u.slots.given():
        fields = {k: v for k, v in st.slots.items() if k in ("name", "email")}
        if u.affirm is False or not fields:
            st.clear_task()
            return Decision(R.kept(), intent, "policy.contact.kept")
        result = await ctx.run_tool("update_contact", fields)
        st.clear_task()
        reply = R.contact_updated() if result.ok else "Sorry, that doesn't look like a valid email address."
        return Decision(reply, intent, f"policy.contact.{result.code}", fields, [result])
    _merge(st, u, ("name", "email"))
    fields = {k: v for k, v in st.slots.items() if k in ("name", "email")}
    if not fields:
        return _ask(st, "contact", R.ask_contact(), intent, "policy.contact.ask")
    return _ask(st, "confirm", R.confirm_contact(fields), intent, "policy.contact.confirm")
