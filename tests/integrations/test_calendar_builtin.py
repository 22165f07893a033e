"""The builtin calendar over the Booking table, the shared calendar helpers, and iCalendar reading."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.calendar.base import BookingInfo, CalendarAdapter, guarded_write, merge_busy
from integrations.calendar.builtin import BuiltinCalendar
from integrations.calendar.ical import booking_ics, busy_from_ics, moved_ics
from integrations.errors import CalendarConflict, CalendarNotFound
from store.db import make_engine, make_sessionmaker
from store.models import Booking, Contact
from tools.availability import Busy

NY = ZoneInfo("America/New_York")
START = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)
END = START + dt.timedelta(minutes=45)
NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(sqlite_url)
    maker = make_sessionmaker(engine)
    async with maker() as s:
        contact = Contact(phone="+12125550123")
        s.add(contact)
        await s.flush()
        s.add(
            Booking(
                id="bk_kim",
                contact_id=contact.id or 0,
                service="haircut",
                provider="Kim",
                start=START,
                end=END,
            )
        )
        s.add(
            Booking(
                id="bk_old",
                contact_id=contact.id or 0,
                service="haircut",
                provider="Luis",
                start=START,
                end=END,
                status="cancelled",
            )
        )
        await s.commit()
    yield maker
    await engine.dispose()


async def test_builtin_busy_create_move_cancel(sessions: async_sessionmaker[AsyncSession]) -> None:
    cal = BuiltinCalendar(sessions)
    assert isinstance(cal, CalendarAdapter)
    busy = await cal.busy(START - dt.timedelta(hours=1), END + dt.timedelta(hours=1))
    assert [(b.ref, b.provider) for b in busy] == [("bk_kim", "Kim")]  # cancelled bookings are free

    assert await cal.create(BookingInfo("bk_new", "haircut", START, END, "Luis")) == "bk_new"
    with pytest.raises(CalendarConflict):
        await cal.create(BookingInfo("bk_new2", "haircut", START, END, "Kim"))
    with pytest.raises(CalendarConflict):  # no provider = the whole business
        await cal.create(BookingInfo("bk_new3", "haircut", START + dt.timedelta(minutes=30), END, None))
    assert await cal.create(BookingInfo("bk_kim", "haircut", START, END, "Kim")) == "bk_kim"  # its own slot

    await cal.move("bk_kim", START + dt.timedelta(minutes=30), END + dt.timedelta(minutes=30))
    with pytest.raises(CalendarNotFound):
        await cal.move("bk_old", START, END)
    await cal.cancel("bk_kim")
    await cal.aclose()


def test_booking_info_validates_times() -> None:
    with pytest.raises(ValueError):
        BookingInfo("b", "haircut", START.replace(tzinfo=None), END)
    with pytest.raises(ValueError):
        BookingInfo("b", "haircut", END, START)
    info = BookingInfo("b", "haircut", START.astimezone(NY), END.astimezone(NY), "Kim", "Ana")
    assert info.start.tzinfo == dt.UTC and info.summary == "Haircut: Ana with Kim"


def test_merge_busy_keeps_a_mirrored_booking_once() -> None:
    local = [Busy(START, END, "Kim", "bk_1")]
    external = [Busy(START, END, "Kim", "bk_1"), Busy(START, END, None, None), Busy(START, END, None, None)]
    merged = merge_busy(local, external)
    assert [(b.provider, b.ref) for b in merged] == [(None, None), (None, None), ("Kim", "bk_1")]


async def test_guarded_write_undoes_a_contested_write_and_retries_after_a_pause() -> None:
    undone: list[str] = []
    pauses: list[int] = []
    rounds = iter([True, False])  # contested once (both writers backed off), then clear

    async def free() -> bool:
        return False

    async def write() -> str:
        return f"ev{len(undone) + 1}"

    async def contested(_: str) -> bool:
        return next(rounds)

    async def undo(written: str) -> None:
        undone.append(written)

    async def pause(attempt: int) -> None:
        pauses.append(attempt)

    kw = dict(taken=free, write=write, undo=undo, what="t", pause=pause)
    assert await guarded_write(asyncio.Lock(), contested=contested, **kw) == "ev2"  # type: ignore[arg-type]
    assert (undone, pauses) == (["ev1"], [1])

    async def always(_: str) -> bool:
        return True

    with pytest.raises(CalendarConflict, match="same time"):
        await guarded_write(asyncio.Lock(), contested=always, attempts=3, **kw)  # type: ignore[arg-type]
    assert len(undone) == 4 and pauses == [1, 1, 2]


def _ics(body: str) -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nBEGIN:VEVENT\r\n"
    return f"{head}UID:u\r\nDTSTAMP:20260301T000000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"


def test_ical_reading_rules() -> None:
    floating = busy_from_ics([_ics("DTSTART:20260303T150000\r\nDURATION:PT30M\r\n")], NY)
    assert [(b.start, b.end) for b in floating] == [(START, START + dt.timedelta(minutes=30))]  # read in NY
    assert busy_from_ics([_ics("DTSTART:20260303T200000Z\r\n")], NY) == []  # no end: takes no time
    one_day = busy_from_ics([_ics("DTSTART;VALUE=DATE:20260303\r\n")], NY)
    assert [(b.start.hour, b.end - b.start) for b in one_day] == [(5, dt.timedelta(days=1))]
    tagged = busy_from_ics(
        [_ics("DTSTART:20260303T200000Z\r\nDTEND:20260303T210000Z\r\nX-TEXTDESK-PROVIDER:luis\r\n")],
        NY,
        providers=["Kim", "Luis"],
    )
    assert tagged[0].provider == "Luis"


def test_booking_ics_round_trip_and_move() -> None:
    info = BookingInfo("bk_9", "color", START, END, "Kim", "Ana", "+12125550123")
    ics = booking_ics(info, NOW)
    assert "UID:bk_9" in ics and "X-TEXTDESK-BOOKING-ID:bk_9" in ics and "TRANSP:OPAQUE" in ics
    assert [(b.start, b.end, b.provider, b.ref) for b in busy_from_ics([ics], NY)] == [
        (START, END, "Kim", "bk_9")
    ]
    later = START + dt.timedelta(hours=1)
    moved = moved_ics(ics, later, later + dt.timedelta(minutes=45), NOW)
    assert "SEQUENCE:1" in moved
    assert [(b.start, b.ref) for b in busy_from_ics([moved], NY)] == [(later, "bk_9")]


class CountingCalendar:
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[tuple[dt.datetime, dt.datetime]] = []

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        self.calls.append((start, end))
        return [Busy(START, END, "Kim", "bk_1")]

    async def create(self, booking: BookingInfo) -> str:
        return booking.booking_id

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        return None

    async def cancel(self, external_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_caching_calendar_serves_a_fresh_window_and_drops_it_on_writes() -> None:
    from integrations.calendar.cache import CachingCalendar
    from textdesk.clock import FrozenClock

    clock = FrozenClock(NOW)
    inner = CountingCalendar()
    cal = CachingCalendar(inner, ttl=dt.timedelta(seconds=60), clock=clock)
    day = (START - dt.timedelta(hours=12), START + dt.timedelta(hours=12))
    assert len(await cal.busy(*day)) == 1
    assert (
        await cal.busy(START - dt.timedelta(hours=3), START - dt.timedelta(hours=1)) == []
    )  # inside: no call
    assert len(inner.calls) == 1
    await cal.busy(day[0], day[1] + dt.timedelta(days=1))  # wider: one fetch of the union
    assert inner.calls[-1] == (day[0], day[1] + dt.timedelta(days=1))
    clock.advance(seconds=61)
    await cal.busy(*day)  # stale: refetched
    await cal.create(BookingInfo("bk_2", "haircut", START, END))
    await cal.busy(*day)  # a write drops the cache
    assert len(inner.calls) == 4


async def test_escalation_hook_emits_a_crm_event(sessions: async_sessionmaker[AsyncSession]) -> None:
    from integrations.crm.hooks import escalation_hook
    from integrations.crm.sink import MemorySink
    from store.models import Conversation
    from textdesk.clock import FrozenClock

    async with sessions() as s:
        conv = Conversation(contact_id=1)
        s.add(conv)
        await s.commit()
        conv_id = conv.id or 0
    sink = MemorySink()
    hook = escalation_hook(sessions, sink, FrozenClock(NOW))
    await hook(conv_id, "billing", "Asked about a refund")
    await hook(99999, "other", "no such conversation")  # logged, never raised
    assert [
        (e.type, e.contact.phone, e.escalation.reason if e.escalation else None) for e in sink.events
    ] == [("conversation.escalated", "+12125550123", "billing")]
