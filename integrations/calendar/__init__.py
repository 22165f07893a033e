"""Calendar adapters behind ``CalendarAdapter`` (see ``base``)."""

from integrations.calendar.base import BookingInfo, CalendarAdapter, guarded_write, merge_busy
from integrations.errors import CalendarConflict, CalendarNotFound, CalendarUnavailable

__all__ = [
    "BookingInfo",
    "CalendarAdapter",
    "CalendarConflict",
    "CalendarNotFound",
    "CalendarUnavailable",
    "guarded_write",
    "merge_busy",
]
