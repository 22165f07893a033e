"""Speed of the offline understanding pieces (a benchmark, not a test: these machines are noisy).

uv run python scripts/bench_understanding.py
"""

from __future__ import annotations

import statistics
import time

from agent.nlu.intents import TRAIN_PATH, IntentClassifier, load_examples
from guardrails.injection import InjectionScreen


def _ms(fn: object, items: list[str]) -> list[float]:
    out = []
    for t in items:
        start = time.perf_counter()
        fn(t)  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    start = time.process_time()
    clf = IntentClassifier.from_file(TRAIN_PATH)
    train_cpu = time.process_time() - start
    texts = [t for ts in load_examples(TRAIN_PATH.parent / "selfcheck.yaml").values() for t in ts]
    screen = InjectionScreen()
    screen.screen("warm up")
    rows = [("intent classifier training (CPU s)", f"{train_cpu:.2f}", "< 1.5")]
    target: object
    for name, fn, target in (("intent predict", clf.predict, 1.0), ("injection screen", screen.screen, 2.0)):
        lat = _ms(fn, texts * 3)
        rows.append(
            (
                f"{name} p50 / p95 (ms)",
                f"{statistics.median(lat):.3f} / {statistics.quantiles(lat, n=20)[18]:.3f}",
                f"< {target}",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>15}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>15}  {target}")


if __name__ == "__main__":
    main()
