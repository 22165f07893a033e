"""What the trace pages show, computed from stored traces: the timing waterfall, cost estimates and
readable tool calls. Pure functions over already-redacted data, so they are tested without an app.
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PRICES_FILE",
    "Price",
    "WaterfallRow",
    "cost_label",
    "fmt_ms",
    "pretty_json",
    "prices",
    "readable_calls",
    "waterfall",
]

PRICES_FILE = Path(__file__).with_name("model_prices.yaml")
_BAR = 1000.0  # the bars' SVG viewBox width; positions are SVG attributes (the CSP forbids inline styles)


@dataclass(frozen=True)
class Price:
    input: float  # USD per million tokens
    output: float


@functools.cache
def prices(path: Path = PRICES_FILE) -> dict[str, Price]:
    data = yaml.safe_load(path.read_text()) or {}
    return {str(model): Price(float(p["input"]), float(p["output"])) for model, p in data.items()}


def cost_label(model: str | None, tokens_in: int, tokens_out: int) -> str:
    """Estimated cost in dollars, or "—" for a model the price table does not list."""
    price = prices().get(model or "")
    if price is None:
        return "—"
    return f"${(tokens_in * price.input + tokens_out * price.output) / 1e6:.5f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


@dataclass(frozen=True)
class WaterfallRow:
    kind: str  # step | llm
    name: str  # the step name, or "model call"
    outcome: str
    reason: str
    at_ms: float | None
    ms: float | None
    depth: int  # 1 when inside an earlier row's span (a tool inside the policy, a model call)
    item: dict[str, Any]  # the stored step or exchange, for its details
    index: int = 0  # the model call's number, for its link to the exchange
    x: float = 0.0  # bar position and width in the SVG viewBox
    width: float = 0.0

    @property
    def timed(self) -> bool:
        return self.at_ms is not None and self.ms is not None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def waterfall(steps: list[dict[str, Any]], llm: list[dict[str, Any]], total_ms: float) -> list[WaterfallRow]:
    """The turn's steps in start order, each model call under the understand step.

    Traces recorded before step timings have none: their rows keep the recorded order, with no
    start, duration or bar (a model call still has its own duration)."""
    rows = [
        WaterfallRow(
            "step", str(s.get("step") or ""), str(s.get("outcome") or ""), str(s.get("reason") or ""),
            _num(s.get("at_ms")), _num(s.get("ms")), 0, s,
        )
        for s in steps
    ]
    if rows and all(r.timed for r in rows):
        rows.sort(key=lambda r: r.at_ms or 0.0)  # stable: equal starts keep the recorded order
    calls = [
        WaterfallRow("llm", "model call", "error" if ex.get("error") else "ok", str(ex.get("model") or ""),
                     _num(ex.get("at_ms")), _num(ex.get("ms")), 1, ex, i)
        for i, ex in enumerate(llm, start=1)
    ]
    at = next((i for i, r in enumerate(rows) if r.name == "understand"), len(rows) - 1)
    rows[at + 1:at + 1] = calls
    end = max([total_ms, *((r.at_ms or 0) + (r.ms or 0) for r in rows if r.timed)], default=0.0)
    out = []
    for i, r in enumerate(rows):
        depth = r.depth or int(any(_inside(r, o) for o in rows[:i]))
        x = width = 0.0
        if r.timed and end > 0:
            x = min(_BAR, (r.at_ms or 0) / end * _BAR)
            width = max(2.0, min(_BAR - x, (r.ms or 0) / end * _BAR))
        out.append(WaterfallRow(r.kind, r.name, r.outcome, r.reason, r.at_ms, r.ms, depth, r.item, r.index,
                                round(x, 1), round(width, 1)))
    return out


def _inside(row: WaterfallRow, outer: WaterfallRow) -> bool:
    """Strictly within ``outer``'s span (steps stamped with the same span are siblings)."""
    if not (row.timed and outer.timed) or outer.kind != "step":
        return False
    a, b = row.at_ms or 0, (row.at_ms or 0) + (row.ms or 0)
    c, d = outer.at_ms or 0, (outer.at_ms or 0) + (outer.ms or 0)
    return c <= a and b <= d and (a, b) != (c, d)


def readable_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw model tool calls with their ``arguments`` JSON string parsed, so it pretty-prints."""
    out = []
    for call in calls:
        fn = call.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            with contextlib.suppress(ValueError):  # not JSON (a broken answer): shown as it was
                call = {**call, "function": {**fn, "arguments": json.loads(fn["arguments"])}}
        out.append(call)
    return out


def pretty_json(value: Any) -> str:
    """Indented JSON for people (non-ASCII kept as is); the template's autoescaping escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
