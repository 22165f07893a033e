"""How many model calls would hybrid mode make on the shipped eval suites?

Plays every user turn of the suites through the offline provider and the real policy with a
simple in-memory state (no database, tools answer "ok"), and counts the turns hybrid would send
to the model at ``settings.hybrid_threshold`` (and a few other thresholds). Hard-rule turns
(STOP, HELP, HUMAN...), turns while the contact is in handoff or opted out, and turns the case
expects to be blocked or rate-limited never reach understanding: they cost no call in any mode.

Assumes one model call per LLM turn (no retries or repairs), so "openai" is the call count of
sending every understanding turn to the model. Times the offline parse + policy per turn: the
pipeline's own understanding cost, excluding the model and the store.

    uv run python scripts/bench_hybrid.py [SUITE_PATH ...] [--threshold 0.8]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.llm_output import understand_tool  # noqa: E402
from agent.policy import BookingView, PolicyContext, decide  # noqa: E402
from agent.prompts import estimate_tokens, load_prompt, render_system  # noqa: E402
from agent.providers.base import UnderstandRequest  # noqa: E402
from agent.providers.hybrid import offline_suffices  # noqa: E402
from agent.providers.offline import OfflineProvider  # noqa: E402
from agent.state import DialogueState  # noqa: E402
from evals.loader import LoadedCase, load_cases  # noqa: E402
from guardrails.keywords import match_rule  # noqa: E402
from textdesk.business import load_business  # noqa: E402
from textdesk.settings import DEMO_BUSINESS_FILE, Settings  # noqa: E402
from tools.actions import ToolResult  # noqa: E402

SWEEP = (0.6, 0.7, 0.8, 0.9)
_SILENT_ROUTES = {"blocked", "limited", "handoff", "rule"}


@dataclass
class Tally:
    inbound: int = 0
    understood: int = 0
    confidences: list[float] = field(default_factory=list)  # offline confidence per understood turn
    acts: list[bool] = field(default_factory=list)  # a dialogue act answering a pending question
    ms: list[float] = field(default_factory=list)

    def llm_calls(self, threshold: float) -> int:
        return sum(1 for c, act in zip(self.confidences, self.acts, strict=True) if c < threshold and not act)


def default_paths() -> list[Path]:
    suites = ROOT / "evals" / "suites"
    if suites.is_dir() and any(suites.iterdir()):
        return [suites]
    return [ROOT.parent / "shared" / "examples" / "cases.yaml"]


async def play(case: LoadedCase, offline: OfflineProvider, tally: Tally) -> None:
    contact = case.model.contact
    opted_out, handoff = contact.consent == "opted_out", contact.handoff
    bookings = [BookingView(id=b.id or f"b{i}", service=b.service, provider=b.provider, date=b.date,
                            time=b.time)
                for i, b in enumerate(contact.bookings, 1)]
    state = DialogueState()

    async def run_tool(name: str, args: dict[str, Any]) -> ToolResult:
        return ToolResult(name, args, ok=True)

    for turn, now in zip(case.turns, case.times, strict=True):
        tally.inbound += 1
        rule = match_rule(turn.user, opted_out)
        if rule is not None:
            opted_out = rule.rule == "opt_out" or (opted_out and rule.rule != "opt_in")
            handoff = handoff or rule.rule == "human"
            continue
        if opted_out or handoff or turn.expect.route in _SILENT_ROUTES:
            continue
        started = time.perf_counter()
        req = UnderstandRequest(turn.user, case.business, now, state,
                                bookings=[f"[{b.id}] {b.line()}" for b in bookings])
        u = offline.parse(req)
        act = offline_suffices(u, state, 1.01)  # pending-question acts skip the model at any threshold
        ctx = PolicyContext(case.business, now, bookings, [], run_tool, text=turn.user)
        decision = await decide(u, state, ctx)
        tally.ms.append((time.perf_counter() - started) * 1000)
        tally.understood += 1
        tally.confidences.append(u.confidence)
        tally.acts.append(act)
        handoff = handoff or decision.escalation is not None


def prompt_tokens(settings: Settings) -> tuple[int, int]:
    """Estimated tokens of the rendered system prompt (demo business) and of the tool schema."""
    spec = load_prompt(settings.prompt)
    req = UnderstandRequest("can i get a cut tmrw", load_business(DEMO_BUSINESS_FILE),
                            dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC), DialogueState(),
                            bookings=["[b1] haircut with Kim on Thu Mar 5 at 3:00 PM"])
    return (estimate_tokens(render_system(spec, req)),
            estimate_tokens(json.dumps(understand_tool(spec.tools))))


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--threshold", type=float, default=None, help="default: settings.hybrid_threshold")
    args = parser.parse_args(argv)
    settings = Settings()
    threshold = args.threshold if args.threshold is not None else settings.hybrid_threshold
    paths = args.paths or default_paths()

    cases = load_cases(paths)
    offline = OfflineProvider()
    _ = offline.classifier  # load (train) once, outside the timed turns
    tally = Tally()

    async def run_all() -> None:
        for case in cases:
            await play(case, offline, tally)

    asyncio.run(run_all())
    system_tokens, tool_tokens = prompt_tokens(settings)

    console = Console()
    console.print(f"[bold]Suites:[/] {', '.join(str(p) for p in paths)}  "
                  f"({len(cases)} cases, {tally.inbound} inbound messages, "
                  f"{tally.understood} reach understanding)")
    table = Table(title="Model calls by mode (1 call per LLM turn)")
    for col in ("mode", "threshold", "LLM calls", "calls / inbound msg", "share saved vs openai"):
        table.add_column(col, justify="right")
    per_msg = tally.understood / max(tally.inbound, 1)
    table.add_row("openai", "-", str(tally.understood), f"{per_msg:.3f}", "0.0%")
    for t in sorted({*SWEEP, threshold}):
        calls = tally.llm_calls(t)
        saved = 1 - calls / tally.understood if tally.understood else 0.0
        mark = " *" if t == threshold else ""
        table.add_row(f"hybrid{mark}", f"{t:.2f}", str(calls), f"{calls / max(tally.inbound, 1):.3f}",
                      f"{saved:.1%}")
    table.add_row("offline", "-", "0", "0.000", "100.0%")
    console.print(table)

    cost = Table(title="Per-turn cost outside the model")
    cost.add_column("measure")
    cost.add_column("value", justify="right")
    cost.add_row("system prompt, demo business (est. tokens, chars/4)", str(system_tokens))
    cost.add_row("understand tool schema (est. tokens)", str(tool_tokens))
    cost.add_row("offline parse + policy, p50 ms", f"{pct(tally.ms, 50):.2f}")
    cost.add_row("offline parse + policy, p95 ms", f"{pct(tally.ms, 95):.2f}")
    cost.add_row("offline parse + policy, mean ms", f"{statistics.fmean(tally.ms) if tally.ms else 0:.2f}")
    console.print(cost)
    console.print("* = settings.hybrid_threshold (or --threshold). Dialogue acts answering a pending "
                  "question never call the model.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
