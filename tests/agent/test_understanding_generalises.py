"""What textdesk makes of a message, for businesses of different kinds (issue 17), through the
real pipeline: grounding, booking-aware messages, compositional requests, picks and yes-variants,
a name or email given with a booking, and the trace's record of what grounded an answer."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlmodel import select

from store.models import Booking, Contact, Trace
from tests.conftest import make_settings
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound, TurnResult
from textdesk.services import Services, build_services
from textdesk.settings import DEMO_DIR

# Wednesday 10 June 2026, 10:00 local, for every business (its UTC offset in June).
OFFSETS = {"salon": -4, "wellness": -5, "clinic": -6, "repair": -7}
PHONE = "+13125550199"

Say = Callable[[str], Awaitable[TurnResult]]


@asynccontextmanager
async def business(sqlite_url: str, name: str) -> AsyncIterator[tuple[Services, Say]]:
    """One demo business on a fresh database, and a way to text it."""
    now = dt.datetime(2026, 6, 10, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=OFFSETS[name])))
    svc = build_services(make_settings(sqlite_url, business_file=DEMO_DIR / f"{name}.yaml"),
                         clock=FrozenClock(now.astimezone(dt.UTC)))

    async def say(text: str) -> TurnResult:
        return await svc.pipeline.handle(Inbound(sender=PHONE, body=text,
            provider_message_id=f"SM{uuid.uuid4().hex}"))

    try:
        yield svc, say
    finally:
        await svc.engine.dispose()


async def book(svc: Services, service: str, date: str, time: str, provider: str | None, bid: str) -> None:
    b = svc.business
    day, at = dt.date.fromisoformat(date), dt.time.fromisoformat(time)
    start = dt.datetime.combine(day, at, b.tz).astimezone(dt.UTC)
    minutes = next(s.minutes for s in b.services if s.name == service)
    async with svc.sessions() as s:
        contact = (await s.exec(select(Contact).where(Contact.phone == PHONE))).first()
        if contact is None:
            contact = Contact(phone=PHONE, consent="opted_in")
            s.add(contact)
            await s.flush()
        s.add(Booking(id=bid, contact_id=contact.id or 0, service=service, provider=provider, start=start,
                      end=start + dt.timedelta(minutes=minutes)))
        await s.commit()


async def active(svc: Services) -> list[Booking]:
    async with svc.sessions() as s:
        return list(await s.exec(select(Booking).where(Booking.status == "active")))


async def state_of(svc: Services) -> dict[str, Any]:
    async with svc.sessions() as s:
        return dict((await s.exec(select(Contact).where(Contact.phone == PHONE))).one().state)


# -- grounding -------------------------------------------------------------------------------------

WORLD = {
    "salon": ["where do pearls come from", "what time does the DMV close", "how much is a ps5 these days"],
    "wellness": ["whats united's cancellation policy for basic economy",
                 "how many needles does a porcupine have"],
    "clinic": ["how much is a massage gun on amazon rn", "what time does the pharmacy on colfax close"],
    "repair": ["how long do tesla batteries usually last", "where do you even buy a ps5 these days"],
}
FACTS = {"salon": ["12 Maple", "$45", "9:00 AM"], "wellness": ["Division", "$95", "24 hours"],
         "clinic": ["Platte", "$140", "$50"], "repair": ["Division", "$89", "same day"]}


@pytest.mark.parametrize("name", list(WORLD))
async def test_world_questions_get_no_business_facts(sqlite_url: str, name: str) -> None:
    async with business(sqlite_url, name) as (_, say):
        for text in WORLD[name]:
            r = await say(text)
            assert r.intent == "out_of_scope", (text, r.intent, r.reply)
            assert not any(f.lower() in (r.reply or "").lower() for f in FACTS[name]), (text, r.reply)


async def test_a_grounded_answer_records_what_grounded_it(sqlite_url: str) -> None:
    async with business(sqlite_url, "wellness") as (svc, say):
        r = await say("whats ur cancellation policy?")
        assert r.intent == "ask_question" and "24 hours" in (r.reply or "")
        async with svc.sessions() as s:
            trace = (await s.exec(select(Trace).where(Trace.message_id == r.message_id))).one()
    policy = next(step for step in trace.steps if step["step"] == "policy")
    assert policy["data"]["answer"].startswith("faq:") and policy["data"]["score"] >= 0.5
    understand = next(step for step in trace.steps if step["step"] == "understand")
    assert understand["data"]["evidence"]["decided_by"].startswith("grounded")


# -- booking-aware ---------------------------------------------------------------------------------

async def test_a_message_about_an_existing_booking_never_books_a_new_one(sqlite_url: str) -> None:
    async with business(sqlite_url, "wellness") as (svc, say):
        await book(svc, "massage", "2026-06-11", "15:00", "Maya", "bk_mas")
        await book(svc, "facial", "2026-06-16", "11:00", "Jordan", "bk_fac")
        r = await say("which therapist am i seeing thursday?")
        assert r.intent == "check_appointment" and "Maya" in (r.reply or "")
        assert "facial" not in (r.reply or "")
        r = await say("gotta cancel thursday's massage sorry")
        assert r.intent == "cancel_appointment" and "Cancel your massage" in (r.reply or "")
        r = await say("yes")
        assert r.tools == [{"name": "cancel_booking", "args": {"booking_id": "bk_mas"}}]
        r = await say("could my facial on tue be later, like 1?")
        assert r.intent == "reschedule_appointment"
        assert "Move your facial" in (r.reply or "") and "1:00 PM" in (r.reply or "")
        r = await say("yep")
        assert r.tools == [{"name": "reschedule_booking",
                            "args": {"booking_id": "bk_fac", "date": "2026-06-16", "time": "13:00"}}]
        assert len(await active(svc)) == 1  # moved, not a second booking


async def test_two_matching_bookings_are_asked_about(sqlite_url: str) -> None:
    async with business(sqlite_url, "repair") as (svc, say):
        await book(svc, "screen repair", "2026-06-12", "11:00", "Sam", "bk_1")
        await book(svc, "battery replacement", "2026-06-12", "15:00", "Rosa", "bk_2")
        r = await say("need to cancel friday's appt")
        assert r.intent == "cancel_appointment" and "Which appointment" in (r.reply or "")
        r = await say("the battery one")
        assert "Cancel your battery replacement" in (r.reply or "")


# -- compositional requests, picks, yes-variants --------------------------------------------------

async def test_provider_week_and_window_in_one_message_then_a_pick(sqlite_url: str) -> None:
    async with business(sqlite_url, "salon") as (svc, say):
        r = await say("need a trim w luis sometime next week, im free after 5 most days")
        assert r.intent == "book_appointment"
        assert (r.slots.get("service"), r.slots.get("provider")) == ("haircut", "Luis")
        offers = (await state_of(svc))["offers"]
        assert offers, r.reply
        for o in offers:  # every offer honours the week and the window
            assert dt.date(2026, 6, 15) <= dt.date.fromisoformat(o["date"]) <= dt.date(2026, 6, 21), o
            assert o["time"] >= "17:00", o
        r = await say("the first one")
        assert "Reply YES" in (r.reply or "") and "Luis" in (r.reply or "")
        r = await say("yes thats the one")
        assert r.tools and r.tools[0]["name"] == "create_booking"
        (booking,) = await active(svc)
    assert booking.provider == "Luis" and booking.start.astimezone(svc.business.tz).hour >= 17


async def test_earliest_takes_the_first_free_time(sqlite_url: str) -> None:
    async with business(sqlite_url, "clinic") as (svc, say):
        r = await say("whats the earliest u have for a follow up with dr c")
        assert r.intent == "book_appointment" and r.slots.get("provider") == "Dr. Chen"
        first = (await state_of(svc))["offers"][0]
        r = await say("earliest")
        assert "Reply YES" in (r.reply or "")
        r = await say("yep sounds good thanks")
        (booking,) = await active(svc)
    local = booking.start.astimezone(svc.business.tz)
    assert booking.service == "follow-up" and booking.provider == "Dr. Chen"
    assert (local.date().isoformat(), local.strftime("%H:%M")) == (first["date"], first["time"])
    assert local.date() == dt.date(2026, 6, 10)  # today: nothing is booked yet


@pytest.mark.parametrize("pick", ["ok 2", "the 2nd one", "2"])
async def test_picks_by_number_or_position(sqlite_url: str, pick: str) -> None:
    async with business(sqlite_url, "repair") as (svc, say):
        await say("can i get my cracked screen fixed thursday?")
        second = (await state_of(svc))["offers"][1]
        r = await say(pick)
        assert "Reply YES" in (r.reply or ""), r.reply
        assert r.slots.get("time") == second["time"]


async def test_a_time_from_the_offer_picks_it(sqlite_url: str) -> None:
    async with business(sqlite_url, "wellness") as (svc, say):
        await say("any facial openings friday afternoon?")
        third = (await state_of(svc))["offers"][2]
        hour = int(third["time"][:2]) % 12 or 12
        r = await say(f"the {hour}:{third['time'][3:]} works")
        assert r.slots.get("time") == third["time"], r.reply


async def test_a_name_and_email_in_a_booking_text_are_confirmed_and_saved_with_it(sqlite_url: str) -> None:
    async with business(sqlite_url, "salon") as (svc, say):
        r = await say("hiya, my names Priya, could u squeeze me in for a trim tmrw at 2? "
                      "my email is priya@example.com")
        assert (r.slots.get("name"), r.slots.get("email")) == ("Priya", "priya@example.com")
        assert "Priya" in (r.reply or "") and "Reply YES" in (r.reply or "")
        r = await say("yes please")
        assert [t["name"] for t in r.tools] == ["create_booking", "update_contact"]
        async with svc.sessions() as s:
            contact = (await s.exec(select(Contact).where(Contact.phone == PHONE))).one()
    assert (contact.name, contact.email) == ("Priya", "priya@example.com")


async def test_below_the_threshold_the_bot_asks_instead_of_guessing(sqlite_url: str) -> None:
    async with business(sqlite_url, "clinic") as (_, say):
        r = await say("the thing w the from b4??")
        assert r.confidence is not None and r.confidence < 0.55
        assert r.tools == [] and "didn't get that" in (r.reply or "")
