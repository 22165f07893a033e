"""What changed: two configurations on the same cases, or today's pipeline on stored traffic.

``diff_runs`` lines up two runs (``--compare A B``): per-metric deltas with regressions flagged,
and the cases whose outcome or per-turn route/intent/tools moved. A metric regresses when it
gets worse in its own direction; latency must be 20 % and 1 ms worse to count, because timing
noise is not a regression. ``blocked_rate`` has no good direction and is only shown.

``replay`` plays stored conversations through the current pipeline. Each conversation becomes a
case (``evals.fixtures.conversation_to_case``) and runs through the eval runner: the same
isolated store and the same code path as ``textdesk eval``. Each turn is then compared with the
stored trace on route, intent, tools, escalation and reply text. Booking ids minted during the
conversation differ by construction and are compared as ``<new>``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from evals.fixtures import as_utc, conversation_to_case, conversation_turns
from evals.loader import LoadedCase, build_case
from evals.metrics import EXTRA, HIGHER_IS_BETTER, LOWER_IS_BETTER, METRICS
from evals.report import Run, fmt_metric, run_json
from evals.runner import CaseOutcome, ProviderPool, fmt_tools, run_case
from store.db import make_engine, make_sessionmaker
from store.models import Contact, Conversation, Message, Trace
from textdesk.business import Business
from textdesk.errors import EvalFileError
from textdesk.settings import Settings

__all__ = ["CaseChange", "MetricDelta", "Replayed", "compare_json", "diff_runs", "print_diff", "print_replay",
           "replay", "stored_case"]

_TURN_FIELDS = ("route", "intent", "tools")


@dataclass(frozen=True)
class MetricDelta:
    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def regression(self) -> bool:
        d = self.delta
        if d is None:
            return self.a is not None  # measured before, not any more
        if self.name in HIGHER_IS_BETTER:
            return d < -1e-9
        if self.name.endswith("_ms"):
            return d > 1.0 and self.b is not None and self.a is not None and self.b > self.a * 1.2
        return self.name in LOWER_IS_BETTER and d > 1e-9


@dataclass
class CaseChange:
    id: str
    a_passed: bool | None  # None: the case is not in that run
    b_passed: bool | None
    changes: list[str] = field(default_factory=list)


def _tools_key(tools: list[dict[str, Any]]) -> str:
    """Order-insensitive text form of a tool list."""
    return fmt_tools(sorted(tools, key=lambda t: (t["name"], str(sorted((t.get("args") or {}).items())))))


def _turn_changes(a: CaseOutcome, b: CaseOutcome) -> list[str]:
    out = []
    for ta, tb in zip(a.turns, b.turns, strict=False):
        for f in _TURN_FIELDS:
            va, vb = ta.actual.get(f), tb.actual.get(f)
            if f == "tools":
                va, vb = _tools_key(va or []), _tools_key(vb or [])
            if va != vb:
                out.append(f"turn {ta.index}: {f} {va} -> {vb}")
    if len(a.turns) != len(b.turns):
        out.append(f"turns played {len(a.turns)} -> {len(b.turns)}")
    return out


def diff_runs(a: Run, b: Run) -> tuple[list[MetricDelta], list[CaseChange]]:
    deltas = [MetricDelta(n, a.metrics.values[n], b.metrics.values[n]) for n in METRICS + EXTRA]
    by_a, by_b = {c.id: c for c in a.cases}, {c.id: c for c in b.cases}
    changes = []
    for cid in dict.fromkeys([*by_a, *by_b]):
        ca, cb = by_a.get(cid), by_b.get(cid)
        if ca is None or cb is None:
            changes.append(CaseChange(cid, ca.passed if ca else None, cb.passed if cb else None,
                                      ["only in one run"]))
            continue
        turns = _turn_changes(ca, cb)
        if turns or ca.passed != cb.passed:
            changes.append(CaseChange(cid, ca.passed, cb.passed, turns))
    return deltas, changes


def compare_json(a: Run, b: Run) -> dict[str, Any]:
    """Both reports (each in the docs/architecture.md section 4 shape) plus the diff."""
    deltas, changes = diff_runs(a, b)
    return {"a": run_json(a), "b": run_json(b), "diff": {
        "metrics": {d.name: {"a": d.a, "b": d.b, "delta": d.delta, "regression": d.regression}
                    for d in deltas},
        "cases": [{"id": c.id, "a_passed": c.a_passed, "b_passed": c.b_passed, "changes": c.changes}
                  for c in changes]}}


def print_diff(console: Console, a: Run, b: Run) -> None:
    deltas, changes = diff_runs(a, b)
    table = Table(title=f"{a.label}  vs  {b.label}", title_justify="left")
    for name, just in (("metric", "left"), ("A", "right"), ("B", "right"), ("delta", "right")):
        table.add_column(name, justify=just)  # type: ignore[arg-type]
    for d in deltas:
        delta = "" if d.delta is None else (f"{d.delta:+.1f} ms" if d.name.endswith("_ms") else
                                            f"{d.delta:+.2f}" if d.name in LOWER_IS_BETTER else
                                            f"{d.delta * 100:+.1f} pt")
        style = "red" if d.regression else ("green" if d.delta else "")
        table.add_row(d.name, fmt_metric(d.name, d.a), fmt_metric(d.name, d.b),
                      f"[{style}]{delta}{' (regression)' if d.regression else ''}[/]" if style else delta)
    console.print(table)
    for label, run in (("A", a), ("B", b)):
        passed = len(run.cases) - run.failed
        console.print(f"{label}: {passed}/{len(run.cases)} cases passed", highlight=False)
    if not changes:
        console.print("no case changed outcome or route/intent/tools")
    for c in changes:
        mark = {True: "pass", False: "FAIL", None: "absent"}
        console.print(f"[bold]{c.id}[/]: {mark[c.a_passed]} -> {mark[c.b_passed]}", highlight=False)
        for line in c.changes:
            console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)


# -- replay ---------------------------------------------------------------------------------------

@dataclass
class Replayed:
    conversation_id: int
    turns: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _norm_tools(tools: list[dict[str, Any]], known: set[str]) -> str:
    out = []
    for t in tools:
        args = dict(t.get("args") or {})
        if "booking_id" in args and args["booking_id"] not in known:
            args["booking_id"] = "<new>"
        out.append({"name": t["name"], "args": args})
    return _tools_key(out)


def _diff_turn(stored: Trace, actual: dict[str, Any], known: set[str]) -> list[tuple[str, Any, Any]]:
    pairs = [("route", stored.route, actual["route"]), ("intent", stored.intent, actual["intent"]),
             ("tools", _norm_tools(stored.tools, known), _norm_tools(actual["tools"], known)),
             ("escalated", stored.escalated, actual["escalated"]), ("reply", stored.reply, actual["reply"])]
    return [p for p in pairs if p[1] != p[2]]


async def _select(session: Any, since: dt.datetime | None, until: dt.datetime | None, tags: list[str],
                  escalated: bool) -> list[int]:
    q = select(Conversation).order_by(col(Conversation.id))
    if since is not None:
        q = q.where(Conversation.started_at >= since)
    if until is not None:
        q = q.where(Conversation.started_at < until)
    picked = []
    for conv in await session.exec(q):
        if tags:
            contact = await session.get(Contact, conv.contact_id)
            have = set(conv.tags) | set(contact.tags if contact else [])
            if not have & set(tags):  # a conversation or contact tag matches
                continue
        if escalated and conv.escalated_at is None and conv.escalation_reason is None:
            continue
        picked.append(conv.id)
    return picked


async def stored_case(session: Any, conversation_id: int,
                      business: Business) -> tuple[LoadedCase, list[tuple[Message, Trace | None]]]:
    """A stored conversation as a runnable case, with its stored turns to compare against.

    Raises LookupError, ValueError or EvalFileError when it cannot be replayed."""
    data = await conversation_to_case(session, conversation_id, business)
    case = build_case(data, business, source="<replay>", suite="replay",
                      where=f"conversation {conversation_id}")
    return case, await conversation_turns(session, conversation_id)


async def replay(database_url: str, settings: Settings, business: Business, *,
                 since: dt.datetime | None = None, until: dt.datetime | None = None,
                 tags: list[str] | None = None, escalated: bool = False) -> list[Replayed]:
    """Replay stored conversations through the current pipeline; per turn, what changed."""
    engine = make_engine(database_url)
    pool = ProviderPool(settings)
    out: list[Replayed] = []
    try:
        sessions = make_sessionmaker(engine)
        async with sessions() as session:
            ids = await _select(session, since, until, tags or [], escalated)
        for cid in ids:
            rep = Replayed(cid)
            out.append(rep)
            async with sessions() as session:
                try:
                    case, stored = await stored_case(session, cid, business)
                except (LookupError, ValueError, EvalFileError) as exc:  # no messages, service gone...
                    rep.error = str(exc)
                    continue
            outcome = await run_case(case, settings, pool)
            rep.turns, rep.error = len(outcome.turns), outcome.error
            known = {b.id for b in case.model.contact.bookings if b.id}
            for (msg, trace), turn in zip(stored, outcome.turns, strict=False):
                if trace is None:
                    continue
                for name, was, now in _diff_turn(trace, turn.actual, known):
                    rep.changes.append({"turn": turn.index, "message_id": msg.id, "user": msg.body,
                                        "at": as_utc(msg.created_at).isoformat(), "field": name,
                                        "stored": was, "replayed": now})
    finally:
        await pool.aclose()
        await engine.dispose()
    return out


def print_replay(console: Console, results: list[Replayed]) -> None:
    table = Table(title="changed turns", title_justify="left")
    for name in ("conversation", "turn", "message", "field", "stored", "replayed"):
        table.add_column(name, overflow="fold")
    for r in results:
        for c in r.changes:
            table.add_row(str(r.conversation_id), str(c["turn"]), c["user"], c["field"], str(c["stored"]),
                          str(c["replayed"]))
    if any(r.changes for r in results):
        console.print(table)
    for r in results:
        if r.error:
            console.print(f"[red]conversation {r.conversation_id}: {r.error}[/]", highlight=False)
    changed = sum(1 for r in results for _ in {c["turn"] for c in r.changes})
    console.print(f"{len(results)} conversations, {sum(r.turns for r in results)} turns replayed, "
                  f"{changed} turns changed", highlight=False)
