"""Reminders end to end: planned with the booking, gated, sent once, answered with 1/2/3."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import col, select

from store.models import Booking, Contact, Job, Message
from tests.conftest import ACCOUNT_SID, MONDAY_9AM, make_settings
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import Services, build_services

API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
PHONE = "+12125550123"


def twilio_ok(sent: list[dict[str, str]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        sent.append(form)
        return httpx.Response(
            201, json={"sid": f"SMr{len(sent)}", "status": "queued", "account_sid": ACCOUNT_SID}
        )

    return handler


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
async def svc(db_url: str) -> AsyncIterator[Services]:
    s = build_services(make_settings(db_url), clock=FrozenClock(MONDAY_9AM))
    yield s
    await s.engine.dispose()


_n = iter(range(10**9))


async def text(s: Services, body: str, phone: str = PHONE) -> Any:
    return await s.pipeline.handle(Inbound(sender=phone, body=body, provider_message_id=f"SMt{next(_n)}"))


async def book_tomorrow_3pm(s: Services) -> Booking:
    await text(s, "haircut tomorrow at 3pm")
    await text(s, "yes")
    async with s.sessions() as db:
        return (await db.exec(select(Booking))).one()


async def jobs(s: Services) -> list[Job]:
    async with s.sessions() as db:
        return list(await db.exec(select(Job).order_by(col(Job.run_at))))


async def test_booking_plans_reminders_and_reschedule_replans(svc: Services) -> None:
    b = await book_tomorrow_3pm(svc)
    planned = [(j.kind, j.run_at, j.status) for j in await jobs(svc)]
    assert planned == [
        ("reminder", b.start - dt.timedelta(hours=24), "pending"),
        ("reminder", b.start - dt.timedelta(hours=2), "pending"),
    ]
    await text(svc, "can i move my appointment to wednesday at 3pm")
    await text(svc, "yes")
    statuses = sorted((j.status, j.payload["start"][:10]) for j in await jobs(svc))
    assert statuses == [
        ("cancelled", "2026-03-03"),
        ("cancelled", "2026-03-03"),
        ("pending", "2026-03-04"),
        ("pending", "2026-03-04"),
    ]


async def test_reminder_sent_once_and_reply_1_confirms(svc: Services) -> None:
    b = await book_tomorrow_3pm(svc)
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        svc.clock.advance(hours=6)  # 15:00 Monday: the 24 h reminder is due
        assert await svc.scheduler.run_due() == 1
        assert await svc.scheduler.run_due() == 0  # never twice
    assert len(sent) == 1 and "Reply 1 to confirm" in sent[0]["Body"] and sent[0]["To"] == PHONE
    r = await text(svc, "1")
    assert "see you" in (r.reply or "").lower()
    async with svc.sessions() as db:
        assert (await db.get(Booking, b.id)).confirmed_at is not None  # type: ignore[union-attr]


async def test_reminder_reply_3_cancels_after_confirmation(svc: Services) -> None:
    b = await book_tomorrow_3pm(svc)
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok([]))
        svc.clock.advance(hours=6)
        await svc.scheduler.run_due()
    r = await text(svc, "3")
    assert r.tools == [] and "Cancel your haircut" in (r.reply or "")
    r = await text(svc, "yes")
    assert r.tools == [{"name": "cancel_booking", "args": {"booking_id": b.id}}]
    remaining = [j for j in await jobs(svc) if j.status == "pending"]
    assert remaining == []  # the 2 h reminder went with the booking


async def test_reminder_in_quiet_hours_is_deferred(svc: Services) -> None:
    await book_tomorrow_3pm(svc)
    async with svc.sessions() as db:
        job = (await db.exec(select(Job))).first()
        assert job is not None
        job.run_at = dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC)  # 21:00 in New York
        db.add(job)
        await db.commit()
    svc.clock.advance(hours=12)  # 21:00 New York
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        await svc.scheduler.run_due()
    assert sent == []
    deferred = next(j for j in await jobs(svc) if j.id == job.id)
    assert deferred.status == "pending" and deferred.run_at == dt.datetime(2026, 3, 3, 13, 0, tzinfo=dt.UTC)


async def test_no_reminder_without_consent(svc: Services) -> None:
    await book_tomorrow_3pm(svc)
    await text(svc, "STOP")
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        svc.clock.advance(hours=6)
        await svc.scheduler.run_due()
    assert sent == []


async def test_frequency_cap_defers(svc: Services) -> None:
    svc.settings.started_messages_per_day = 1
    svc.settings.reminder_offsets_h = [24.0, 23.5]
    b = await book_tomorrow_3pm(svc)
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        svc.clock.advance(hours=7)  # both reminders due
        await svc.scheduler.run_due()
    assert len(sent) == 1
    later = [j for j in await jobs(svc) if j.status == "pending"]
    assert len(later) == 1 and later[0].run_at > svc.clock.now()
    assert b.id == later[0].payload["booking_id"]


async def test_exactly_once_across_two_workers(pg_url: str) -> None:
    """Two scheduler workers on one PostgreSQL database race for the same due jobs."""
    a = build_services(make_settings(pg_url), clock=FrozenClock(MONDAY_9AM))
    b = build_services(make_settings(pg_url), clock=a.clock)
    b.scheduler.worker = "worker-b"
    for i in range(8):
        await text(a, f"haircut tomorrow at {10 + i}:00", phone=f"+1212555{1000 + i}")
        await text(a, "yes", phone=f"+1212555{1000 + i}")
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        a.clock.advance(hours=9)  # type: ignore[attr-defined]  # 18:00: all eight 24 h reminders due
        counts = await asyncio.gather(a.scheduler.run_due(), b.scheduler.run_due(), a.scheduler.run_due())
    async with a.sessions() as db:
        booked = len(list(await db.exec(select(Booking))))
        notes = list(await db.exec(select(Message).where(Message.kind == "notification")))
    assert booked == 8 and sum(counts) == booked
    assert len(sent) == booked == len(notes)
    assert len({m.contact_id for m in notes}) == booked  # one reminder per booking, none doubled
    await a.engine.dispose()
    await b.engine.dispose()


async def test_crash_recovery_answers_stored_inbound_once(svc: Services) -> None:
    # A worker stored the message and died before answering (simulated: stored, never processed).
    inbound = await svc.pipeline._store(
        PHONE, Inbound(sender=PHONE, body="where are you located?", provider_message_id="SMcrash")
    )
    assert inbound.processed_at is None
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        assert await svc.pipeline.recover() == 1
        assert await svc.pipeline.recover() == 0
        # Twilio's retry of the same webhook gets the first answer, not a second one.
        again = await svc.pipeline.handle(Inbound(sender=PHONE, body="where are you located?",
            provider_message_id="SMcrash"))
    assert again.duplicate
    assert len(sent) == 1 and "12 Maple St" in sent[0]["Body"]
    async with svc.sessions() as db:
        assert len(list(await db.exec(select(Message).where(Message.direction == "in")))) == 1
        c = (await db.exec(select(Contact))).one()
    assert c.phone == PHONE


async def test_no_show_follow_up_is_sent_once(svc: Services) -> None:
    from store.jobs import mark_no_show

    b = await book_tomorrow_3pm(svc)
    svc.clock.advance(hours=31)  # Tuesday 16:00, after the appointment
    async with svc.sessions() as db:
        booking = await db.get(Booking, b.id)
        assert booking is not None
        await mark_no_show(db, booking, svc.clock.now(), follow_up=True)
        await mark_no_show(db, booking, svc.clock.now(), follow_up=True)  # twice: still one job
        await db.commit()
    sent: list[dict[str, str]] = []
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=twilio_ok(sent))
        await svc.scheduler.run_due()
        await svc.scheduler.run_due()
    assert len(sent) == 1 and "missed you" in sent[0]["Body"]
    assert [j.status for j in await jobs(svc) if j.kind == "reminder"] == ["cancelled", "cancelled"]
