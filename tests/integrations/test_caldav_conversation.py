"""A booking conversation over the CalDAV adapter (real Radicale): an event someone adds in the
calendar removes that time from the offers, and a race for the last slot ends in one booking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select

from store.models import Booking
from tests.conftest import MONDAY_9AM, make_settings
from tests.integrations.test_caldav_radicale import _new_calendar, _other_client, _put_raw, radicale  # noqa: F401
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import Services, build_services

_n = iter(range(10**9))


async def say(s: Services, body: str, phone: str) -> Any:
    return await s.pipeline.handle(Inbound(sender=phone, body=body, provider_message_id=f"SMcal{next(_n)}"))


@pytest.fixture
async def caldav_services(radicale: str, sqlite_url: str) -> AsyncIterator[tuple[Services, str]]:  # noqa: F811
    url = _new_calendar(radicale)
    svc = build_services(
        make_settings(
            sqlite_url,
            calendar="caldav",
            caldav_url=url,
            caldav_username="salon",
            caldav_password="secret",
            calendar_cache_s=0,
        ),
        clock=FrozenClock(MONDAY_9AM),
    )
    yield svc, url
    await svc.close()


async def test_hand_added_event_blocks_the_offer(caldav_services: tuple[Services, str]) -> None:
    svc, url = caldav_services
    before = await say(svc, "can i get a haircut tomorrow?", "+12125550101")
    assert "9:00 AM" in (before.reply or "")
    # The owner blocks Tuesday 09:00-10:30 for everyone, straight in their calendar app.
    _put_raw(
        url,
        "staff-meeting",
        "SUMMARY:Staff meeting\r\nDTSTART;TZID=America/New_York:20260303T090000\r\n"
        "DTEND;TZID=America/New_York:20260303T103000\r\n",
    )
    after = await say(svc, "can i get a haircut tomorrow?", "+12125550102")
    assert "9:00 AM" not in (after.reply or "") and "9:30 AM" not in (after.reply or "")
    assert "10:30 AM" in (after.reply or "")


async def test_booking_is_written_to_the_calendar(caldav_services: tuple[Services, str]) -> None:
    svc, url = caldav_services
    await say(svc, "haircut with kim tomorrow at 2pm", "+12125550103")
    r = await say(svc, "yes", "+12125550103")
    assert r.tools and r.tools[0]["name"] == "create_booking"
    async with svc.sessions() as db:
        (b,) = list(await db.exec(select(Booking)))
    events = _other_client(url).calendar(url=url).events()
    assert len(events) == 1 and b.id in events[0].data and b.external_id


async def test_race_for_the_last_slot_ends_in_one_booking(caldav_services: tuple[Services, str]) -> None:
    svc, url = caldav_services
    # Luis is away all Tuesday; Kim has one free 45-minute window left at 17:00.
    _put_raw(
        url,
        "luis-off",
        "SUMMARY:Luis off\r\nDTSTART;TZID=America/New_York:20260303T090000\r\n"
        "DTEND;TZID=America/New_York:20260303T180000\r\nDESCRIPTION:provider: Luis\r\n"
        "CATEGORIES:Luis\r\n",
    )
    _put_raw(
        url,
        "kim-busy",
        "SUMMARY:Kim busy\r\nDTSTART;TZID=America/New_York:20260303T090000\r\n"
        "DTEND;TZID=America/New_York:20260303T170000\r\n",
    )
    phones = ["+12125550104", "+12125550105"]
    for p in phones:
        first = await say(svc, "haircut tomorrow at 5pm", p)
        assert "Reply YES" in (first.reply or "")
    results = await asyncio.gather(*(say(svc, "yes", p) for p in phones))
    created = [r for r in results if any(t["name"] == "create_booking" for t in r.tools)]
    assert len(created) == 1
    loser = next(r for r in results if r not in created)
    assert "isn't available" in (loser.reply or "") or "Open times" in (loser.reply or "")
    async with svc.sessions() as db:
        assert len(list(await db.exec(select(Booking).where(Booking.status == "active")))) == 1
