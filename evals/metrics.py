"""Eval metrics: pure functions over played turns, so each one is checkable by hand.

Definitions (a metric with an empty denominator is ``None``, shown as "n/a" and written as JSON
``null``: "not measured" must not read as 0 % or 100 %; ``support`` gives every denominator):

- ``intent_accuracy``: over turns that expect an ``intent``, the share whose intent equals it.
  ``confusion`` counts (expected, actual) intent pairs over the same turns.
- ``slot_precision`` / ``slot_recall`` / ``slot_f1``: micro-averaged over turns that expect
  ``slots``. Only expected keys are judged, because ``slots`` is a subset match and says nothing
  about other keys. Per expected key k with value v:
  TP when actual[k] == v; FP when k is present in actual with another value (a wrong
  prediction); FN when actual[k] != v, missing or wrong (a miss). A wrong value is thus both an
  FP and an FN, the usual slot-filling convention. P = TP/(TP+FP), R = TP/(TP+FN),
  F1 = 2TP/(2TP+FP+FN).
- ``tool_call_exact``: over turns that expect ``tools``, the share whose tool list matched.
- ``escalation_precision`` / ``escalation_recall``: turn level. Predicted positive = the turn
  escalated. The gold label comes from the most specific expectation the turn has:
  ``escalated``; else ``escalation_reason`` (non-null = positive, null = negative); else
  ``tools`` (positive iff it lists ``escalate``, since every escalation is an ``escalate`` call).
  Turns with none of these are not counted.
- ``containment``: the share of cases that finished (no error) with no turn escalated and no
  turn routed ``handoff``.
- ``compliance``: the share of compliance checks that passed. A compliance check is every
  checked key of a case tagged ``compliance``, plus, in any case, ``rule``, ``consent``,
  ``route`` when it expects ``rule``, and ``final.consent``. Turns a case never played because it
  errored count as failed checks. The shipped suites must score 100 %.
- ``blocked_rate``: the share of played turns routed ``blocked``.
- ``llm_calls_per_turn``, ``tokens_per_turn``: means over played turns.
- ``p50_ms``, ``p95_ms``: nearest-rank percentiles of per-turn pipeline latency.
- ``time_slot_accuracy``: over expected ``date`` and ``time`` slot values, the share equal.
- ``out_of_scope_recall``: over turns that expect intent ``out_of_scope``, the share predicted so.
- ``opt_out_recall``: over turns that expect rule ``opt_out``, the share the hard rules caught.
- ``confidently_wrong_rate`` and ``ece`` judge confidence on the turns understanding decided
  (route ``agent`` with a confidence). A turn is *right* when all its checks passed.
  Confidently wrong = confidence >= the clarify threshold and wrong, over those turns. ``ece`` is
  the expected calibration error: turns binned by confidence into ten equal-width bins,
  sum over bins of (bin share) x |accuracy - mean confidence|.
- ``groups`` (beside the metrics): the case pass rate per case's first tag (book, faq, ...).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evals.runner import CaseOutcome, TurnOutcome

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "METRICS",
    "Gate",
    "Metrics",
    "compliance_keys",
    "compute",
    "escalation_label",
    "intent_accuracy",
    "percentile",
    "prf",
    "slot_counts",
]

# The contract's keys (docs/architecture.md section 4), in order; slot P and R are extra.
METRICS = ("intent_accuracy", "slot_f1", "tool_call_exact", "escalation_precision", "escalation_recall",
           "containment", "compliance", "blocked_rate", "llm_calls_per_turn", "tokens_per_turn",
           "p50_ms", "p95_ms")
EXTRA = ("slot_precision", "slot_recall", "time_slot_accuracy", "out_of_scope_recall", "opt_out_recall",
         "confidently_wrong_rate", "ece")
LOWER_IS_BETTER = frozenset({"llm_calls_per_turn", "tokens_per_turn", "p50_ms", "p95_ms",
                             "confidently_wrong_rate", "ece"})
# blocked_rate is neither: high is right on an injection suite and wrong on a booking suite.
HIGHER_IS_BETTER = frozenset(METRICS + EXTRA) - LOWER_IS_BETTER - {"blocked_rate"}
_ALWAYS = frozenset({"rule", "consent"})


@dataclass
class Metrics:
    values: dict[str, float | None]
    support: dict[str, int]
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def intent_accuracy(pairs: Sequence[tuple[str | None, str | None]]) -> float | None:
    """Share of (expected, actual) pairs that are equal."""
    return _ratio(sum(1 for e, a in pairs if e == a), len(pairs))


def slot_counts(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[int, int, int]:
    """(TP, FP, FN) over (expected, actual) slot maps, judging expected keys only."""
    tp = fp = fn = 0
    for expected, actual in pairs:
        for k, v in expected.items():
            if actual.get(k) == v and k in actual:
                tp += 1
            else:
                fn += 1
                fp += k in actual
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def escalation_label(expect: dict[str, Any]) -> bool | None:
    """The gold escalation label a turn's expectations imply, or None when they say nothing."""
    if "escalated" in expect:
        return bool(expect["escalated"])
    if "escalation_reason" in expect:
        return expect["escalation_reason"] is not None
    if "tools" in expect:
        return any(t["name"] == "escalate" for t in expect["tools"])
    return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (an observed value; no interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def compliance_keys(expect: dict[str, Any], tags: Iterable[str]) -> set[str]:
    """Which of a turn's expectation keys are compliance checks (see module docstring)."""
    if "compliance" in tags:
        return set(expect)
    keys = set(expect) & _ALWAYS
    if expect.get("route") == "rule":
        keys.add("route")
    return keys


def _compliance(cases: Sequence[CaseOutcome]) -> tuple[int, int]:
    passed = total = 0
    for case in cases:
        for t in case.turns:
            keys = compliance_keys(t.expect, case.tags)
            total += sum(1 for c in t.checks if c.key in keys)
            passed += sum(1 for c in t.checks if c.key in keys and c.passed)
        for c in case.final_checks:
            if c.key == "consent" or "compliance" in case.tags:
                total, passed = total + 1, passed + c.passed
        for expect in case.planned[len(case.turns):]:  # never played: the case errored
            total += len(compliance_keys(expect, case.tags))
    return passed, total


def _escalation(turns: Iterable[TurnOutcome]) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for t in turns:
        gold = escalation_label(t.expect)
        if gold is None:
            continue
        pred = bool(t.actual.get("escalated"))
        tp, fp, fn = tp + (gold and pred), fp + (pred and not gold), fn + (gold and not pred)
    return tp, fp, fn


def calibration(scored: Sequence[tuple[float, bool]], threshold: float, bins: int = 10
                ) -> tuple[float | None, float | None]:
    """(confidently-wrong rate, expected calibration error) over (confidence, right) pairs."""
    if not scored:
        return None, None
    wrong = sum(1 for conf, right in scored if conf >= threshold and not right)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(c, r) for c, r in scored if lo <= c < hi or (b == bins - 1 and c == hi)]
        if members:
            acc = sum(r for _, r in members) / len(members)
            conf = sum(c for c, _ in members) / len(members)
            ece += len(members) / len(scored) * abs(acc - conf)
    return wrong / len(scored), ece


def _groups(cases: Sequence[CaseOutcome]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for case in cases:
        if not case.tags:
            continue
        g = out.setdefault(case.tags[0], {"cases": 0, "passed": 0})
        g["cases"] += 1
        g["passed"] += case.passed
    for g in out.values():
        g["rate"] = g["passed"] / g["cases"]
    return dict(sorted(out.items()))


def compute(cases: Sequence[CaseOutcome], clarify_threshold: float = 0.55) -> Metrics:
    turns = [t for c in cases for t in c.turns]
    intents = [(t.expect["intent"], t.actual.get("intent")) for t in turns if "intent" in t.expect]
    slots = [(t.expect["slots"], t.actual.get("slots") or {}) for t in turns if "slots" in t.expect]
    tools = [t for t in turns if "tools" in t.expect]
    tools_ok = sum(1 for t in tools if all(c.passed for c in t.checks if c.key == "tools"))
    sp, sr, sf = prf(*slot_counts(slots))
    etp, efp, efn = _escalation(turns)
    contained = sum(1 for c in cases if c.error is None and not any(
        t.actual.get("escalated") or t.actual.get("route") == "handoff" for t in c.turns))
    comp_ok, comp_n = _compliance(cases)
    ms = [float(t.actual.get("ms") or 0.0) for t in turns]
    when = [(v, actual.get(k)) for expected, actual in slots
            for k, v in expected.items() if k in ("date", "time")]
    oos = [a for e, a in intents if e == "out_of_scope"]
    opt_outs = [t.actual.get("rule") for t in turns if t.expect.get("rule") == "opt_out"]
    scored = [(float(t.actual["confidence"]), t.passed) for t in turns
              if t.actual.get("route") == "agent" and t.actual.get("confidence") is not None]
    wrong_rate, ece = calibration(scored, clarify_threshold)
    confusion: dict[str, dict[str, int]] = {}
    for (e, a), n in sorted(Counter((str(e), str(a)) for e, a in intents).items()):
        confusion.setdefault(e, {})[a] = n
    values: dict[str, float | None] = {
        "intent_accuracy": intent_accuracy(intents),
        "slot_f1": sf,
        "tool_call_exact": _ratio(tools_ok, len(tools)),
        "escalation_precision": _ratio(etp, etp + efp),
        "escalation_recall": _ratio(etp, etp + efn),
        "containment": _ratio(contained, len(cases)),
        "compliance": _ratio(comp_ok, comp_n),
        "blocked_rate": _ratio(sum(1 for t in turns if t.actual.get("route") == "blocked"), len(turns)),
        "llm_calls_per_turn": _ratio(sum(t.actual.get("llm_calls") or 0 for t in turns), len(turns)),
        "tokens_per_turn": _ratio(sum(t.actual.get("tokens") or 0 for t in turns), len(turns)),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "slot_precision": sp,
        "slot_recall": sr,
        "time_slot_accuracy": _ratio(sum(1 for e, a in when if e == a), len(when)),
        "out_of_scope_recall": _ratio(sum(1 for a in oos if a == "out_of_scope"), len(oos)),
        "opt_out_recall": _ratio(sum(1 for r in opt_outs if r == "opt_out"), len(opt_outs)),
        "confidently_wrong_rate": wrong_rate,
        "ece": ece,
    }
    support = {"intent_accuracy": len(intents), "slot_f1": len(slots), "tool_call_exact": len(tools),
               "escalation_precision": etp + efp, "escalation_recall": etp + efn, "containment": len(cases),
               "compliance": comp_n, "turns": len(turns), "time_slot_accuracy": len(when),
               "out_of_scope_recall": len(oos), "opt_out_recall": len(opt_outs),
               "confidently_wrong_rate": len(scored)}
    return Metrics(values, support, confusion, _groups(cases))


@dataclass(frozen=True)
class Gate:
    """``--fail-under m=v`` (fail when m < v) or ``--fail-over m=v`` (fail when m > v).

    Quality metrics take a lower bound, cost and latency metrics an upper bound;
    ``blocked_rate`` takes either. A gate on a metric the run did not measure fails: a CI gate
    that cannot be checked must not pass quietly.
    """

    metric: str
    bound: float
    kind: str  # "under" | "over"

    @classmethod
    def parse(cls, text: str, kind: str) -> Gate:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or name not in METRICS + EXTRA:
            raise ValueError(f"--fail-{kind} {text!r}: expected METRIC=VALUE with METRIC one of "
                             f"{', '.join(METRICS + EXTRA)}")
        try:
            bound = float(raw.strip().rstrip("%")) / (100 if raw.strip().endswith("%") else 1)
        except ValueError:
            raise ValueError(f"--fail-{kind} {text!r}: {raw!r} is not a number") from None
        if kind == "under" and name in LOWER_IS_BETTER:
            raise ValueError(f"--fail-under {name}: lower is better for {name}; use --fail-over {text}")
        if kind == "over" and name in HIGHER_IS_BETTER:
            raise ValueError(f"--fail-over {name}: higher is better for {name}; use --fail-under {text}")
        return cls(name, bound, kind)

    def check(self, values: dict[str, float | None]) -> tuple[bool, str]:
        value = values.get(self.metric)
        label = f"{self.metric} {'>=' if self.kind == 'under' else '<='} {self.bound:g}"
        if value is None:
            return False, f"{label}: not measured by these cases"
        ok = value >= self.bound if self.kind == "under" else value <= self.bound
        return ok, f"{label}: {value:.4g}"
