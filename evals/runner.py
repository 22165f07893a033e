"""Play eval cases through the real pipeline and check what happened.

A case runs in its own in-memory store (``evals.fixtures``) with a ``FrozenClock`` that moves to
each turn's time, through the same ``Pipeline.handle`` every channel calls. Checking is a
pure function of the expectation and the turn's ``actual`` dict (the JSON report's shape), so it
is testable without a pipeline and the report shows exactly what was compared.

Rate limits: a case file describes one conversation, not traffic, so evals run with rate limits
lifted; a case tagged ``ratelimit`` keeps the configured limits to test them on purpose.

A case that raises (a provider outage with a live model, a pipeline bug) fails with the error and
the run goes on; ``KeyboardInterrupt`` and cancellation still stop it.

Providers are built once per business for a run and warmed like at server start-up, so latency
metrics measure turns, not model loading.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.providers.base import Provider
from agent.providers.factory import make_provider
from evals.fixtures import final_state, isolated_store, seed_contact
from evals.loader import BookingMatch, Expect, Final, LoadedCase, ToolExpect
from textdesk.business import Business
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound, Pipeline, TurnResult
from textdesk.settings import Settings

__all__ = [
    "CaseOutcome",
    "Check",
    "ProviderPool",
    "TurnOutcome",
    "actual_from_result",
    "check_final",
    "check_turn",
    "eval_settings",
    "run_case",
    "run_cases",
]

_UNLIMITED = {"rate_limit_per_minute": 1_000_000, "rate_limit_per_hour": 1_000_000,
              "global_rate_limit_per_minute": 1_000_000}


@dataclass(frozen=True)
class Check:
    """One expectation key checked on one turn (or ``final.*``)."""

    key: str
    passed: bool
    message: str = ""


@dataclass
class TurnOutcome:
    index: int  # 1-based
    user: str
    at: dt.datetime
    expect: dict[str, Any]
    actual: dict[str, Any]
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [f"turn {self.index}: {c.message}" for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass
class CaseOutcome:
    id: str
    file: str
    suite: str
    tags: list[str]
    turns: list[TurnOutcome] = field(default_factory=list)
    final_checks: list[Check] = field(default_factory=list)
    final_actual: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)  # every turn's expectations

    @property
    def failures(self) -> list[str]:
        out = [f for t in self.turns for f in t.failures]
        out += [f"final: {c.message}" for c in self.final_checks if not c.passed]
        return out + ([f"error: {self.error}"] if self.error else [])

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failures


def actual_from_result(r: TurnResult) -> dict[str, Any]:
    """A turn as the JSON report states it (docs/architecture.md section 4)."""
    return {"route": r.route, "rule": r.rule, "intent": r.intent, "slots": dict(r.slots),
            "confidence": r.confidence, "tools": [dict(t) for t in r.tools], "escalated": r.escalated,
            "escalation_reason": r.escalation_reason, "consent": r.consent, "reply": r.reply,
            "segments": r.segments, "llm_calls": r.llm_calls, "tokens": r.tokens, "ms": r.ms}


# -- matching -------------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and len(value) > 60:
        return value[:57] + "..."
    return "null" if value is None else str(value)


def fmt_tools(tools: Iterable[dict[str, Any]]) -> str:
    return "[" + ", ".join(f"{t['name']}{_fmt(t.get('args') or {})}" for t in tools) + "]"


def subset(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Every given field is equal; fields not given are ignored."""
    return all(k in actual and actual[k] == v for k, v in expected.items())


def match_unordered(expected: list[Any], actual: list[Any], ok: Callable[[Any, Any], bool]) -> bool:
    """Whole lists in any order: a one-to-one pairing where every pair satisfies ``ok``.

    Bipartite matching (augmenting paths), so a loose expectation cannot steal the only item a
    stricter one fits; lists are a handful of items long.
    """
    if len(expected) != len(actual):
        return False
    owner: dict[int, int] = {}

    def place(i: int, seen: set[int]) -> bool:
        for j, item in enumerate(actual):
            if j not in seen and ok(expected[i], item):
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(place(i, set()) for i in range(len(expected)))


def _tool_ok(e: ToolExpect, a: dict[str, Any]) -> bool:
    return a.get("name") == e.name and subset(e.args, a.get("args") or {})


def check_turn(expect: Expect, actual: dict[str, Any]) -> list[Check]:
    """Check every given expectation key against one turn's actual values."""
    checks: list[Check] = []
    reply = actual.get("reply") or ""
    for key, want in expect.given().items():
        got = actual.get(key)
        if key == "slots":
            slots = got or {}
            bad = [k for k, v in want.items() if slots.get(k) != v]
            ok, msg = not bad, f"slots: expected {_fmt(want)} got {_fmt(slots)} (wrong: {', '.join(bad)})"
        elif key == "tools":
            ok = match_unordered(want, got or [], _tool_ok)
            msg = f"tools: expected {fmt_tools(t.model_dump() for t in want)} got {fmt_tools(got or [])}"
        elif key == "reply":
            ok = (actual.get("reply") is not None) == want
            msg = f"reply: expected {'a reply' if want else 'no reply'} got {_fmt(actual.get('reply'))}"
        elif key == "reply_contains":
            missing = [s for s in want if s.lower() not in reply.lower()]
            ok, msg = not missing, f"reply_contains: {missing} not in reply {_fmt(actual.get('reply'))}"
        elif key == "reply_not_contains":
            found = [s for s in want if s.lower() in reply.lower()]
            ok, msg = not found, f"reply_not_contains: {found} found in reply {_fmt(actual.get('reply'))}"
        elif key in ("max_segments", "max_llm_calls"):
            got = actual.get("segments" if key == "max_segments" else "llm_calls") or 0
            ok, msg = got <= want, f"{key}: expected at most {want} got {got}"
        else:  # route, rule, intent, escalated, escalation_reason, consent: equality
            ok, msg = got == want, f"{key}: expected {_fmt(want)} got {_fmt(got)}"
        checks.append(Check(key, ok, "" if ok else msg))
    return checks


def _booking_ok(e: BookingMatch, a: dict[str, Any]) -> bool:
    return subset(e.given(), a)


def check_final(final: Final | None, actual: dict[str, Any]) -> list[Check]:
    """``final.bookings`` (whole list, any order, subset fields) and ``final.consent``."""
    checks: list[Check] = []
    if final is None:
        return checks
    if "bookings" in final.model_fields_set and final.bookings is not None:
        got = actual.get("bookings") or []
        ok = match_unordered(final.bookings, got, _booking_ok)
        want = "[" + ", ".join(_fmt(b.given()) for b in final.bookings) + "]"
        have = "[" + ", ".join(_fmt({k: v for k, v in b.items() if v is not None}) for b in got) + "]"
        checks.append(Check("bookings", ok, "" if ok else f"bookings: expected {want} got {have}"))
    if "consent" in final.model_fields_set:
        ok = actual.get("consent") == final.consent
        msg = f"consent: expected {final.consent} got {_fmt(actual.get('consent'))}"
        checks.append(Check("consent", ok, "" if ok else msg))
    return checks


# -- running --------------------------------------------------------------------------------------

def eval_settings(base: Settings, case: LoadedCase) -> Settings:
    """Per-case settings: the run's configuration, rate limits lifted unless tagged ``ratelimit``."""
    update: dict[str, Any] = {"database_url": "sqlite+aiosqlite:///:memory:"}
    if "ratelimit" not in case.tags:
        update |= _UNLIMITED
    return base.model_copy(update=update)


class ProviderPool:
    """One provider per business for a whole run.

    Providers take everything per turn from the request, so sharing one is safe; it means the
    offline vocabularies load once, and live providers keep one HTTP client rather than one per case.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._made: dict[str, Provider] = {}
        self._adopted: set[str] = set()

    def adopt(self, business: Business, provider: Provider) -> None:
        """Use an already built and warmed provider (the server's) for ``business``; it stays open."""
        key = business.model_dump_json()
        self._made[key] = provider
        self._adopted.add(key)

    def get(self, business: Business) -> Provider:
        key = business.model_dump_json()
        if key not in self._made:
            provider = self._made[key] = make_provider(self.settings, business)
            warm = getattr(provider, "warm", None)
            if warm is not None:  # as at server start-up (textdesk.services), so no turn pays for it
                warm()
        return self._made[key]

    async def aclose(self) -> None:
        made = [p for k, p in self._made.items() if k not in self._adopted]
        self._made = {}
        for provider in made:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()


async def run_case(case: LoadedCase, base: Settings, pool: ProviderPool | None = None) -> CaseOutcome:
    """Play one case; never raises for a failing pipeline or provider."""
    out = CaseOutcome(case.id, str(case.file), case.suite, list(case.tags),
                      planned=[_jsonable(t.expect.given()) for t in case.turns])
    own = pool is None
    pool = pool or ProviderPool(base)
    try:
        await _play(case, eval_settings(base, case), pool.get(case.business), out)
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise
    except Exception as exc:  # one broken case must not end the run
        out.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        if own:
            await pool.aclose()
    return out


async def _play(case: LoadedCase, settings: Settings, provider: Provider, out: CaseOutcome) -> None:
    contact = case.model.contact
    async with isolated_store() as sessions:
        contact_id = await seed_contact(sessions, case.business, contact, case.times[0])
        clock = FrozenClock(case.times[0])
        pipeline = Pipeline(settings, case.business, sessions, clock, provider)
        pipeline.strict_provider = True  # a failing model call fails the case, loudly
        for i, (turn, at) in enumerate(zip(case.turns, case.times, strict=True), start=1):
            clock.advance(seconds=(at - clock.now()).total_seconds())
            result = await pipeline.handle(Inbound(sender=contact.phone, body=turn.user, channel="sms",
                                                   provider_message_id=f"eval{uuid.uuid4().hex}"))
            actual = actual_from_result(result)
            out.turns.append(TurnOutcome(i, turn.user, at, _jsonable(turn.expect.given()), actual,
                                         check_turn(turn.expect, actual)))
        out.final_actual = await final_state(sessions, case.business, contact_id, clock.now())
        out.final_checks = check_final(case.final, out.final_actual)


def _jsonable(given: dict[str, Any]) -> dict[str, Any]:
    tools = given.get("tools")
    if tools is not None:
        given = {**given, "tools": [t.model_dump() for t in tools]}
    return given


async def run_cases(cases: list[LoadedCase], base: Settings, concurrency: int = 1,
                    on_done: Callable[[CaseOutcome], None] | None = None) -> list[CaseOutcome]:
    """Run cases, at most ``concurrency`` at a time; results keep the input order."""
    gate = asyncio.Semaphore(max(1, concurrency))
    pool = ProviderPool(base)

    async def one(case: LoadedCase) -> CaseOutcome:
        async with gate:
            result = await run_case(case, base, pool)
        if on_done is not None:
            on_done(result)
        return result

    try:
        return list(await asyncio.gather(*(one(c) for c in cases)))
    finally:
        await pool.aclose()
