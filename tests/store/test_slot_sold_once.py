"""A slot is sold once (issue 15): many customers confirm the same slot at the same moment.

Two apps (two pipelines, like two workers) share one database, PostgreSQL or SQLite. Twenty
customers ask for the same service at the same time, then all say "yes" at once, and every
webhook is delivered twice at once (a Twilio retry landing on the other worker). Exactly one
booking per provider and start time may exist; every other customer must get a new offer (never
an error or silence), and those offers must be bookable: the losers keep answering "1" and "yes"
in storms of their own until every one of them has a booking.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Booking, Contact
from tests.conftest import MONDAY_9AM, PUBLIC_URL, Sms, make_settings
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from web.app import create_app

CUSTOMERS = 20
NY = dt.timezone(dt.timedelta(hours=-5))


def reply_text(response: Any) -> str:
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)
    return " ".join((m.text or "") for m in root.iter("Message"))


@dataclass
class Workers:
    services: list[Services]
    smses: list[Sms]
    sessions: async_sessionmaker[AsyncSession]

    async def text(self, phone: str, body: str) -> str:
        """One inbound, delivered to both workers at once under one MessageSid: both answers
        must be the same single reply (the retry replays it)."""
        sid = f"SM{uuid.uuid4().hex}"
        answers = await asyncio.gather(*(sms.text(body, sender=phone, sid=sid) for sms in self.smses))
        texts = [reply_text(a) for a in answers]
        first = [t for t in texts if t]
        assert len(set(first)) <= 1, f"two different replies to one message: {texts}"
        return first[0] if first else ""

    async def storm(self, phones: list[str], body: str) -> dict[str, str]:
        random.shuffle(phones)
        replies = await asyncio.gather(*(self.text(p, body) for p in phones))
        return dict(zip(phones, replies, strict=True))

    async def bookings(self) -> list[Booking]:
        async with self.sessions() as s:
            return list(await s.exec(select(Booking).where(Booking.status == "active")))


@asynccontextmanager
async def workers(url: str) -> AsyncIterator[Workers]:
    clock = FrozenClock(MONDAY_9AM)
    settings = make_settings(url, rate_limit_per_minute=1000, rate_limit_per_hour=10000,
                             global_rate_limit_per_minute=100000)
    services = [build_services(settings, clock=clock) for _ in range(2)]
    # httpx's ASGI transport runs each app in this event loop, so requests really overlap (the
    # Litestar test client hands each request to its portal thread one at a time).
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s)), base_url=PUBLIC_URL)
        for s in services
    ]
    try:
        yield Workers(services, [Sms(c) for c in clients], services[0].sessions)
    finally:
        for c in clients:
            await c.aclose()
        for s in services:
            await s.close()


def one_per_provider_slot(bookings: list[Booking]) -> None:
    per_slot = Counter((b.provider, b.start) for b in bookings)
    doubled = {k: n for k, n in per_slot.items() if n > 1}
    assert not doubled, f"double bookings: {doubled}"
    by_provider: dict[str | None, list[Booking]] = {}
    for b in bookings:
        by_provider.setdefault(b.provider, []).append(b)
    for rows in by_provider.values():
        rows.sort(key=lambda b: b.start)
        for a, b in itertools.pairwise(rows):
            assert a.end <= b.start, f"overlap: {a.id} {a.start}-{a.end} and {b.id} {b.start}-{b.end}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


async def test_twenty_customers_confirm_the_same_slot_at_once(db_url: str) -> None:
    phones = [f"+1212555{1000 + i:04d}" for i in range(CUSTOMERS)]
    async with workers(db_url) as w:
        asks = await w.storm(list(phones), "can i book a haircut tmrw at 3pm")
        for phone, r in asks.items():
            assert "3:00 PM" in r and "Reply YES" in r, (phone, r)

        yeses = await w.storm(list(phones), "yes")
        booked = {p for p, r in yeses.items() if "booked" in r}
        losers = {p for p, r in yeses.items() if p not in booked}
        rows = await w.bookings()
        one_per_provider_slot(rows)
        at_three = [b for b in rows if b.start.astimezone(NY).time() == dt.time(15, 0)]
        assert sorted(b.provider or "" for b in at_three) == ["Kim", "Luis"]  # both chairs sold, once each
        assert len(booked) == 2 and len(rows) == 2
        for phone in losers:  # a new offer, never an error, a 500 or silence
            r = yeses[phone]
            assert "3:00 PM was just taken" in r and "Reply 1" in r, (phone, r)

        # The offers are bookable: losers keep taking option 1 together until all are booked.
        for _ in range(CUSTOMERS):
            if not losers:
                break
            picks = await w.storm(sorted(losers), "1")
            for phone, r in picks.items():
                assert "Reply YES" in r, (phone, r)
            confirms = await w.storm(sorted(losers), "yes")
            won = {p for p, r in confirms.items() if "booked" in r}
            for phone in losers - won:
                assert "was just taken" in confirms[phone], (phone, confirms[phone])
            assert won, "a round of confirmations booked nobody: the offers were not bookable"
            losers -= won
            one_per_provider_slot(await w.bookings())
        assert not losers
        rows = await w.bookings()
        one_per_provider_slot(rows)
        async with w.sessions() as s:
            contacts = list(await s.exec(select(Contact)))
        assert len(contacts) == CUSTOMERS
        assert sorted(Counter(b.contact_id for b in rows).values()) == [1] * CUSTOMERS


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
