"""Two workers, many customers, one slot: the storm behind the "a slot is sold once" tests.

Two apps (two pipelines, as two workers would have) share one database. Each inbound is posted to
both at once under one MessageSid, as a Twilio retry landing on the other worker would be, and
both answers must be the same single reply. httpx's ASGI transport runs the apps in the test's
event loop, so requests really overlap (the Litestar test client hands each request to its portal
thread one at a time, which would hide every race).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Booking
from tests.conftest import MONDAY_9AM, PUBLIC_URL, Sms, make_settings
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from web.app import create_app

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
        sid = f"SM{uuid.uuid4().hex}"
        answers = await asyncio.gather(*(sms.text(body, sender=phone, sid=sid) for sms in self.smses))
        texts = [reply_text(a) for a in answers]
        given = [t for t in texts if t]
        assert len(set(given)) <= 1, f"two different replies to one message: {texts}"
        return given[0] if given else ""

    async def storm(self, phones: list[str], body: str) -> dict[str, str]:
        order = list(phones)
        random.shuffle(order)
        replies = await asyncio.gather(*(self.text(p, body) for p in order))
        return dict(zip(order, replies, strict=True))

    async def bookings(self) -> list[Booking]:
        async with self.sessions() as s:
            return list(await s.exec(select(Booking).where(Booking.status == "active")))


@asynccontextmanager
async def workers(url: str, configure: Callable[[Services], None] | None = None,
                  **settings_over: Any) -> AsyncIterator[Workers]:
    clock = FrozenClock(MONDAY_9AM)
    settings = make_settings(url, rate_limit_per_minute=1000, rate_limit_per_hour=10000,
                             global_rate_limit_per_minute=100000, workers=2, **settings_over)
    services = [build_services(settings, clock=clock) for _ in range(2)]
    for s in services:
        if configure is not None:
            configure(s)
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s)), base_url=PUBLIC_URL)
               for s in services]
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


async def same_slot_storm(w: Workers, customers: int, rounds: int) -> set[str]:
    """Everyone asks for a haircut tomorrow at 3 pm, then all confirm at once; the losers then
    take option 1 of their new offer together, ``rounds`` times. Returns who is still unbooked."""
    phones = [f"+1212555{1000 + i:04d}" for i in range(customers)]
    asks = await w.storm(phones, "can i book a haircut tmrw at 3pm")
    for phone, r in asks.items():
        assert "3:00 PM" in r and "Reply YES" in r, (phone, r)
    yeses = await w.storm(phones, "yes")
    booked = {p for p, r in yeses.items() if "booked" in r}
    losers = set(phones) - booked
    rows = await w.bookings()
    one_per_provider_slot(rows)
    at_three = [b for b in rows if b.start.astimezone(NY).time() == dt.time(15, 0)]
    assert sorted(b.provider or "" for b in at_three) == ["Kim", "Luis"]  # both chairs sold, once each
    assert len(booked) == 2 and len(rows) == 2
    for phone in losers:  # a new offer, never an error, a 500 or silence
        assert "3:00 PM was just taken" in yeses[phone] and "Reply 1" in yeses[phone], (phone, yeses[phone])
    for _ in range(rounds):  # the offers are bookable
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
    return losers
