"""A slot is sold once (issue 15): many customers confirm the same slot at the same moment.

Two apps (two pipelines, like two workers) share one database, PostgreSQL or SQLite. Twenty
customers ask for the same service at the same time, then all say "yes" at once, and every
webhook is delivered twice at once (a Twilio retry landing on the other worker). Exactly one
booking per provider and start time may exist; every other customer must get a new offer (never
an error or silence), and those offers must be bookable: the losers keep answering "1" and "yes"
in storms of their own until every one of them has a booking.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from store.models import Booking, Contact
from tests.slot_storm import one_per_provider_slot, same_slot_storm, workers

CUSTOMERS = 20


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


async def test_twenty_customers_confirm_the_same_slot_at_once(db_url: str) -> None:
    async with workers(db_url) as w:
        unbooked = await same_slot_storm(w, CUSTOMERS, rounds=CUSTOMERS)
        assert not unbooked
        rows = await w.bookings()
        one_per_provider_slot(rows)
        async with w.sessions() as s:
            contacts = list(await s.exec(select(Contact)))
        assert len(contacts) == CUSTOMERS
        assert sorted(Counter(b.contact_id for b in rows).values()) == [1] * CUSTOMERS  # one each


async def test_the_database_refuses_an_overlap_no_code_checked(db_url: str) -> None:
    """The last line: raw SQL that skips every application check is refused too, for inserts
    and for moves, while back-to-back and other-provider bookings are fine."""
    async with workers(db_url) as w:
        async with w.sessions() as s:
            c = Contact(phone="+12125550199")
            s.add(c)
            await s.flush()
            start = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)
            s.add(Booking(id="bk_a", contact_id=c.id or 0, service="haircut", provider="Kim",
                          start=start, end=start + dt.timedelta(minutes=45)))
            await s.commit()
            cid = c.id

        async def raw(sql: str, **params: Any) -> None:
            async with w.sessions() as s:
                await s.execute(text(sql), params)
                await s.commit()

        insert = ('INSERT INTO booking (id, contact_id, service, provider, start, "end", status, created_at, '
                  "updated_at) VALUES (:id, :c, 'haircut', :p, :s, :e, :st, :s, :s)")
        at = start + dt.timedelta(minutes=30)
        with pytest.raises(Exception, match="booking_no_overlap"):
            await raw(insert, id="bk_b", c=cid, p="Kim", s=at, e=at + dt.timedelta(minutes=45), st="active")
        # Back to back, another provider, and a cancelled row at the same time are all allowed.
        after = start + dt.timedelta(minutes=45)
        span = dt.timedelta(minutes=45)
        await raw(insert, id="bk_c", c=cid, p="Kim", s=after, e=after + span, st="active")
        await raw(insert, id="bk_d", c=cid, p="Luis", s=start, e=start + span, st="active")
        await raw(insert, id="bk_e", c=cid, p="Kim", s=at, e=at + span, st="cancelled")
        with pytest.raises(Exception, match="booking_no_overlap"):  # a move onto a taken slot
            await raw("UPDATE booking SET start = :s, \"end\" = :e WHERE id = 'bk_c'",
                      s=at, e=at + dt.timedelta(minutes=45))
        with pytest.raises(Exception, match="booking_no_overlap"):  # reviving a cancelled clash
            await raw("UPDATE booking SET status = 'active' WHERE id = 'bk_e'")
