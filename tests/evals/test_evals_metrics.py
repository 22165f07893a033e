"""Metric arithmetic on small examples computed by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from evals.metrics import (
    Gate,
    compliance_keys,
    compute,
    escalation_label,
    intent_accuracy,
    percentile,
    prf,
    slot_counts,
)
from evals.runner import CaseOutcome, Check, TurnOutcome

T0 = dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC)


def turn(expect: dict[str, Any], failed: tuple[str, ...] = (), **actual: Any) -> TurnOutcome:
    base = {"route": "agent", "rule": None, "intent": None, "slots": {}, "tools": [], "escalated": False,
            "llm_calls": 0, "tokens": 0, "ms": 1.0}
    checks = [Check(k, k not in failed, "x" if k in failed else "") for k in expect]
    return TurnOutcome(1, "hi", T0, expect, {**base, **actual}, checks)


def case(*turns: TurnOutcome, tags: tuple[str, ...] = (), error: str | None = None,
         planned: int | None = None, final: list[Check] | None = None) -> CaseOutcome:
    c = CaseOutcome("c", "f.yaml", "s", list(tags), list(turns), final_checks=final or [], error=error)
    c.planned = [t.expect for t in turns] + [{"rule": "opt_out", "consent": "opted_out"}] * (planned or 0)
    return c


def test_intent_accuracy_and_confusion() -> None:
    assert intent_accuracy([("a", "a"), ("a", "b"), ("b", "b"), ("c", None)]) == 0.5
    assert intent_accuracy([]) is None
    m = compute([case(turn({"intent": "greeting"}, intent="greeting"),
                      turn({"intent": "greeting"}, ("intent",), intent="out_of_scope"),
                      turn({"intent": "billing"}, intent="billing"),
                      turn({"route": "agent"}, intent="billing"))])  # no intent expectation: not counted
    assert m.values["intent_accuracy"] == pytest.approx(2 / 3)
    assert m.support["intent_accuracy"] == 3
    assert m.confusion == {"billing": {"billing": 1}, "greeting": {"greeting": 1, "out_of_scope": 1}}


def test_slot_counts_by_hand() -> None:
    # turn 1: service right (TP), date wrong (FP+FN), time missing (FN); provider in actual is not judged.
    # turn 2: name right (TP).
    pairs = [({"service": "haircut", "date": "2026-03-04", "time": "14:00"},
              {"service": "haircut", "date": "2026-03-05", "provider": "Kim"}),
             ({"name": "Ana"}, {"name": "Ana"})]
    assert slot_counts(pairs) == (2, 1, 2)
    p, r, f1 = prf(2, 1, 2)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 4))
    assert f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # = 4/7, the harmonic mean of 2/3 and 1/2
    assert prf(0, 0, 0) == (None, None, None)
    assert prf(0, 0, 3) == (None, 0.0, 0.0)


def test_escalation_labels_and_precision_recall() -> None:
    assert escalation_label({"escalated": True, "tools": []}) is True  # the most specific key wins
    assert escalation_label({"escalation_reason": "billing"}) is True
    assert escalation_label({"escalation_reason": None}) is False
    assert escalation_label({"tools": [{"name": "escalate", "args": {}}]}) is True
    assert escalation_label({"tools": []}) is False
    assert escalation_label({"intent": "billing"}) is None
    m = compute([case(
        turn({"escalated": True}, escalated=True),  # TP
        turn({"escalated": True}, escalated=False),  # FN
        turn({"tools": []}, escalated=True),  # FP
        turn({"tools": []}),  # TN
        turn({"intent": "greeting"}, escalated=True),  # no label: ignored
    )])
    assert m.values["escalation_precision"] == 0.5
    assert m.values["escalation_recall"] == 0.5


def test_tool_call_exact() -> None:
    m = compute([case(turn({"tools": []}), turn({"tools": []}, ("tools",)), turn({"tools": []}),
                      turn({"intent": "greeting"}, intent="greeting"))])
    assert m.values["tool_call_exact"] == pytest.approx(2 / 3)


def test_containment_counts_escalations_handoffs_and_errors() -> None:
    m = compute([case(turn({})), case(turn({}, escalated=True)), case(turn({}, route="handoff")),
                 case(turn({}), error="boom")])
    assert m.values["containment"] == 0.25


def test_compliance_checks() -> None:
    assert compliance_keys({"rule": "help", "reply": True}, []) == {"rule"}
    assert compliance_keys({"route": "rule", "intent": None}, []) == {"route"}
    assert compliance_keys({"route": "agent", "consent": "opted_in"}, []) == {"consent"}
    assert compliance_keys({"route": "agent", "reply": True}, ["compliance"]) == {"route", "reply"}
    m = compute([
        # route=rule and rule count, reply does not: 2 of 2
        case(turn({"route": "rule", "rule": "opt_out", "reply": True}, ("reply",))),
        case(turn({"reply": True, "tools": []}, ("reply",)), tags=("compliance",),
             final=[Check("bookings", True)]),  # tools + final.bookings: 2 of 3
        case(turn({"intent": "greeting"}), final=[Check("consent", False, "x")]),  # 0 of 1
        case(turn({"consent": "opted_in"}), error="boom", planned=1),  # 1 of 3: the unplayed turn fails
    ])
    assert m.values["compliance"] == pytest.approx((2 + 2 + 0 + 1) / (2 + 3 + 1 + 3))
    assert m.support["compliance"] == 9


def test_rates_costs_and_latency() -> None:
    turns = [turn({}, route="blocked", ms=10.0, llm_calls=0, tokens=0),
             turn({}, ms=20.0, llm_calls=1, tokens=300), turn({}, ms=30.0, llm_calls=2, tokens=500),
             turn({}, ms=40.0, llm_calls=1, tokens=400)]
    m = compute([case(*turns)])
    assert m.values["blocked_rate"] == 0.25
    assert m.values["llm_calls_per_turn"] == 1.0
    assert m.values["tokens_per_turn"] == 300.0
    assert (m.values["p50_ms"], m.values["p95_ms"]) == (20.0, 40.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_empty_run_measures_nothing() -> None:
    m = compute([])
    assert all(v is None for v in m.values.values())


def test_gates() -> None:
    values = {"intent_accuracy": 0.8, "p95_ms": 120.0, "slot_f1": None}
    assert Gate.parse("intent_accuracy=0.75", "under").check(values)[0]
    assert not Gate.parse("intent_accuracy=90%", "under").check(values)[0]
    assert Gate.parse("p95_ms=200", "over").check(values)[0]
    assert not Gate.parse("p95_ms=100", "over").check(values)[0]
    ok, msg = Gate.parse("slot_f1=0.5", "under").check(values)
    assert not ok and "not measured" in msg
    for text, kind in (("p95_ms=100", "under"), ("intent_accuracy=0.9", "over"), ("nope=1", "under"),
                       ("intent_accuracy", "under"), ("intent_accuracy=high", "under")):
        with pytest.raises(ValueError):
            Gate.parse(text, kind)
    assert Gate.parse("blocked_rate=0.1", "over").check({"blocked_rate": 0.05})[0]
