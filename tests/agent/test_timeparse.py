"""Table tests for agent.timeparse: dates, times, bounds, false positives."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from agent.timeparse import (
    When,
    format_date,
    format_time,
    parse_date,
    parse_time,
    parse_when,
)

NY = ZoneInfo("America/New_York")
MON = dt.datetime(2026, 3, 2, 9, 0, tzinfo=NY)  # Monday morning
SUN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=NY)  # Sunday
FRI_EVE = dt.datetime(2026, 3, 6, 19, 45, tzinfo=NY)  # Friday evening
END31 = dt.datetime(2026, 3, 31, 10, 0, tzinfo=NY)  # Tuesday, 31st of the month
DST_SAT = dt.datetime(2026, 3, 7, 23, 30, tzinfo=NY)  # EST, the night before spring-forward
DST_SUN = dt.datetime(2026, 3, 8, 3, 30, tzinfo=NY)  # EDT, just after 2:00 -> 3:00
DEC31 = dt.datetime(2026, 12, 31, 15, 0, tzinfo=NY)  # Thursday, last day of the year


def d(month: int, day: int, year: int = 2026) -> dt.date:
    return dt.date(year, month, day)


def t(hour: int, minute: int = 0) -> dt.time:
    return dt.time(hour, minute)


DATE_CASES = [
    # relative days
    (MON, "today", d(3, 2)),
    (MON, "can you fit me in 2day", d(3, 2)),
    (MON, "tonight", d(3, 2)),
    (MON, "tomorrow", d(3, 3)),
    (MON, "tmrw", d(3, 3)),
    (MON, "tmr pls", d(3, 3)),
    (MON, "tmw?", d(3, 3)),
    (MON, "2moro", d(3, 3)),
    (MON, "tomorow", d(3, 3)),
    (MON, "tommorow", d(3, 3)),
    (MON, "tomm", d(3, 3)),
    (MON, "Tomorroe works", d(3, 3)),  # one-edit typo
    (MON, "day after tomorrow", d(3, 4)),
    (MON, "the day after tmrw", d(3, 4)),
    (MON, "in 3 days", d(3, 5)),
    (MON, "in three days", d(3, 5)),
    (MON, "in a couple of days", d(3, 4)),
    (MON, "in a week", d(3, 9)),
    (MON, "in 2 weeks", d(3, 16)),
    (MON, "next week", None),  # no invented date
    (MON, "sometime next week?", None),
    (MON, "this weekend", d(3, 7)),
    (SUN, "this weekend", d(3, 1)),
    (MON, "next weekend", d(3, 14)),
    (MON, "this afternoon", d(3, 2)),
    # weekdays: nearest strictly after today
    (MON, "monday", d(3, 9)),
    (MON, "mon", d(3, 9)),
    (MON, "tues", d(3, 3)),
    (MON, "tue", d(3, 3)),
    (MON, "wed", d(3, 4)),
    (MON, "weds", d(3, 4)),
    (MON, "wensday", d(3, 4)),
    (MON, "wendesday", d(3, 4)),
    (MON, "thu", d(3, 5)),
    (MON, "thurs", d(3, 5)),
    (MON, "thrusday", d(3, 5)),
    (MON, "fri", d(3, 6)),
    (MON, "on saturday", d(3, 7)),
    (MON, "Sunday", d(3, 8)),
    (MON, "tusday", d(3, 3)),
    (MON, "this friday", d(3, 6)),
    (FRI_EVE, "friday", d(3, 13)),
    (FRI_EVE, "this friday", d(3, 13)),
    (SUN, "sunday", d(3, 8)),
    (SUN, "monday", d(3, 2)),
    # "next X": following Mon-Sun week if X is still ahead this week
    (MON, "next friday", d(3, 13)),
    (MON, "next tues", d(3, 10)),
    (MON, "next monday", d(3, 9)),
    (FRI_EVE, "next thursday", d(3, 12)),
    (FRI_EVE, "next saturday", d(3, 14)),
    (SUN, "next tuesday", d(3, 3)),
    (MON, "friday next week", d(3, 13)),
    (MON, "next week on wed", d(3, 11)),
    (MON, "last friday", None),
    (MON, "every monday", None),
    (MON, "are you open on mondays", None),
    # ambiguous sat/sun need date context
    (MON, "sat at 3", d(3, 7)),
    (MON, "sat or sun", d(3, 7)),
    (MON, "sun 10am", d(3, 8)),
    (MON, "sun", d(3, 8)),
    (MON, "I sat down for an hour", None),
    (MON, "out in the sun at 3", None),
    (MON, "money is tight", None),
    (MON, "monkey", None),
    (MON, "watch the match 5 times", None),  # "march" gets no fuzzy match
    (MON, "fridays work best", None),
    (MON, "a sundae", None),
    # absolute dates
    (MON, "3/5", d(3, 5)),
    (MON, "3/5/26", d(3, 5)),
    (MON, "03/05/2026", d(3, 5)),
    (MON, "2026-03-05", d(3, 5)),
    (MON, "March 5", d(3, 5)),
    (MON, "mar 5th", d(3, 5)),
    (MON, "5th march", d(3, 5)),
    (MON, "5th of march", d(3, 5)),
    (MON, "march fifth", d(3, 5)),
    (MON, "march twenty-first", d(3, 21)),
    (MON, "febuary 3", d(2, 3, 2027)),  # typo + already passed -> next year
    (MON, "jan 2", d(1, 2, 2027)),
    (MON, "march 31st 2027", d(3, 31, 2027)),
    (MON, "may 5th", d(5, 5)),
    (MON, "may 5", d(5, 5)),
    (MON, "5 may at 2", d(5, 5)),
    (MON, "we are 2 may we come in", None),
    (MON, "feb 29", d(2, 29, 2028)),
    (MON, "feb 30", None),
    (MON, "13/5", None),
    (MON, "2/1", d(2, 1, 2027)),
    (MON, "the 5th", d(3, 5)),
    (MON, "on the 12th", d(3, 12)),
    (MON, "on the first", d(4, 1)),
    (MON, "tuesday the 10th", d(3, 10)),
    (END31, "the 31st", d(3, 31)),
    (END31, "the 30th", d(4, 30)),
    (END31, "the 5th", d(4, 5)),
    (END31, "tomorrow", d(4, 1)),
    (END31, "next monday", d(4, 6)),
    (DEC31, "tomorrow", d(1, 1, 2027)),
    (DEC31, "1/2", d(1, 2, 2027)),
    (DEC31, "the 2nd", d(1, 2, 2027)),
    (DEC31, "dec 31", d(12, 31)),
    # the DST week (America/New_York springs forward 2026-03-08)
    (DST_SAT, "tomorrow", d(3, 8)),
    (DST_SAT, "tonight", d(3, 7)),
    (DST_SUN, "today", d(3, 8)),
    (DST_SUN, "tomorrow", d(3, 9)),
    (DST_SUN, "in a week", d(3, 15)),
    (DST_SUN, "next sunday", d(3, 15)),
    (DST_SUN, "this weekend", d(3, 8)),
    # ordinals that are not days, numbers that are not dates
    (MON, "this is the 5th time I ask", None),
    (MON, "my 3rd visit", None),
    (MON, "the first available", None),
    (MON, "may 2 of us come", None),
    (MON, "1/2 hour", None),
    (MON, "open 24/7?", None),
]


@pytest.mark.parametrize(("now", "text", "expected"), DATE_CASES)
def test_dates(now: dt.datetime, text: str, expected: dt.date | None) -> None:
    assert parse_date(text, now) == expected


TIME_CASES = [
    ("3pm", t(15)),
    ("3 pm", t(15)),
    ("3p", t(15)),
    ("3PM", t(15)),
    ("3:30", t(15, 30)),
    ("15:00", t(15)),
    ("at 1530", t(15, 30)),
    ("at 930", t(9, 30)),
    ("930am", t(9, 30)),
    ("at 3", t(15)),
    ("@3", t(15)),
    ("at 12", t(12)),
    ("at 10", t(10)),
    ("at 7", t(19)),
    ("at 8", t(8)),
    ("3 o'clock", t(15)),
    ("3 oclock", t(15)),
    ("noon", t(12)),
    ("midday", t(12)),
    ("lunchtime", t(12)),
    ("at lunch", t(12)),
    ("half past four in the afternoon", t(16, 30)),
    ("half past 10", t(10, 30)),
    ("quarter past 2", t(14, 15)),
    ("quarter to 5", t(16, 45)),
    ("quarter to 8", t(7, 45)),  # 8 resolves to AM first, then minus 15
    ("quarter of 5", t(16, 45)),
    ("twenty past 3", t(15, 20)),
    ("ten to five", t(16, 50)),
    ("four thirty", t(16, 30)),
    ("nine forty-five", t(9, 45)),
    ("half four", t(16, 30)),
    ("4 in the afternoon", t(16)),
    ("10 in the morning", t(10)),
    ("7 in the morning", t(7)),
    ("7 in the evening", t(19)),
    ("7 at night", t(19)),
    ("7 tonight", t(19)),
    ("2ish", t(14)),
    ("fourish", t(16)),
    ("around 2", t(14)),
    ("about 2:30", t(14, 30)),
    ("abt 11", t(11)),
    ("2:30ish", t(14, 30)),
    ("5:30pm", t(17, 30)),
    ("5.30pm", t(17, 30)),
    ("at 5.30", t(17, 30)),
    ("8am", t(8)),
    ("9 a.m.", t(9)),
    ("9 AM", t(9)),
    ("12am", t(0)),
    ("12pm", t(12)),
    ("11:59pm", t(23, 59)),
    ("8:30", t(8, 30)),
    ("7:30", t(19, 30)),
    ("12:30", t(12, 30)),
    ("at four", t(16)),
    ("at eleven", t(11)),
    ("four pm", t(16)),
    ("tonight at 10", t(22)),
    ("tomorrow morning at 8", t(8)),
    ("tomorrow morning at 11", t(11)),
    ("friday afternoon at 1", t(13)),
    ("tmrw 3", t(15)),
    ("3/5 at 3", t(15)),
    ("at 3 or 4", t(15)),
    ("at 3 for 45 mins", t(15)),
    ("1) 3pm 2) 4pm", t(15)),
    ("Good morning! can I come at 3", t(15)),  # a greeting is not a part of day
    # not times
    ("2", None),
    ("3", None),
    ("3?", None),
    ("four", None),
    ("2 haircuts", None),
    ("for 2 people", None),
    ("tmrw 2 haircuts", None),
    ("$45", None),
    ("$5.30", None),
    ("5.30", None),
    ("45 minutes", None),
    ("call 212-555-0100", None),
    ("call me at 212.555.0100", None),
    ("+12125550123", None),
    ("I'm 30", None),
    ("my email is a3@b.com", None),
    ("room 4", None),
    ("apt 1a", None),
    ("b1", None),
    ("1) haircut 2) color", None),
    ("five to ten people", None),
    ("at 3 locations", None),
    ("after 5", None),  # a bound, not an exact time
    ("lunch", None),
    ("1530", None),
]


@pytest.mark.parametrize(("text", "expected"), TIME_CASES)
def test_times(text: str, expected: dt.time | None) -> None:
    assert parse_when(text, MON).time == expected
    assert parse_time(text) == expected


BOUND_CASES = [
    # text, after, before, part_of_day
    ("after 5", t(17), None, None),
    ("any time after 3pm", t(15), None, None),
    ("anytime after 10", t(10), None, None),
    ("after five", t(17), None, None),
    ("after work", t(17), None, None),
    ("after noon", t(12), None, None),
    ("after lunch", t(13), None, None),
    ("before noon", None, t(12), None),
    ("before lunch", None, t(12), None),
    ("before 10", None, t(10), None),
    ("no later than 5", None, t(17), None),
    ("no earlier than 3", t(15), None, None),
    ("not before 10", t(10), None, None),
    ("between 2 and 4", t(14), t(16), None),
    ("between 11 and 1pm", t(11), t(13), None),
    ("from 10 to 2", t(10), t(14), None),
    ("free from 3", t(15), None, None),
    ("tomorrow morning after 9", t(9), None, "morning"),
    ("morning", None, None, "morning"),
    ("afternoon", None, None, "afternoon"),
    ("evening", None, None, "evening"),
    ("friday afternoon", None, None, "afternoon"),
    ("friday aftn", None, None, "afternoon"),
    ("tomorrow night", None, None, "evening"),
    ("tonight", None, None, "evening"),
    ("tmrw am", None, None, "morning"),
    ("fri pm", None, None, "afternoon"),
    ("mornin works", None, None, "morning"),
    ("good morning", None, None, None),
    ("Morning! do you have anything friday", None, None, None),
    ("last night was great", None, None, None),
    ("4 in the afternoon", None, None, None),  # exact time given -> no part of day
]


@pytest.mark.parametrize(("text", "after", "before", "pod"), BOUND_CASES)
def test_bounds_and_parts_of_day(
    text: str, after: dt.time | None, before: dt.time | None, pod: str | None
) -> None:
    w = parse_when(text, MON)
    assert (w.after, w.before, w.part_of_day) == (after, before, pod)


COMBINED_CASES = [
    (MON, "can i get a haircut tmrw at 3", d(3, 3), t(15), None),
    (MON, "thursday at 2:30", d(3, 5), t(14, 30), None),
    (MON, "friday afternoon", d(3, 6), None, "afternoon"),
    (MON, "next tues 10am", d(3, 10), t(10), None),
    (MON, "can i come in tomorrow at half past 4", d(3, 3), t(16, 30), None),
    (MON, "Do u have anything sat morning", d(3, 7), None, "morning"),
    (MON, "wed at 1", d(3, 4), t(13), None),
    (MON, "2nite at 8", d(3, 2), t(20), None),
    (MON, "March 5 at 10:15am", d(3, 5), t(10, 15), None),
    (MON, "3 this afternoon", d(3, 2), t(15), None),
    (MON, "at 7 tomorrow night", d(3, 3), t(19), None),
    (MON, "for 2 people on the 12th at 6", d(3, 12), t(18), None),
    (SUN, "tmrw 10", d(3, 2), t(10), None),
    (FRI_EVE, "tomorrow 9am", d(3, 7), t(9), None),
    (FRI_EVE, "tonight?", d(3, 6), None, "evening"),
    (END31, "tmrw at noon", d(4, 1), t(12), None),
    (DST_SAT, "tomorrow at 2:30", d(3, 8), t(14, 30), None),
    (DST_SUN, "today at 2ish", d(3, 8), t(14), None),
]


@pytest.mark.parametrize(("now", "text", "date", "time", "pod"), COMBINED_CASES)
def test_combined(
    now: dt.datetime, text: str, date: dt.date, time: dt.time | None, pod: str | None
) -> None:
    w = parse_when(text, now)
    assert (w.date, w.time, w.part_of_day) == (date, time, pod)


@pytest.mark.parametrize(
    ("text", "date_text", "time_text"),
    [
        ("Can I get a haircut TMRW at 3", "TMRW", "3"),
        ("next Tues 10am please", "next Tues", "10am"),
        ("how about after 5 on Friday", "on Friday", "after 5"),
        ("call 212-555-0100 re: 3/5", "3/5", None),
    ],
)
def test_matched_text_keeps_original_spelling(
    text: str, date_text: str | None, time_text: str | None
) -> None:
    w = parse_when(text, MON)
    assert (w.date_text, w.time_text) == (date_text, time_text)


@pytest.mark.parametrize(
    "text",
    ["2", "3", "ok", "yes please", "for 2 people", "$45", "+12125550123", "I'm 30", "b1",
     "my email is a3@b.com", "1) ...", "hi! how much is a haircut?"],
)  # fmt: skip
def test_nothing_found(text: str) -> None:
    assert parse_when(text, MON) == When(None, None, None, None, None, None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(t(15), "3:00 PM"), (t(9, 30), "9:30 AM"), (t(12), "12:00 PM"), (t(0, 5), "12:05 AM")],
)
def test_format_time(value: dt.time, expected: str) -> None:
    assert format_time(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(d(3, 4), "Wed Mar 4"), (d(12, 31), "Thu Dec 31"), (d(3, 8), "Sun Mar 8")],
)
def test_format_date(value: dt.date, expected: str) -> None:
    assert format_date(value) == expected


def test_only_the_local_date_of_now_matters() -> None:
    # 03:30 UTC on Mar 8 is still Saturday evening in New York: callers must pass local time.
    utc = dt.datetime(2026, 3, 8, 3, 30, tzinfo=dt.UTC)
    assert parse_date("tomorrow", utc.astimezone(NY)) == d(3, 8)
    assert parse_date("tomorrow", utc) == d(3, 9)
