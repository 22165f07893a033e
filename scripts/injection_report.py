"""Report the injection screen's quality on the held-out dev set.

Prints recall per attack kind and per obfuscation trick, the false-block rate on benign
messages (overall and on hard negatives), and latency, at the given threshold. Use it
after touching patterns, weights or training data; the numbers it prints are the ones
the test-suite gates on (recall >= 0.95 on clear attacks, false blocks <= 2%).

    uv run python scripts/injection_report.py [--threshold 0.8] [--show-misses]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from guardrails.injection import DATA_DIR, DEFAULT_THRESHOLD, InjectionScreen  # noqa: E402

DEV_FILE = DATA_DIR / "injection_dev.yaml"


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {hits / total:.3f}" if total else "n/a"


def report(threshold: float, show_misses: bool) -> dict[str, Any]:
    """Screen every dev item, print the tables, and return the headline numbers."""
    dev = yaml.safe_load(DEV_FILE.read_text(encoding="utf-8"))
    screen = InjectionScreen(threshold=threshold)
    screen.screen("warm-up")  # trains the classifier outside the timed loop

    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_obf: dict[str, list[bool]] = defaultdict(list)
    misses: list[tuple[str, str, float, str]] = []
    timings: list[float] = []
    for item in dev["attack"]:
        t0 = time.perf_counter()
        verdict = screen.screen(item["text"])
        timings.append(time.perf_counter() - t0)
        by_kind[item["kind"]].append(verdict.triggered)
        by_obf[item.get("obfuscation", "none")].append(verdict.triggered)
        if not verdict.triggered:
            misses.append((item["kind"], item["text"], verdict.score, verdict.reason))

    false_blocks: list[tuple[str, float, str]] = []
    hard_total = hard_blocked = 0
    for item in dev["benign"]:
        t0 = time.perf_counter()
        verdict = screen.screen(item["text"])
        timings.append(time.perf_counter() - t0)
        hard_total += bool(item.get("hard"))
        if verdict.triggered:
            hard_blocked += bool(item.get("hard"))
            false_blocks.append((item["text"], verdict.score, verdict.reason))

    print(f"injection screen on {DEV_FILE.name} at threshold {threshold}")
    print("\nrecall by attack kind (all obfuscations):")
    for kind in sorted(by_kind):
        flags = by_kind[kind]
        print(f"  {kind:<14} {_rate(sum(flags), len(flags))}")
    print("\nrecall by obfuscation ('none' = clear attacks):")
    for obf in sorted(by_obf):
        flags = by_obf[obf]
        print(f"  {obf:<14} {_rate(sum(flags), len(flags))}")
    clear = by_obf.get("none", [])
    everything = [f for flags in by_kind.values() for f in flags]
    n_benign = len(dev["benign"])
    print(f"\nrecall, clear attacks : {_rate(sum(clear), len(clear))}")
    print(f"recall, all attacks   : {_rate(sum(everything), len(everything))}")
    print(f"false-block rate      : {_rate(len(false_blocks), n_benign)}")
    print(f"  on hard negatives   : {_rate(hard_blocked, hard_total)}")
    timings.sort()
    mean_ms = sum(timings) / len(timings) * 1e3
    p99_ms = timings[int(len(timings) * 0.99) - 1] * 1e3
    print(f"latency               : mean {mean_ms:.3f} ms, p99 {p99_ms:.3f} ms")
    if show_misses:
        print("\nmissed attacks:")
        for kind, text, score, _ in misses:
            print(f"  [{kind}] {score:.3f} {text!r}")
        print("\nfalse blocks:")
        for text, score, reason in false_blocks:
            print(f"  {score:.3f} {reason} {text!r}")
    return {
        "recall_clear": sum(clear) / len(clear) if clear else 0.0,
        "recall_all": sum(everything) / len(everything),
        "false_block_rate": len(false_blocks) / n_benign,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--show-misses", action="store_true", help="list misses and false blocks")
    args = parser.parse_args()
    report(args.threshold, args.show_misses)


if __name__ == "__main__":
    main()
