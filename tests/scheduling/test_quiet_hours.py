"""Quiet hours in the recipient's local time, DST, and the stricter Florida/Oklahoma window."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from textdesk.business import load_business
from textdesk.quiet import next_allowed, recipient_zone
from textdesk.settings import DEMO_BUSINESS_FILE

B = load_business(DEMO_BUSINESS_FILE)  # quiet 21:00-08:00, America/New_York
NY, LA, CHI = ZoneInfo("America/New_York"), ZoneInfo("America/Los_Angeles"), ZoneInfo("America/Chicago")


def at(zone: ZoneInfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("phone", "now", "expected"),
    [
        ("+12125550123", at(NY, 2026, 3, 3, 12, 0), at(NY, 2026, 3, 3, 12, 0)),  # midday: now
        ("+12125550123", at(NY, 2026, 3, 3, 21, 30), at(NY, 2026, 3, 4, 8, 0)),  # evening: next morning
        ("+12125550123", at(NY, 2026, 3, 4, 6, 0), at(NY, 2026, 3, 4, 8, 0)),  # early: same morning
        # A Los Angeles number at 21:30 LA time is quiet even though it is 00:30 in New York.
        ("+14155550123", at(LA, 2026, 3, 3, 21, 30), at(LA, 2026, 3, 4, 8, 0)),
        # ...and at 19:00 LA time it is fine, although the business (NY) is already at 22:00.
        ("+14155550123", at(LA, 2026, 3, 3, 19, 0), at(LA, 2026, 3, 3, 19, 0)),
        # Florida: 20:30 is already quiet there (08:00-20:00 rule).
        ("+13055550123", at(NY, 2026, 3, 3, 20, 30), at(NY, 2026, 3, 4, 8, 0)),
        ("+12125550123", at(NY, 2026, 3, 3, 20, 30), at(NY, 2026, 3, 3, 20, 30)),
        # Oklahoma (Central time) likewise.
        ("+14055550123", at(CHI, 2026, 3, 3, 20, 15), at(CHI, 2026, 3, 4, 8, 0)),
        # DST: the night of 7-8 March 2026 loses an hour; 08:00 local is still 08:00 local.
        ("+12125550123", at(NY, 2026, 3, 7, 23, 0), at(NY, 2026, 3, 8, 8, 0)),
        ("+12125550123", at(NY, 2026, 10, 31, 22, 0), at(NY, 2026, 11, 1, 8, 0)),
        # A UK number is quiet by London time: 22:00 in New York is 03:00 there.
        ("+442071838750", at(NY, 2026, 3, 3, 22, 0), at(dt.UTC, 2026, 3, 4, 8, 0)),
    ],
)
def test_next_allowed(phone: str, now: dt.datetime, expected: dt.datetime) -> None:
    assert next_allowed(now, phone, B) == expected


def test_dst_morning_is_eight_local_in_both_offsets() -> None:
    before = next_allowed(at(NY, 2026, 3, 7, 22, 0), "+12125550123", B)
    assert before.astimezone(NY).hour == 8 and before.astimezone(NY).utcoffset() == dt.timedelta(hours=-4)


def test_recipient_zone_from_number() -> None:
    assert recipient_zone("+14155550123", B).key == "America/Los_Angeles"
    assert recipient_zone("+12125550123", B).key == "America/New_York"
