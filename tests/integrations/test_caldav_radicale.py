"""The CalDAV adapter against a real Radicale server on 127.0.0.1 (temp storage, no auth)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import caldav
import httpx
import pytest

from integrations.calendar.base import BookingInfo
from integrations.calendar.caldav_adapter import CalDAVCalendar, CalDAVConfig
from integrations.errors import CalendarConflict, CalendarNotFound, CalendarUnavailable
from textdesk.business import Business, load_business
from textdesk.settings import DEMO_BUSINESS_FILE
from tools.availability import find_slots

NY = dt.timezone(dt.timedelta(hours=-5))  # March 2-6 2026 is EST
NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)  # Monday 09:00 in New York
TUESDAY = dt.date(2026, 3, 3)
DAY_START = dt.datetime(2026, 3, 3, 5, 0, tzinfo=dt.UTC)
DAY_END = DAY_START + dt.timedelta(days=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("radicale")
    port = _free_port()
    config = root / "config"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        "[auth]\ntype = none\n"
        f"[storage]\nfilesystem_folder = {root / 'collections'}\n"
        "[rights]\ntype = owner_only\n"
        "[logging]\nlevel = warning\n",
        encoding="utf-8",
    )
    log = (root / "radicale.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "radicale", "-C", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                httpx.get(url, timeout=0.5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Radicale did not start: {(root / 'radicale.log').read_text()}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _other_client(url: str) -> Any:
    """Another CalDAV client: a person adding events in their calendar app."""
    return caldav.DAVClient(url=url, username="salon", password="secret")


def _new_calendar(server: str) -> str:
    name = f"cal-{uuid.uuid4().hex[:8]}"
    return str(_other_client(server).principal().make_calendar(name=name, cal_id=name).url)


@pytest.fixture
def calendar_url(radicale: str) -> str:
    return _new_calendar(radicale)


@pytest.fixture
def business() -> Business:
    return load_business(DEMO_BUSINESS_FILE)


def _adapter(url: str, business: Business, **config: Any) -> CalDAVCalendar:
    cfg = CalDAVConfig(url=url, username="salon", password="secret", **config)
    return CalDAVCalendar(cfg, business.tz, providers=business.providers)


def _booking(
    bid: str, hour: int, minute: int = 0, minutes: int = 45, provider: str | None = "Kim"
) -> BookingInfo:
    start = dt.datetime(2026, 3, 3, hour, minute, tzinfo=NY)
    return BookingInfo(
        bid, "haircut", start, start + dt.timedelta(minutes=minutes), provider, "Ana", "+12125550123"
    )


def _put_raw(calendar: str, uid: str, lines: str) -> None:
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//someone else//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260301T120000Z\r\n{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    cal = _other_client(calendar).calendar(url=calendar)
    cal.add_event(ics) if hasattr(cal, "add_event") else cal.save_event(ics)


def _slots(business: Business, busy: Any, provider: str | None = None) -> list[dt.time]:
    return find_slots(business, busy, "haircut", TUESDAY, NOW, provider=provider, limit=100)


async def test_create_busy_move_cancel_round_trip(calendar_url: str, business: Business) -> None:
    cal = _adapter(calendar_url, business)
    ext = await cal.create(_booking("bk_round1", 15))
    assert ext.startswith(calendar_url) and ext.endswith("bk_round1.ics")

    # Another client sees an event whose UID is the booking id.
    ev = _other_client(calendar_url).calendar(url=calendar_url).event_by_url(ext)
    comp = ev.icalendar_instance.walk("VEVENT")[0]
    assert str(comp["UID"]) == "bk_round1"
    assert str(comp["X-TEXTDESK-BOOKING-ID"]) == "bk_round1"

    busy = await cal.busy(DAY_START, DAY_END)
    assert [(b.start, b.end, b.provider, b.ref) for b in busy] == [
        (
            dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC),
            dt.datetime(2026, 3, 3, 20, 45, tzinfo=dt.UTC),
            "Kim",
            "bk_round1",
        )
    ]

    # Move by 30 minutes: overlapping its own old slot is fine.
    new_start = dt.datetime(2026, 3, 3, 15, 30, tzinfo=NY)
    await cal.move(ext, new_start, new_start + dt.timedelta(minutes=45))
    busy = await cal.busy(DAY_START, DAY_END)
    assert [(b.start, b.ref) for b in busy] == [(new_start.astimezone(dt.UTC), "bk_round1")]
    moved = _other_client(calendar_url).calendar(url=calendar_url).event_by_url(ext)
    assert int(moved.icalendar_instance.walk("VEVENT")[0]["SEQUENCE"]) == 1

    await cal.cancel(ext)
    assert await cal.busy(DAY_START, DAY_END) == []
    await cal.cancel(ext)  # idempotent
    with pytest.raises(CalendarNotFound):
        await cal.move(ext, new_start, new_start + dt.timedelta(minutes=45))
    await cal.aclose()


async def test_event_added_directly_in_the_calendar_blocks_the_offer(
    calendar_url: str, business: Business
) -> None:
    cal = _adapter(calendar_url, business)
    before = _slots(business, await cal.busy(DAY_START, DAY_END))
    assert dt.time(10, 0) in before and dt.time(9, 30) in before

    # Staff add "Team meeting" 10:00-11:00 New York time in their own calendar app.
    _put_raw(
        calendar_url,
        "staff-meeting",
        "DTSTART;TZID=America/New_York:20260303T100000\r\n"
        "DTEND;TZID=America/New_York:20260303T110000\r\nSUMMARY:Team meeting\r\n",
    )
    busy = await cal.busy(DAY_START, DAY_END)
    assert [(b.start, b.end, b.provider, b.ref) for b in busy] == [
        (dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC), dt.datetime(2026, 3, 3, 16, tzinfo=dt.UTC), None, None)
    ]
    after = _slots(business, busy)
    for gone in (dt.time(9, 30), dt.time(10, 0), dt.time(10, 30)):  # a 45-min haircut would overlap
        assert gone in before and gone not in after
    assert dt.time(9, 0) in after and dt.time(11, 0) in after

    # And creating a booking into it is refused.
    with pytest.raises(CalendarConflict):
        await cal.create(_booking("bk_clash", 10, provider="Luis"))


async def test_transparent_cancelled_all_day_and_provider_tagged_events(
    calendar_url: str, business: Business
) -> None:
    cal = _adapter(calendar_url, business)
    _put_raw(
        calendar_url,
        "free-time",
        "DTSTART:20260303T150000Z\r\nDTEND:20260303T160000Z\r\nTRANSP:TRANSPARENT\r\n",
    )
    _put_raw(
        calendar_url,
        "called-off",
        "DTSTART:20260303T160000Z\r\nDTEND:20260303T170000Z\r\nSTATUS:CANCELLED\r\n",
    )
    _put_raw(
        calendar_url,
        "kim-dentist",
        "DTSTART:20260303T170000Z\r\nDTEND:20260303T180000Z\r\nCATEGORIES:Kim\r\n",
    )
    busy = await cal.busy(DAY_START, DAY_END)
    assert [(b.provider, b.start.hour) for b in busy] == [("Kim", 17)]
    assert dt.time(12, 0) not in _slots(business, busy, "Kim")  # 12:00 NY = 17:00 UTC
    assert dt.time(12, 0) in _slots(business, busy, "Luis")

    # An opaque all-day event (e.g. "Closed for inventory") blocks the whole business day.
    _put_raw(calendar_url, "closed", "DTSTART;VALUE=DATE:20260303\r\nDTEND;VALUE=DATE:20260304\r\n")
    busy = await cal.busy(DAY_START, DAY_END)
    day = [b for b in busy if b.provider is None]
    assert [(b.start, b.end) for b in day] == [(DAY_START, DAY_END)]  # midnight to midnight in New York
    assert _slots(business, busy) == []
    # ...but an all-day holiday shown as free blocks nothing on the next day.
    _put_raw(calendar_url, "holiday", "DTSTART;VALUE=DATE:20260304\r\nTRANSP:TRANSPARENT\r\n")
    assert await cal.busy(DAY_END, DAY_END + dt.timedelta(days=1)) == []


async def test_race_for_the_last_slot_books_exactly_once(calendar_url: str, business: Business) -> None:
    cal = _adapter(calendar_url, business)
    results = await asyncio.gather(
        cal.create(_booking("bk_race_a", 14, provider=None)),
        cal.create(_booking("bk_race_b", 14, provider=None)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, CalendarConflict)]
    assert len(won) == 1 and len(lost) == 1, results
    busy = await cal.busy(DAY_START, DAY_END)
    assert len(busy) == 1 and busy[0].ref in {"bk_race_a", "bk_race_b"}
    objects = _other_client(calendar_url).calendar(url=calendar_url).events()
    assert len(objects) == 1


async def test_race_between_two_processes_never_double_books(calendar_url: str, business: Business) -> None:
    """Two adapters (as two workers would have) share no lock: the post-write check still holds,
    and the random pause after a mutual back-off lets one of them through."""
    wins = 0
    for round_ in range(3):
        first, second = _adapter(calendar_url, business), _adapter(calendar_url, business)
        hour = 9 + 2 * round_
        results = await asyncio.gather(
            first.create(_booking(f"bk_p{round_}a", hour, provider=None)),
            second.create(_booking(f"bk_p{round_}b", hour, provider=None)),
            return_exceptions=True,
        )
        assert all(isinstance(r, str | CalendarConflict) for r in results), results
        start = dt.datetime(2026, 3, 3, hour, tzinfo=NY)
        kept = [b for b in await first.busy(start, start + dt.timedelta(minutes=45))]
        assert len(kept) == sum(isinstance(r, str) for r in results) <= 1
        wins += len(kept)
    assert wins >= 1


async def test_per_provider_calendars(radicale: str, calendar_url: str, business: Business) -> None:
    kim = _new_calendar(radicale)
    cal = _adapter(calendar_url, business, provider_calendars={"Kim": kim})
    ext = await cal.create(_booking("bk_kim", 11))
    assert ext.startswith(kim)
    # An untagged event in Kim's own calendar is Kim's; it does not block Luis.
    _put_raw(kim, "kim-lunch", "DTSTART:20260303T170000Z\r\nDTEND:20260303T180000Z\r\nSUMMARY:Lunch\r\n")
    busy = await cal.busy(DAY_START, DAY_END)
    assert {(b.provider, b.start.hour, b.ref) for b in busy} == {("Kim", 16, "bk_kim"), ("Kim", 17, None)}
    with pytest.raises(CalendarConflict):
        await cal.create(_booking("bk_kim2", 12, 15))
    assert await cal.create(_booking("bk_luis", 12, 15, provider="Luis"))


async def test_unreachable_server_is_calendar_unavailable(business: Business, tmp_path: Path) -> None:
    cal = _adapter(f"http://127.0.0.1:{_free_port()}/salon/cal/", business)
    with pytest.raises(CalendarUnavailable):
        await cal.busy(DAY_START, DAY_END)
