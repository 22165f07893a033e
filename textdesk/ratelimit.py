"""Sliding-window rate limits per key, in process memory.

Good for one worker; several workers share limits through the database count in the
pipeline's caller when configured. Time comes from the caller so evals can freeze it.
"""

from __future__ import annotations

import datetime as dt
from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    def __init__(self, limit: int, window: dt.timedelta, max_keys: int = 100_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: dict[str, deque[dt.datetime]] = {}

    def hit(self, key: str, now: dt.datetime) -> bool:
        """Record a hit; True when it is within the limit."""
        q = self._hits.get(key)
        if q is None:
            if len(self._hits) >= self.max_keys:
                self._evict(now)
            q = self._hits[key] = deque()
        while q and now - q[0] >= self.window:
            q.popleft()
        q.append(now)
        return len(q) <= self.limit

    def _evict(self, now: dt.datetime) -> None:
        stale = [k for k, q in self._hits.items() if not q or now - q[-1] >= self.window]
        for k in stale:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:  # still full: drop the oldest half
            for k in list(self._hits)[: self.max_keys // 2]:
                del self._hits[k]
