"""Injectable time. Everything asks a Clock for "now"; evals freeze it."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock", "as_aware"]


def as_aware(value: dt.datetime) -> dt.datetime:
    """A stored time, timezone-aware: SQLite hands datetimes back naive (and aggregates such as
    MIN() always do); every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock that stands still until told to move (evals, tests)."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._at = at.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, **delta: float) -> None:
        self._at += dt.timedelta(**delta)
