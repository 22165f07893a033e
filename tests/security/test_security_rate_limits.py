"""Rate limits over signed Twilio webhooks (docs/architecture.md section 1, step 4).

Per sender: a polite notice once, then silence, recorded as route "limited". An opt-out still
works from a limited sender. A global limit caps everyone; another sender is unaffected by one
sender's flood. The clock is frozen, so every text below lands in the same minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from store.models import Contact, Message, Trace
from tests.conftest import Sms, make_settings
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from web.app import create_app

FLOOD, OTHER = "+12125550123", "+12125550199"
NOTICE = "faster than we can reply"
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class Rig:
    def __init__(self, services: Services, sms: Sms) -> None:
        self.services, self.sms = services, sms

    async def traces(self, phone: str) -> list[Trace]:
        async with self.services.sessions() as s:
            c = (await s.exec(select(Contact).where(Contact.phone == phone))).one()
            return list(await s.exec(select(Trace).where(Trace.contact_id == c.id).order_by(col(Trace.id))))

    async def inbound(self, phone: str) -> list[Message]:
        async with self.services.sessions() as s:
            c = (await s.exec(select(Contact).where(Contact.phone == phone))).one()
            q = select(Message).where(Message.contact_id == c.id, Message.direction == "in")
            return list(await s.exec(q))


async def _rig(sqlite_url: str, clock: FrozenClock, **limits: Any) -> AsyncIterator[Rig]:
    services = build_services(make_settings(sqlite_url, **limits), clock=clock)
    async with AsyncTestClient(app=create_app(services)) as client:
        yield Rig(services, Sms(client))


@pytest.fixture
async def rig(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    async for r in _rig(sqlite_url, clock, rate_limit_per_minute=3, rate_limit_per_hour=100,
                        global_rate_limit_per_minute=1000):
        yield r


@pytest.fixture
async def global_rig(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    async for r in _rig(sqlite_url, clock, rate_limit_per_minute=100, global_rate_limit_per_minute=4):
        yield r


async def test_per_sender_limit_notices_once_then_stays_silent(rig: Rig, clock: FrozenClock) -> None:
    answers = [(await rig.sms.text("what are your hours?", sender=FLOOD)).text for _ in range(6)]
    assert all("<Message" in a and NOTICE not in a for a in answers[:3])
    assert NOTICE in answers[3]
    assert answers[4] == answers[5] == EMPTY
    traces = await rig.traces(FLOOD)
    assert [t.route for t in traces] == ["agent"] * 3 + ["limited"] * 3
    assert [t.steps[0]["reason"] for t in traces[3:]] == ["notice", "silent", "silent"]
    assert all(t.llm_calls == 0 and t.intent is None for t in traces[3:])
    assert {s["step"] for t in traces[3:] for s in t.steps} == {"rate_limit", "output_guard"}  # nothing else
    assert len(await rig.inbound(FLOOD)) == 6  # every text is still stored (staff see it)

    clock.advance(minutes=2)  # the window slides: served again, and no second notice within the hour
    assert "<Message" in (await rig.sms.text("ok, what are your hours?", sender=FLOOD)).text
    for _ in range(3):
        answer = (await rig.sms.text("hello?", sender=FLOOD)).text
    assert answer == EMPTY


async def test_opt_out_is_honoured_from_a_limited_sender(rig: Rig) -> None:
    for _ in range(5):
        await rig.sms.text("hi", sender=FLOOD)
    resp = await rig.sms.text("STOP", sender=FLOOD)
    assert "unsubscribed" in resp.text.lower()
    trace = (await rig.traces(FLOOD))[-1]
    assert (trace.route, trace.rule) == ("rule", "opt_out")
    first = trace.steps[0]
    assert (first["step"], first["outcome"], first["reason"]) == ("rate_limit", "bypass", "opt_out")
    async with rig.services.sessions() as s:
        c = (await s.exec(select(Contact).where(Contact.phone == FLOOD))).one()
    assert c.consent == "opted_out"
    assert (await rig.sms.text("please stop texting me", sender=FLOOD)).text == EMPTY  # one confirmation only


async def test_another_sender_is_not_affected(rig: Rig) -> None:
    for _ in range(6):
        await rig.sms.text("hi", sender=FLOOD)
    resp = await rig.sms.text("where are you located?", sender=OTHER)
    assert "12 Maple St" in resp.text
    assert [t.route for t in await rig.traces(OTHER)] == ["agent"]


async def test_global_limit_caps_all_senders(global_rig: Rig) -> None:
    senders = [f"+1212555{n:04d}" for n in range(101, 107)]
    answers = [(await global_rig.sms.text("what are your hours?", sender=who)).text for who in senders]
    assert all(NOTICE not in a for a in answers[:4])
    assert all(NOTICE in a for a in answers[4:])  # each newly limited sender hears it once
    assert [(await global_rig.traces(who))[0].route for who in senders] == ["agent"] * 4 + ["limited"] * 2
    assert (await global_rig.sms.text("hello", sender=senders[-1])).text == EMPTY
    resp = await global_rig.sms.text("STOP", sender=senders[-1])  # the opt-out bypass holds globally too
    assert "unsubscribed" in resp.text.lower()
