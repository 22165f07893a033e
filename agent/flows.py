"""The task flows: book, reschedule, cancel, update contact. Each settles one thing per turn
(one question per reply) and asks for an explicit yes before its tool runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.decision import Decision, PolicyContext, ask
from agent.offers import Ask, days_between, find_offers, provider_for, window
from agent.replies import R, when_text
from agent.state import DialogueState, Offer
from agent.types import BookingView, Understanding
from tools.availability import Busy, check_slot, next_open_days

__all__ = ["book", "cancel", "reschedule", "update_contact"]

_SEARCH_DAYS = 14  # "earliest", "any time": how far ahead to look


# -- shared -----------------------------------------------------------------------------------------

def _merge(st: DialogueState, u: Understanding, keys: tuple[str, ...]) -> None:
    for k, v in u.slots.given().items():
        if k in keys:
            st.slots[k] = v


def _picked(st: DialogueState, u: Understanding) -> Offer | None:
    if u.choice is not None and st.offers and 1 <= u.choice <= len(st.offers):
        return st.offers[u.choice - 1]
    return None


def _flex(u: Understanding, st: DialogueState) -> None:
    """Keep what the customer said about when (range, window, preference) for the next offer."""
    for key in ("span_first", "span_last", "after", "before", "part_of_day", "prefer"):
        value = getattr(u, key)
        if value:
            st.flex[key] = value


def _offer_text(service: str, offers: list[Offer], lead: str = "") -> str:
    days = {o.date for o in offers}
    providers = {o.provider for o in offers}
    who = next(iter(providers)) if len(providers) == 1 else None
    if len(days) == 1:
        return R.offer_times(service, offers[0].date, [o.time for o in offers], who, lead)
    return R.offer_days(service, [(o.date, o.time) for o in offers], who, lead)


def _candidate_days(ctx: PolicyContext, st: DialogueState, day: dt.date | None) -> list[dt.date]:
    if day is not None:
        return [day]
    first, last = st.flex.get("span_first"), st.flex.get("span_last")
    if first and last:
        first_day, last_day = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        return days_between(ctx.business, first_day, last_day, ctx.today)
    return next_open_days(ctx.business, ctx.today, _SEARCH_DAYS)


def _ask_for(st: DialogueState, service: str, days: list[dt.date], provider: str | None,
             near: dt.time | None = None) -> Ask:
    after, before = window(st.flex.get("after"), st.flex.get("before"), st.flex.get("part_of_day"))
    return Ask(service, days, provider, after, before, near, st.flex.get("prefer"))


def _offer(ctx: PolicyContext, st: DialogueState, service: str, day: dt.date | None, provider: str | None,
           intent: str, busy: list[Busy], near: dt.time | None = None, lead: str = "") -> Decision:
    """Offer free times for ``day`` (or the customer's range), honouring their window and
    preference; when the day has nothing, the next open days."""
    b = ctx.business
    days = _candidate_days(ctx, st, day)
    offers, in_window = find_offers(b, busy, _ask_for(st, service, days, provider, near), ctx.now)
    if offers:
        st.offers = offers
        if not in_window:
            lead = lead or R.window_missed()
        return ask(st, "time", _offer_text(service, offers, lead), intent, "policy.offer_times")
    target = day or (days[0] if days else ctx.today)
    reason = "closed" if day is not None and b.open_span(day) is None else "full"
    st.slots.pop("date", None)
    later = next_open_days(b, (days[-1] if days else target) + dt.timedelta(days=1), 5)
    offers, _ = find_offers(b, busy, _ask_for(st, service, later, provider, near), ctx.now)
    if offers:
        st.offers = [o for o in offers if o.date == offers[0].date][:3]
        lead2 = R.day_full(target.isoformat(), reason, lead)
        q = _offer_text(service, st.offers, lead2)
        return ask(st, "time", q, intent, f"policy.offer_next_day.{reason}")
    return ask(st, "date", R.no_times(service, target.isoformat(), reason, lead), intent,
                f"policy.no_times.{reason}")


async def _offer_after_clash(ctx: PolicyContext, st: DialogueState, service: str, date: str, time: str,
                             provider: str | None, intent: str, exclude: str | None = None,
                             other_providers: bool = True) -> Decision:
    """Another customer won the slot a moment ago: offer what is free now, read fresh. With a
    provider asked for, the same time with someone else is one of the options."""
    b = ctx.business
    if ctx.refresh_busy is not None:
        ctx.busy = await ctx.refresh_busy()
    busy = [x for x in ctx.busy if exclude is None or x.ref != exclude]
    day, at = dt.date.fromisoformat(date), dt.time.fromisoformat(time)
    options: list[Offer] = []
    if provider and other_providers:
        free = (p for p in b.providers if check_slot(b, busy, service, day, at, ctx.now, p).ok)
        other = next((p for p in free if p != provider), None)
        if other is not None:
            options.append(Offer(date=date, time=time, provider=other))
    nearby, _ = find_offers(b, busy, Ask(service, [day], provider, near=at), ctx.now)
    for o in nearby:
        who = provider_for(b, busy, service, o, ctx.now) if b.providers else None
        options.append(Offer(date=o.date, time=o.time, provider=who))
    anchor = at.hour * 60 + at.minute
    options = sorted(options, key=lambda o: (abs(int(o.time[:2]) * 60 + int(o.time[3:]) - anchor),
                                             o.time))[:3]
    if not options:
        return _offer(ctx, st, service, day, provider, intent, busy, lead=R.clash_lead(time))
    st.offers = options
    q = R.clash_offer(time, [(o.time, o.provider) for o in options])
    return ask(st, "time", q, intent, "policy.offer_after_clash")


# -- book -------------------------------------------------------------------------------------------

async def book(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    b = ctx.business
    intent = "book_appointment"
    if st.pending == "time":
        picked = _picked(st, u)
        if picked is not None:
            st.slots["time"], st.slots["date"] = picked.time, picked.date
            if picked.provider and st.slots.get("provider") and picked.provider != st.slots["provider"]:
                st.slots["provider"] = picked.provider  # they asked for someone else and took this one
            elif picked.provider and len(b.providers) > 1 and st.offers and len(
                    {o.provider for o in st.offers}) > 1:
                st.slots["provider"] = picked.provider  # the offer named who: the pick is that person
    if st.pending == "confirm" and u.affirm is True and not u.slots.given():
        return await _create(ctx, st)
    _merge(st, u, ("service", "date", "time", "provider", "name", "email"))
    _flex(u, st)
    if u.slots.date or u.slots.time:
        st.offers = []
    if st.pending == "confirm" and u.affirm is False and not u.slots.given():
        return ask(st, "change", R.what_to_change(), intent, "policy.book.change")
    if not st.slots.get("service") and st.context_service:
        st.slots["service"] = st.context_service
    service = st.slots.get("service")
    if not service or b.service(service) is None:
        st.slots.pop("service", None)
        return ask(st, "service", R.ask_service(b), intent, "policy.book.ask_service")

    def confirm(date: str, time: str, provider: str | None) -> str:
        return R.confirm_booking(service, date, time, provider, _contact_bits(st))

    return await _book_when(ctx, st, u, service, intent, confirm)


def _contact_bits(st: DialogueState) -> dict[str, str]:
    return {k: st.slots[k] for k in ("name", "email") if st.slots.get(k)}


async def _book_when(ctx: PolicyContext, st: DialogueState, u: Understanding, service: str, intent: str,
                     confirm: Any, exclude: str | None = None) -> Decision:
    """Shared by booking and rescheduling: settle date and time, then ask to confirm."""
    b = ctx.business
    provider = st.slots.get("provider")
    date_s = st.slots.get("date")
    busy = [x for x in ctx.busy if exclude is None or x.ref != exclude]
    flexible = bool(st.flex.get("span_first") or st.flex.get("prefer"))
    if not date_s and not flexible:
        if st.flex.get("after") or st.flex.get("before") or st.flex.get("part_of_day"):
            flexible = True  # "mornings w maya": any day soon, in the window
        else:
            q = R.ask_date(service) if intent == "book_appointment" else R.ask_new_date(service)
            return ask(st, "date", q, intent, "policy.ask_date")
    day = dt.date.fromisoformat(date_s) if date_s else None
    if day is not None and day < ctx.today:
        st.slots.pop("date", None)
        st.slots.pop("time", None)
        return ask(st, "date", f"That date has passed. {R.ask_date(service)}", intent, "policy.date_past")
    time_s = st.slots.get("time")
    if time_s and day is not None:
        check = check_slot(b, busy, service, day, dt.time.fromisoformat(time_s), ctx.now, provider)
        if check.ok:
            st.assigned = check.provider
            return ask(st, "confirm", confirm(date_s, time_s, provider or check.provider), intent,
                        "policy.confirm")
        st.slots.pop("time", None)
        return _offer(ctx, st, service, day, provider, intent, busy, near=dt.time.fromisoformat(time_s),
                      lead=R.taken_lead())
    return _offer(ctx, st, service, day, provider, intent, busy)


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
            reply = R.booked_with_deposit(s["service"], s["date"], s["time"], str(result.data["deposit"]),
                                          str(result.data["payment_url"]))
        calls = [result]
        contact = _contact_bits(st)
        if contact:  # confirmed together with the booking ("... for Priya. Reply YES")
            calls.append(await ctx.run_tool("update_contact", contact))
        slots = dict(st.slots)
        slots.update({"provider": prov} if prov else {})
        st.clear_task()
        st.context_service = None
        return Decision(reply, "book_appointment", "policy.book.created", slots, calls)
    # Someone took the slot meanwhile (or it became invalid): a new offer, never a double booking.
    st.slots.pop("time", None)
    st.assigned = None
    if result.code == "taken":
        d = await _offer_after_clash(ctx, st, s["service"], s["date"], args["time"], s.get("provider"),
                                     "book_appointment")
    else:
        d = _offer(ctx, st, s["service"], dt.date.fromisoformat(s["date"]), s.get("provider"),
                   "book_appointment", ctx.busy, lead=R.taken_lead())
    d.calls.append(result)
    d.reason = f"policy.book.tool_failed.{result.code}"
    return d


# -- which booking ----------------------------------------------------------------------------------

def _resolve(
    ctx: PolicyContext, st: DialogueState, u: Understanding, hint_date: str | None
) -> list[BookingView]:
    if st.booking_id:
        return [bk for bk in ctx.bookings if bk.id == st.booking_id]
    cands = list(ctx.bookings)
    if u.refs:
        named = [bk for bk in cands if bk.id in u.refs]
        if named:
            cands = named
    for key, value in (("service", u.slots.service), ("provider", u.slots.provider), ("date", hint_date)):
        if value and any(getattr(bk, key) == value for bk in cands):
            cands = [bk for bk in cands if getattr(bk, key) == value]
    return cands


def _target(ctx: PolicyContext, st: DialogueState, u: Understanding, action: str, intent: str,
            hint_date: str | None) -> BookingView | Decision:
    if st.pending == "pick_booking" and u.choice is not None and 1 <= u.choice <= len(st.choices):
        st.booking_id = st.choices[u.choice - 1]
    cands = _resolve(ctx, st, u, hint_date)
    if not cands:
        st.clear_task()
        return Decision(R.no_bookings(), intent, f"policy.{action}.no_bookings")
    if len(cands) > 1:
        st.choices = [bk.id for bk in cands[:5]]
        return ask(st, "pick_booking", R.pick_booking(action, [bk.line() for bk in cands[:5]]), intent,
                    f"policy.{action}.pick")
    st.booking_id = cands[0].id
    return cands[0]


def _understood(u: Understanding) -> dict[str, str]:
    """What the text said about the booking it refers to (reported as the turn's slots)."""
    return {k: v for k, v in u.slots.given().items() if k in ("service", "date", "time", "provider")}


# -- cancel -----------------------------------------------------------------------------------------

async def cancel(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
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
    target = _target(ctx, st, u, "cancel", intent, u.slots.date)
    if isinstance(target, Decision):
        target.slots = {**_understood(u), **target.slots}
        return target
    d = ask(st, "confirm", R.confirm_cancel(target.line()), intent, "policy.cancel.confirm")
    d.slots = {**_understood(u), **d.slots}
    return d


# -- reschedule -------------------------------------------------------------------------------------

def _is_booked_date(ctx: PolicyContext, date: str | None) -> bool:
    return date is not None and any(bk.date == date for bk in ctx.bookings)


async def reschedule(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
    intent = "reschedule_appointment"
    if st.pending == "confirm" and st.booking_id and u.affirm is not None and not u.slots.given():
        if u.affirm is False:
            st.pending = "change"
            return ask(st, "date", R.what_to_change(), intent, "policy.reschedule.change")
        args = {"booking_id": st.booking_id, "date": st.slots["date"], "time": st.slots["time"]}
        result = await ctx.run_tool("reschedule_booking", args)
        target = next((bk for bk in ctx.bookings if bk.id == st.booking_id), None)
        what = target.service if target else "appointment"
        slots = dict(st.slots)
        if result.ok:
            st.clear_task()
            return Decision(R.rescheduled(what, args["date"], args["time"]), intent, "policy.reschedule.done",
                            slots, [result])
        st.slots.pop("time", None)
        if result.code == "taken":  # the booking keeps its provider: other times only
            d = await _offer_after_clash(ctx, st, what, args["date"], args["time"],
                                         target.provider if target else None, intent,
                                         exclude=st.booking_id, other_providers=False)
        else:
            busy = [x for x in ctx.busy if x.ref != st.booking_id]
            d = _offer(ctx, st, what, dt.date.fromisoformat(args["date"]),
                       target.provider if target else None, intent, busy, lead=R.taken_lead())
        d.calls.append(result)
        d.reason = f"policy.reschedule.tool_failed.{result.code}"
        return d
    picking = st.booking_id is None
    hint = u.target_date or (u.slots.date if picking and _is_booked_date(ctx, u.slots.date) else None)
    new = {k: v for k, v in u.slots.given().items() if k in ("date", "time")}
    if hint and new.get("date") == hint and not u.target_date:
        new.pop("date")
    picked = _target(ctx, st, u, "reschedule", intent, hint)
    if isinstance(picked, Decision):
        if st.pending == "pick_booking":  # keep the new day and time for after they pick
            st.slots.update({k: v for k, v in new.items()})
        picked.slots = {**_understood(u), **picked.slots}
        return picked
    booking = picked
    if not new and st.pending == "pick_booking":
        new = {k: st.slots[k] for k in ("date", "time") if st.slots.get(k)}
    if st.pending == "time":
        chosen = _picked(st, u)
        if chosen is not None:
            new["time"], new["date"] = chosen.time, chosen.date
    for k in ("date", "time"):
        if k in new:
            st.slots[k] = new[k]
    if "time" in new and ("date" not in new or u.same_day) and (u.same_day or not st.slots.get("date")):
        st.slots["date"] = booking.date  # "can I come at 5 instead" keeps the day
    _flex(u, st)
    st.slots["service"] = booking.service
    if u.later and not new and not st.slots.get("date"):
        # "could it be later?": same day, after (or before) the booking's time.
        st.slots["date"] = booking.date
        st.flex["after" if u.later == "later" else "before"] = booking.time
    old = when_text(booking.date, booking.time)

    def confirm(date: str, time: str, provider: str | None) -> str:
        return R.confirm_reschedule(booking.service, old, date, time)

    keep = st.slots.get("provider")
    if booking.provider:  # the booking keeps its provider while its time is settled
        st.slots["provider"] = booking.provider
    else:
        st.slots.pop("provider", None)
    d = await _book_when(ctx, st, u, booking.service, intent, confirm, exclude=booking.id)
    if keep is None:
        st.slots.pop("provider", None)
        d.slots.pop("provider", None)
    return d


# -- update contact ---------------------------------------------------------------------------------

async def update_contact(ctx: PolicyContext, st: DialogueState, u: Understanding) -> Decision:
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
        return ask(st, "contact", R.ask_contact(), intent, "policy.contact.ask")
    return ask(st, "confirm", R.confirm_contact(fields), intent, "policy.contact.confirm")
