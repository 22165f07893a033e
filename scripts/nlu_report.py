"""Evaluation report for the offline intent classifier.

Prints, for each evaluation file (default: agent/nlu/dev.yaml if present and
agent/nlu/selfcheck.yaml), the accuracy, out_of_scope and book_appointment
recall, per-intent precision / recall / F1 and a confusion table (rows = gold,
columns = predicted).  Sentences that also appear verbatim (case-insensitive)
in train.yaml are reported separately, so the "unseen" numbers are honest.

    uv run python scripts/nlu_report.py                  # dev + selfcheck
    uv run python scripts/nlu_report.py path/to/set.yaml --errors
    uv run python scripts/nlu_report.py --cv 5           # also k-fold CV on train.yaml
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.nlu.intents import (
    INTENTS,
    NLU_DIR,
    TRAIN_PATH,
    IntentClassifier,
    load_examples,
)

ABBREV = {
    "book_appointment": "book",
    "reschedule_appointment": "resch",
    "cancel_appointment": "cancl",
    "check_appointment": "check",
    "ask_question": "ask",
    "update_contact": "contc",
    "request_human": "human",
    "billing": "bill",
    "complaint": "compl",
    "greeting": "greet",
    "out_of_scope": "oos",
}

Pair = tuple[str, str]  # (text, gold intent)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def predict_all(clf: IntentClassifier, items: Sequence[Pair]) -> list[tuple[str, str, str, float]]:
    out = []
    for text, gold in items:
        p = clf.predict(text)
        out.append((text, gold, p.intent, p.confidence))
    return out


def report(title: str, results: Sequence[tuple[str, str, str, float]], show_errors: bool) -> None:
    n = len(results)
    print(f"\n=== {title}  (n={n})")
    if not n:
        print("  (empty)")
        return
    labels = [i for i in INTENTS if any(r[1] == i or r[2] == i for r in results)]
    conf = {g: dict.fromkeys(labels, 0) for g in labels}
    for _, gold, pred, _ in results:
        conf[gold][pred] += 1
    correct = sum(conf[g][g] for g in labels)
    print(f"accuracy: {correct / n:.3f}  ({correct}/{n})")
    for intent in ("out_of_scope", "book_appointment"):
        sup = sum(conf.get(intent, {}).values())
        if sup:
            print(f"{intent} recall: {conf[intent][intent] / sup:.3f}  ({conf[intent][intent]}/{sup})")
    in_scope = [r for r in results if r[1] != "out_of_scope"]
    if in_scope:
        fa = sum(1 for r in in_scope if r[2] == "out_of_scope")
        print(f"in-scope sent to out_of_scope: {fa / len(in_scope):.3f}  ({fa}/{len(in_scope)})")

    print(f"\n{'intent':24s} {'prec':>6s} {'recall':>6s} {'f1':>6s} {'support':>7s}")
    f1s = []
    for lab in labels:
        tp = conf[lab][lab]
        pred_n = sum(conf[g][lab] for g in labels)
        sup = sum(conf[lab].values())
        prec = tp / pred_n if pred_n else 0.0
        rec = tp / sup if sup else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        if sup:
            f1s.append(f1)
        print(f"{lab:24s} {prec:6.3f} {rec:6.3f} {f1:6.3f} {sup:7d}")
    if f1s:
        print(f"{'macro F1':24s} {'':6s} {'':6s} {statistics.fmean(f1s):6.3f}")

    print("\nconfusion (rows = gold, columns = predicted)")
    head = "".join(f"{ABBREV.get(lab, lab[:5]):>6s}" for lab in labels)
    print(f"{'':8s}{head}")
    for g in labels:
        row = "".join(f"{(conf[g][p] or '.'):>6}" for p in labels)
        print(f"{ABBREV.get(g, g[:5]):8s}{row}")

    if show_errors:
        errs = sorted((r for r in results if r[1] != r[2]), key=lambda r: (r[1], r[2]))
        if errs:
            print("\nerrors (gold -> predicted, confidence):")
            for text, gold, pred, c in errs:
                print(f"  {gold:22s} -> {pred:22s} {c:.2f}  {text}")


def cross_validate(k: int) -> list[tuple[str, str, str, float]]:
    data = load_examples(TRAIN_PATH)
    items = [(t, lab) for lab, ts in data.items() for t in ts]
    order = list(range(len(items)))
    random.Random(0).shuffle(order)
    results = []
    for fold in range(k):
        test = set(order[fold::k])
        train: dict[str, list[str]] = {}
        for i, (t, lab) in enumerate(items):
            if i not in test:
                train.setdefault(lab, []).append(t)
        clf = IntentClassifier.train(train)
        results.extend(predict_all(clf, [items[i] for i in sorted(test)]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="eval YAML files (intent -> [examples])")
    ap.add_argument("--errors", action="store_true", help="list misclassified examples")
    ap.add_argument("--cv", type=int, default=0, metavar="K", help="also run K-fold CV on train.yaml")
    args = ap.parse_args(argv)

    files = [Path(f) for f in args.files]
    if not files:
        files = [p for p in (NLU_DIR / "dev.yaml", NLU_DIR / "selfcheck.yaml") if p.exists()]
        if not (NLU_DIR / "dev.yaml").exists():
            print("note: agent/nlu/dev.yaml not found; reporting selfcheck only")

    t0 = time.perf_counter()
    c0 = time.process_time()
    clf = IntentClassifier.from_file(TRAIN_PATH)
    train_wall = time.perf_counter() - t0
    train_cpu = time.process_time() - c0
    train_data = load_examples(TRAIN_PATH)
    train_keys = {_key(t) for ts in train_data.values() for t in ts}
    sizes = ", ".join(f"{k}={len(v)}" for k, v in train_data.items())
    print(f"train.yaml: {sum(len(v) for v in train_data.values())} examples ({sizes})")
    print(f"features: {clf.model.n_features}; training: {train_wall:.2f}s wall, {train_cpu:.2f}s cpu")

    for path in files:
        data = load_examples(path)
        unknown = set(data) - set(INTENTS)
        if unknown:
            print(f"warning: {path} has unknown intents {sorted(unknown)} (skipped)")
        items = [(t, lab) for lab, ts in data.items() if lab in INTENTS for t in ts]
        results = predict_all(clf, items)
        unseen = [r for r in results if _key(r[0]) not in train_keys]
        overlap = len(results) - len(unseen)
        report(f"{path.name}: all", results, args.errors)
        if overlap:
            report(f"{path.name}: excluding {overlap} sentences also in train.yaml", unseen, False)

    if args.cv:
        report(f"train.yaml {args.cv}-fold cross-validation", cross_validate(args.cv), args.errors)

    texts = [t for ts in train_data.values() for t in ts][:2000]
    t0 = time.perf_counter()
    for t in texts:
        clf.predict(t)
    per = (time.perf_counter() - t0) / len(texts)
    print(f"\npredict latency: {per * 1e3:.3f} ms/message (mean over {len(texts)} messages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
