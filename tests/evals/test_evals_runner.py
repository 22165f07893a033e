"""Cases played through the real pipeline: fixtures, clock, rate limits, failures that do not stop a run."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

import evals.runner as runner_module
from evals.fixtures import ContactFixture, isolated_store, seed_contact
from evals.loader import build_case
from evals.runner import CaseOutcome, run_case, run_cases
from store.models import Booking
from textdesk.business import load_business
from textdesk.errors import ProviderUnavailable
from textdesk.settings import DEMO_BUSINESS_FILE, Settings

BUSINESS = load_business(DEMO_BUSINESS_FILE)
NOW = "2026-03-03T10:00:00-05:00"  # Tuesday, 10:00 in New York
SETTINGS = Settings(llm_provider="offline")


def make(turns: list[dict[str, Any]], cid: str = "t", **extra: Any) -> Any:
    contact = {"phone": "+12125550123", "consent": "opted_in"}
    data = {"id": cid, "now": NOW, "contact": contact, "turns": turns}
    return build_case({**data, **extra}, BUSINESS, source=str(DEMO_BUSINESS_FILE))


async def play(turns: list[dict[str, Any]], **extra: Any) -> CaseOutcome:
    return await run_case(make(turns, **extra), SETTINGS)


async def test_stop_passes_every_key_and_fails_each_wrong_one() -> None:
    ok = {"route": "rule", "rule": "opt_out", "intent": None, "consent": "opted_out", "reply": True,
          "max_llm_calls": 0, "max_segments": 1, "tools": [], "escalated": False, "escalation_reason": None,
          "reply_contains": ["UNSUBSCRIBED"], "reply_not_contains": ["system prompt"]}
    out = await play([{"user": "STOP", "expect": ok}], final={"consent": "opted_out", "bookings": []})
    assert out.passed, out.failures
    wrong = {"route": "agent", "rule": "help", "intent": "greeting", "consent": "opted_in", "reply": False,
             "tools": [{"name": "escalate"}], "escalated": True, "escalation_reason": "billing",
             "reply_contains": ["see you"], "reply_not_contains": ["unsubscribed"], "max_segments": 0}
    out = await play([{"user": "STOP", "expect": wrong}], final={"consent": "opted_in"})
    assert not out.passed
    failed = {c.key for c in out.turns[0].checks if not c.passed}
    assert failed == set(wrong)
    assert "turn 1: route: expected agent got rule" in out.failures
    assert "final: consent: expected opted_in got opted_out" in out.failures


async def test_help_and_human_handoff() -> None:
    out = await play([
        {"user": "help", "expect": {"route": "rule", "rule": "help", "max_segments": 2,
                                    "reply_contains": ["stop", "(212) 555-0100"]}},
        {"user": "AGENT", "expect": {"rule": "human", "escalated": True, "escalation_reason": "requested",
                                     "tools": [{"name": "escalate", "args": {"reason": "requested"}}]}},
        {"user": "hello? anyone there", "expect": {"route": "handoff", "reply": False, "tools": []}},
    ])
    assert out.passed, out.failures
    assert [t.at - out.turns[0].at for t in out.turns] == [dt.timedelta(minutes=m) for m in (0, 1, 2)]


async def test_faq_question_through_the_agent() -> None:
    expect = {"route": "agent", "intent": "ask_question", "reply_contains": ["12 maple st"], "tools": []}
    out = await play([{"user": "where are you located", "expect": expect}])
    assert out.passed, out.failures


async def test_opted_out_fixture_is_gated_and_handoff_fixture_is_silent() -> None:
    gated = await play([{"user": "hi there", "expect": {"route": "rule", "reply": False}}],
                       contact={"phone": "+12125550124", "consent": "opted_out"})
    assert gated.passed, gated.failures
    held = await play([{"user": "hello", "expect": {"route": "handoff", "reply": False}}],
                      contact={"phone": "+12125550125", "handoff": True})
    assert held.passed, held.failures


async def test_fixture_bookings_are_local_time_converted_to_utc() -> None:
    fixture = ContactFixture.model_validate({"bookings": [
        {"id": "b1", "service": "color", "date": "2026-03-05", "time": "11:00", "provider": "luis"}]})
    async with isolated_store() as sessions:
        await seed_contact(sessions, BUSINESS, fixture, dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC))
        async with sessions() as session:
            b = await session.get(Booking, "b1")
            assert b is not None
            start = b.start.replace(tzinfo=dt.UTC) if b.start.tzinfo is None else b.start
            assert start == dt.datetime(2026, 3, 5, 16, 0, tzinfo=dt.UTC)  # 11:00 EST
            assert b.end - b.start == dt.timedelta(minutes=90)
            assert b.provider == "Luis"
    b1 = {"id": "b1", "service": "color", "date": "2026-03-05", "time": "11:00"}
    out = await play([{"user": "help"}], contact={"bookings": [b1]}, final={"bookings": [b1]})
    assert out.passed, out.failures
    assert out.final_actual["bookings"][0]["date"] == "2026-03-05"


async def test_each_case_has_its_own_database() -> None:
    async with isolated_store() as first, isolated_store() as second:
        async with first() as s:
            await s.exec(text("CREATE TABLE marker (x INTEGER)"))  # type: ignore[call-overload]
            await s.commit()
        async with first() as s:  # another session, same in-memory database
            await s.exec(text("SELECT * FROM marker"))  # type: ignore[call-overload]
        async with second() as s:
            with pytest.raises(Exception, match="marker"):
                await s.exec(text("SELECT * FROM marker"))  # type: ignore[call-overload]


async def test_rate_limits_are_lifted_unless_tagged() -> None:
    turns = [{"user": "help", "wait": "1s"} for _ in range(12)]
    free = await play(turns)
    assert {t.actual["route"] for t in free.turns} == {"rule"}
    limited = await play(turns, tags=["ratelimit"])
    assert "limited" in {t.actual["route"] for t in limited.turns}


async def test_a_failing_provider_fails_its_case_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        name = "down"

        async def understand(self, req: Any) -> Any:
            raise ProviderUnavailable("timeout after 7.0s")

    monkeypatch.setattr(runner_module, "make_provider", lambda settings, business: Down())
    cases = [make([{"user": "can i book a haircut"}], cid="llm"), make([{"user": "STOP"}], cid="rule")]
    done: list[str] = []
    broken, fine = await run_cases(cases, SETTINGS, concurrency=2, on_done=lambda c: done.append(c.id))
    assert sorted(done) == ["llm", "rule"]
    assert not broken.passed and broken.error is not None and "timeout" in broken.error
    assert broken.failures[-1].startswith("error: ")
    assert fine.passed


async def test_concurrent_cases_do_not_share_state() -> None:
    same_phone = [make([{"user": "STOP", "expect": {"consent": "opted_out"}}], cid="a"),
                  make([{"user": "help", "expect": {"consent": "opted_in"}}], cid="b"),
                  make([{"user": "START", "expect": {"consent": "opted_in"}}], cid="c",
                       contact={"phone": "+12125550123", "consent": "opted_out"})]
    outcomes = await run_cases(same_phone, SETTINGS, concurrency=3)
    assert [o.id for o in outcomes] == ["a", "b", "c"]
    assert all(o.passed for o in outcomes), [o.failures for o in outcomes]
