"""When textdesk may start a conversation: quiet hours in the recipient's local time.

The recipient's zone comes from the number (phonenumbers' area-code zones), else the business
zone. Florida (FS 501.059) and Oklahoma (15 O.S. 775C.4) allow telephonic sales messages only
08:00-20:00 local, stricter than the business default, so numbers from their area codes get
that window whatever the business file says.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from textdesk.business import Business
from textdesk.phone import phone_timezones

__all__ = ["STRICT_AREA_CODES", "next_allowed", "recipient_zone"]

STRICT_AREA_CODES = frozenset(
    {
        # Florida
        "239",
        "305",
        "321",
        "324",
        "352",
        "386",
        "407",
        "448",
        "561",
        "645",
        "656",
        "689",
        "727",
        "728",
        "754",
        "772",
        "786",
        "813",
        "850",
        "863",
        "904",
        "941",
        "954",
        # Oklahoma
        "405",
        "539",
        "572",
        "580",
        "918",
    }
)
_STRICT_WINDOW = (dt.time(20, 0), dt.time(8, 0))


def recipient_zone(phone: str, business: Business) -> ZoneInfo:
    zones = phone_timezones(phone)
    return ZoneInfo(zones[0]) if zones else business.tz


def _quiet_window(phone: str, business: Business) -> tuple[dt.time, dt.time]:
    if phone.startswith("+1") and phone[2:5] in STRICT_AREA_CODES:
        start, end = business.quiet_span()
        # Take whichever is stricter at each end.
        return (min(start, _STRICT_WINDOW[0]), max(end, _STRICT_WINDOW[1]))
    return business.quiet_span()


def _in_window(t: dt.time, start: dt.time, end: dt.time) -> bool:
    return (start <= t or t < end) if start > end else (start <= t < end)


def next_allowed(now: dt.datetime, phone: str, business: Business) -> dt.datetime:
    """``now`` if a message may go out now, else the first moment quiet hours end (aware UTC)."""
    zone = recipient_zone(phone, business)
    local = now.astimezone(zone)
    start, end = _quiet_window(phone, business)
    if not _in_window(local.time(), start, end):
        return now
    day = local.date() if local.time() < end else local.date() + dt.timedelta(days=1)
    # Building from the wall-clock time keeps DST right: 08:00 is 08:00 on either side of a switch.
    return dt.datetime.combine(day, end, zone).astimezone(dt.UTC)
