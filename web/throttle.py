"""Login throttling: failed attempts counted per account and per client IP in a sliding window.

In memory, per process: with N workers an attacker gets at most N times the budget, and a
restart forgets the counts. That is enough to stop online guessing against argon2 hashes; a
shared store (Redis, a table) would make the limit exact across workers.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LoginThrottle"]

_MAX_KEYS = 50_000  # bound memory under a spray of random emails


@dataclass
class LoginThrottle:
    max_account_failures: int = 5
    max_ip_failures: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)
    _fails: dict[str, deque[dt.datetime]] = field(default_factory=dict)

    def _recent(self, key: str, now: dt.datetime) -> deque[dt.datetime]:
        hits = self._fails.get(key)
        if hits is None:
            return deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if not hits:
            del self._fails[key]
        return hits

    def retry_after(self, ip: str, email: str, now: dt.datetime) -> int | None:
        """Seconds until a login may be tried again, or None when it may be tried now."""
        waits = []
        for key, limit in (
            (f"ip:{ip}", self.max_ip_failures),
            (f"acct:{email.lower()}", self.max_account_failures),
        ):
            hits = self._recent(key, now)
            if len(hits) >= limit:
                waits.append(hits[-limit] + self.window - now)
        if not waits:
            return None
        return max(1, int(max(waits).total_seconds()) + 1)

    def failed(self, ip: str, email: str, now: dt.datetime) -> None:
        if len(self._fails) >= _MAX_KEYS:
            self._fails.pop(next(iter(self._fails)))
        for key in (f"ip:{ip}", f"acct:{email.lower()}"):
            self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, email: str) -> None:
        """A correct password clears the account's count (not the IP's: one good login from a
        shared address does not buy another round of guesses against other accounts)."""
        self._fails.pop(f"acct:{email.lower()}", None)
