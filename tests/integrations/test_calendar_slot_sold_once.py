"""A slot is sold once with an external calendar too (issue 15.3): CalDAV (a real Radicale),
Google (a stateful fake of its REST API), and a calendar that sees no clash at all, where the
database's no-overlap rule is the last line. Two workers on PostgreSQL, twenty customers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import respx

from integrations.calendar.base import BookingInfo
from tests.integrations.fake_google import FakeGoogleCalendar
from tests.integrations.test_caldav_radicale import _new_calendar, radicale  # noqa: F401
from tests.slot_storm import one_per_provider_slot, same_slot_storm, workers
from textdesk.services import Services
from tools.availability import Busy


class BlindCalendar:
    """An external calendar that never reports a clash (its writes show up late, say): whatever
    it says, the database must still sell each slot once."""

    name = "blind"

    def __init__(self) -> None:
        self.created: list[BookingInfo] = []

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        return []

    async def create(self, booking: BookingInfo) -> str:
        self.created.append(booking)
        return f"blind/{booking.booking_id}"

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        return None

    async def cancel(self, external_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.fixture
def google() -> Iterator[FakeGoogleCalendar]:
    fake = FakeGoogleCalendar()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        yield fake


async def test_with_caldav(pg_url: str, radicale: str) -> None:  # noqa: F811
    url = _new_calendar(radicale)
    async with workers(pg_url, calendar="caldav", caldav_url=url, caldav_username="salon",
                       caldav_password="secret", calendar_cache_s=0) as w:
        assert w.services[0].pipeline.calendar is not None
        await same_slot_storm(w, 20, rounds=1)
        one_per_provider_slot(await w.bookings())


async def test_with_google(pg_url: str, google: FakeGoogleCalendar) -> None:
    async with workers(pg_url, calendar="google", google_token="ya29.test", calendar_cache_s=0) as w:
        assert w.services[0].pipeline.calendar is not None
        await same_slot_storm(w, 20, rounds=1)
        rows = await w.bookings()
        one_per_provider_slot(rows)
        live = google.live("primary")
        ours = {e["extendedProperties"]["private"]["textdesk_booking_id"] for e in live}
        assert ours == {b.id for b in rows}  # the calendar holds exactly the bookings that stand


async def test_database_is_the_last_line_behind_a_blind_calendar(pg_url: str) -> None:
    blind = BlindCalendar()

    def configure(s: Services) -> None:
        s.pipeline.calendar = blind

    async with workers(pg_url, configure) as w:
        await same_slot_storm(w, 20, rounds=2)
        rows = await w.bookings()
        one_per_provider_slot(rows)
        # A loser's row was refused before the calendar write: no orphan events for them.
        assert {b.booking_id for b in blind.created} == {b.id for b in rows}

