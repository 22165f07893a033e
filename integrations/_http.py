"""Outbound HTTP shared by the Google, HubSpot, Stripe and webhook adapters.

One ``httpx.AsyncClient`` per upstream with an explicit timeout, and one retry policy:
bounded attempts, jittered exponential backoff, ``Retry-After`` honoured. A server that asks
us to wait longer than the policy allows ends the retries (we never retry sooner than asked);
the caller then turns the last failure into its own typed error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

__all__ = ["RetryPolicy", "RetryableStatus", "make_client", "parse_retry_after"]

Sleep = Callable[[float], Awaitable[None]]


class RetryableStatus(Exception):
    """A response worth retrying (429, 5xx, a rate-limit 403); carries the server's wish to wait."""

    def __init__(self, status: int, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status
        self.retry_after = retry_after
        self.detail = detail


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


class _AskedTooLong(stop_base):
    """Stop when the server asks us to wait longer than the policy allows (never retry early)."""

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = getattr(exc, "retry_after", None)
        return wait is not None and wait > self.max_wait


def _wait(base: float, max_wait: float) -> Callable[[RetryCallState], float]:
    jitter = wait_random_exponential(multiplier=base, max=max_wait)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return float(asked)
        return float(jitter(state))

    return wait


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Turn-time callers (calendar) keep it short; background ones (CRM) longer."""

    attempts: int = 3
    base: float = 0.25
    max_wait: float = 4.0
    sleep: Sleep = field(default=asyncio.sleep, compare=False)

    def retrying(self) -> AsyncRetrying:
        """A fresh tenacity controller; the last exception is re-raised when it gives up."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | _AskedTooLong(self.max_wait),
            wait=_wait(self.base, self.max_wait),
            retry=retry_if_exception_type((RetryableStatus, httpx.TransportError)),
            reraise=True,
            sleep=self.sleep,
        )


def make_client(timeout: float = 10.0, base_url: str = "") -> httpx.AsyncClient:
    """An AsyncClient with a deliberate timeout (connect shorter than read)."""
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))
