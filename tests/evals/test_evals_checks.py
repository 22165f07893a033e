"""The matching rules of docs/architecture.md section 4, as pure functions over a turn's ``actual`` dict."""

from __future__ import annotations

from typing import Any

import pytest

from evals.loader import Expect, Final
from evals.runner import check_final, check_turn, match_unordered

BASE: dict[str, Any] = {
    "route": "agent", "rule": None, "intent": "book_appointment",
    "slots": {"service": "haircut", "date": "2026-03-04", "time": "14:00"}, "confidence": 0.9,
    "tools": [{"name": "create_booking", "args": {"service": "haircut", "date": "2026-03-04", "time": "14:00",
                                                  "provider": "Kim"}}],
    "escalated": False, "escalation_reason": None, "consent": "opted_in",
    "reply": "Booked: haircut with Kim on Wed Mar 4 at 2:00 PM.", "segments": 1, "llm_calls": 0, "tokens": 0,
    "ms": 3.0,
}


def run(expect: dict[str, Any], **actual: Any) -> list[str]:
    checks = check_turn(Expect.model_validate(expect), {**BASE, **actual})
    assert [c.key for c in checks] == list(expect)  # one check per given key, nothing else
    return [c.message for c in checks if not c.passed]


# (expectation that holds on BASE, the same key failing, a fragment of the failure message)
CASES = [
    ({"route": "agent"}, {"route": "rule"}, "route: expected rule got agent"),
    ({"rule": None}, {"rule": "opt_out"}, "rule: expected opt_out got null"),
    ({"intent": "book_appointment"}, {"intent": "cancel_appointment"}, "intent: expected cancel_appointment"),
    ({"slots": {"service": "haircut", "time": "14:00"}}, {"slots": {"time": "15:00"}}, "wrong: time"),
    ({"slots": {}}, {"slots": {"provider": "Luis"}}, "wrong: provider"),
    ({"tools": [{"name": "create_booking", "args": {"service": "haircut"}}]}, {"tools": []},
     "tools: expected [] got [create_booking{service: haircut"),
    ({"tools": [{"name": "create_booking"}]}, {"tools": [{"name": "escalate"}]}, "expected [escalate{}]"),
    ({"escalated": False}, {"escalated": True}, "escalated: expected True got False"),
    ({"escalation_reason": None}, {"escalation_reason": "billing"}, "escalation_reason: expected billing"),
    ({"consent": "opted_in"}, {"consent": "opted_out"}, "consent: expected opted_out got opted_in"),
    ({"reply": True}, {"reply": False}, "reply: expected no reply got Booked"),
    ({"reply_contains": ["KIM", "2:00 pm"]}, {"reply_contains": ["3:00"]}, "['3:00'] not in reply"),
    ({"reply_not_contains": ["system prompt"]}, {"reply_not_contains": ["booked"]},
     "['booked'] found in reply"),
    ({"max_segments": 1}, {"max_segments": 0}, "max_segments: expected at most 0 got 1"),
    ({"max_llm_calls": 0}, {}, ""),
]


@pytest.mark.parametrize(("ok", "bad", "message"), CASES)
def test_each_key_passes_and_fails(ok: dict[str, Any], bad: dict[str, Any], message: str) -> None:
    assert run(ok) == []
    if bad:
        [failure] = run(bad)
        assert message in failure


def test_tools_empty_list_means_none() -> None:
    assert run({"tools": []}, tools=[]) == []
    assert run({"tools": []}) != []


def test_tools_are_whole_lists_in_any_order_with_args_subset() -> None:
    two = [{"name": "escalate", "args": {"reason": "billing", "summary": "charged twice"}},
           {"name": "tag_contact", "args": {"tag": "vip"}}]
    assert run({"tools": [{"name": "tag_contact"}, {"name": "escalate", "args": {"reason": "billing"}}]},
               tools=two) == []
    assert run({"tools": [{"name": "escalate"}]}, tools=two) != []  # one missing from the expectation
    assert run({"tools": [{"name": "escalate", "args": {"reason": "complaint"}}, {"name": "tag_contact"}]},
               tools=two) != []


def test_reply_false_and_contains_on_silence() -> None:
    assert run({"reply": False}, reply=None) == []
    assert run({"reply_contains": ["x"]}, reply=None) != []
    assert run({"reply_not_contains": ["x"]}, reply=None) == []


def test_max_llm_calls_fails_when_exceeded() -> None:
    assert "max_llm_calls: expected at most 0 got 2" in run({"max_llm_calls": 0}, llm_calls=2)[0]


def test_matching_is_one_to_one_and_not_greedy() -> None:
    loose, strict = {"name": "x"}, {"name": "x", "k": 1}
    items = [{"name": "x", "k": 1}, {"name": "x", "k": 2}]

    def ok(e: dict[str, Any], a: dict[str, Any]) -> bool:
        return all(a.get(k) == v for k, v in e.items())

    assert match_unordered([loose, strict], items, ok)  # a greedy pass would give item 0 to `loose`
    assert not match_unordered([strict, strict], items, ok)
    assert not match_unordered([loose], items, ok)


def test_final_bookings_and_consent() -> None:
    actual = {"consent": "opted_in", "bookings": [
        {"id": "b1", "service": "color", "date": "2026-03-05", "time": "11:00", "provider": "Luis"},
        {"id": "bk_x", "service": "haircut", "date": "2026-03-04", "time": "14:00", "provider": "Kim"}]}
    good = Final.model_validate({"consent": "opted_in", "bookings": [
        {"service": "haircut", "date": "2026-03-04"}, {"id": "b1"}]})
    assert all(c.passed for c in check_final(good, actual))
    wrong = Final.model_validate({"bookings": [{"service": "haircut"}], "consent": "opted_out"})
    bad = check_final(wrong, actual)
    assert [c.key for c in bad if not c.passed] == ["bookings", "consent"]
    assert "expected [{service: haircut}] got [{id: b1" in bad[0].message
    assert check_final(Final.model_validate({"bookings": []}), {"bookings": []})[0].passed
    assert check_final(None, actual) == []
