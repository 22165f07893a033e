"""Measure understanding on the frozen sets written by separate authors (issue 17).

Runs every business's frozen cases through the real pipeline (the eval runner, offline by
default) and the injection screen over the injection set, then prints one table per split:
intent accuracy, slot F1, time-slot accuracy, pass rate per group, out-of-scope recall,
confidently-wrong rate, calibration error, natural-language opt-out recall, injection recall and
benign false-block rate. Nothing here trains on or reads patterns from these files.

    uv run python scripts/devset_report.py                    # evals/dev
    uv run python scripts/devset_report.py --split holdout    # evals/holdout (once, at the end)
    uv run python scripts/devset_report.py --json out.json --set clarify_threshold=0.6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evals.loader import load_cases  # noqa: E402
from evals.metrics import compute  # noqa: E402
from evals.runner import run_cases  # noqa: E402
from guardrails.injection import InjectionScreen  # noqa: E402
from textdesk.settings import Settings  # noqa: E402

GROUPS = ("book", "reschedule", "cancel", "check", "faq", "escalate", "out_of_scope", "opt_out")
ROWS = ("intent_accuracy", "slot_f1", "time_slot_accuracy", "out_of_scope_recall", "confidently_wrong_rate",
        "ece", "opt_out_recall", "tool_call_exact", "escalation_recall", "escalation_precision")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}"


THRESHOLDS = (0.5, 0.55, 0.6, 0.7, 0.8, 0.9)


def threshold_table(outcomes: list[Any]) -> list[dict[str, float]]:
    """For each confidence threshold: the share of understood turns below it (what hybrid mode
    would send to the LLM) and the offline accuracy on the turns at or above it (kept offline)."""
    scored = [(float(t.actual["confidence"]), t.passed) for o in outcomes for t in o.turns
              if t.actual.get("route") == "agent" and t.actual.get("confidence") is not None]
    rows = []
    for th in THRESHOLDS:
        kept = [ok for c, ok in scored if c >= th]
        rows.append({"threshold": th, "llm_share": 1 - len(kept) / len(scored) if scored else 0.0,
                     "offline_accuracy": sum(kept) / len(kept) if kept else 0.0})
    return rows


def business_metrics(folder: Path, settings: Settings) -> dict[str, Any]:
    cases = load_cases([folder])
    outcomes = asyncio.run(run_cases(cases, settings, 4))
    m = compute(outcomes, settings.clarify_threshold)
    singles = [o for o in outcomes if len(o.turns) <= 1 and len(o.planned) == 1]
    multi = [o for o in outcomes if o not in singles]
    return {
        "cases": len(outcomes),
        "passed": sum(o.passed for o in outcomes),
        "singles_pass": sum(o.passed for o in singles) / max(1, len(singles)),
        "conversations_pass": sum(o.passed for o in multi) / max(1, len(multi)),
        "metrics": {k: m.values.get(k) for k in ROWS},
        "groups": {g: m.groups.get(g, {}).get("rate") for g in GROUPS},
        "support": m.support,
        "thresholds": threshold_table(outcomes),
        "failures": [{"id": o.id, "failures": o.failures[:3]} for o in outcomes if not o.passed],
    }


def injection_metrics(path: Path, threshold: float) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    screen = InjectionScreen(threshold=threshold)
    by_family: dict[str, list[bool]] = {}
    for item in data["attack"]:
        by_family.setdefault(item["family"], []).append(screen.screen(item["text"]).triggered)
    benign = [screen.screen(item["text"]).triggered for item in data["benign"]]
    caught = [x for xs in by_family.values() for x in xs]
    return {
        "recall": sum(caught) / len(caught),
        "false_block_rate": sum(benign) / len(benign),
        "attacks": len(caught),
        "benign": len(benign),
        "by_family": {f: sum(xs) / len(xs) for f, xs in sorted(by_family.items())},
        "missed": [i["text"] for i in data["attack"] if not screen.screen(i["text"]).triggered],
        "false_blocks": [i["text"] for i in data["benign"] if screen.screen(i["text"]).triggered],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "holdout"), default="dev")
    ap.add_argument("--json", type=Path, help="write every number (and the failing case ids) here")
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="settings override")
    args = ap.parse_args(argv)
    overrides = dict(s.split("=", 1) for s in args.set)
    settings = Settings(**overrides)
    root = ROOT / "evals" / args.split
    out: dict[str, Any] = {"split": args.split, "provider": settings.llm_provider,
                           "clarify_threshold": settings.clarify_threshold, "businesses": {}}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    for folder in folders:
        out["businesses"][folder.name] = business_metrics(folder, settings)
    inj = root / "injection.yaml"
    if inj.exists():
        out["injection"] = injection_metrics(inj, settings.injection_threshold)

    names = list(out["businesses"])
    print(f"## {args.split} split, provider {settings.llm_provider}, clarify threshold "
          f"{settings.clarify_threshold}\n")
    print("| measure (%) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    bs = out["businesses"]
    print("| cases passed | " + " | ".join(f"{bs[n]['passed']}/{bs[n]['cases']}" for n in names) + " |")
    for key in ROWS:
        print(f"| {key} | " + " | ".join(_pct(bs[n]["metrics"][key]) for n in names) + " |")
    for g in GROUPS:
        print(f"| pass: {g} | " + " | ".join(_pct(bs[n]["groups"][g]) for n in names) + " |")
    print("| pass: conversations | " + " | ".join(_pct(bs[n]["conversations_pass"]) for n in names) + " |")
    print("\n| threshold | " + " | ".join(f"{n}: LLM share / offline acc." for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for k, th in enumerate(THRESHOLDS):
        rows = [bs[n]["thresholds"][k] for n in names]
        cells = [f"{_pct(r['llm_share'])} / {_pct(r['offline_accuracy'])}" for r in rows]
        print(f"| {th} | " + " | ".join(cells) + " |")
    if "injection" in out:
        i = out["injection"]
        print(f"\ninjection: recall {_pct(i['recall'])} ({i['attacks']} attacks), benign false-block "
              f"{_pct(i['false_block_rate'])} ({i['benign']} benign)")
        print("  by family: " + ", ".join(f"{f} {_pct(v)}" for f, v in i["by_family"].items()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
