"""Whole conversations over signed webhooks, ending in stored bookings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import select

from store.models import Booking, Contact
from tests.conftest import Sms

NY = dt.timezone(dt.timedelta(hours=-5))


async def bookings(services: Any) -> list[Booking]:
    async with services.sessions() as s:
        return list(await s.exec(select(Booking)))


async def test_full_booking_conversation(sms: Sms, services: Any) -> None:
    r1 = await sms.text("hi can i get a haircut tmrw?")
    assert "1)" in r1.text and "Tue Mar 3" in r1.text  # numbered times offered
    assert await bookings(services) == []
    r2 = await sms.text("2")
    assert "Reply YES" in r2.text
    assert await bookings(services) == []  # nothing before an explicit yes
    r3 = await sms.text("yes please")
    assert "booked" in r3.text
    (b,) = await bookings(services)
    assert b.service == "haircut" and b.status == "active"
    assert b.start.astimezone(NY).date() == dt.date(2026, 3, 3)
    async with services.sessions() as s:
        c = (await s.exec(select(Contact))).one()
    assert c.consent == "opted_in"  # a completed booking grants consent for reminders


async def test_booking_in_one_message_then_confirm(sms: Sms, services: Any) -> None:
    r1 = await sms.text("can i get a haircut with kim tomorrow at 2pm?")
    assert "2:00 PM" in r1.text and "Kim" in r1.text
    await sms.text("yes")
    (b,) = await bookings(services)
    assert (b.provider, b.start.astimezone(NY).hour) == ("Kim", 14)


async def test_reschedule_and_cancel(sms: Sms, services: Any) -> None:
    await sms.text("book a manicure on thursday at 11am")
    await sms.text("yes")
    (b,) = await bookings(services)
    r = await sms.text("can i move my appointment to friday at 3pm")
    assert "Move your manicure" in r.text
    await sms.text("yes")
    (b2,) = await bookings(services)
    assert b2.id == b.id and b2.start.astimezone(NY) == dt.datetime(2026, 3, 6, 15, 0, tzinfo=NY)
    r = await sms.text("actually I need to cancel my appointment")
    assert "Cancel your manicure" in r.text
    r = await sms.text("yes")
    assert "cancelled" in r.text
    (b3,) = await bookings(services)
    assert b3.status == "cancelled"


async def test_taken_time_gets_alternatives_not_a_double_booking(sms: Sms, services: Any) -> None:
    for who in ("+12125550001", "+12125550002"):
        await sms.text("haircut tomorrow at 10am", sender=who)
        await sms.text("yes", sender=who)
    r = await sms.text("haircut tomorrow at 10am", sender="+12125550003")
    assert "isn't available" in r.text and "1)" in r.text
    assert len(await bookings(services)) == 2  # two providers, two bookings, no third
