"""Remove from the training files every message that also appears in an evaluation set.

Evaluation sets (the frozen dev and holdout cases, agent/nlu/dev.yaml and selfcheck.yaml, the
injection dev sets) are never trained on; a sentence two authors happened to write alike counts
as leaked. Messages are compared normalised (lowercase, words only); one- and two-word messages
("yes", "stop it") are generic dialogue acts every set shares and are left alone.
tests/agent/test_no_leaks.py fails when anything overlaps again.

    uv run python scripts/dedupe_training.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAINING = [ROOT / "agent/nlu/train.yaml", ROOT / "agent/nlu/train_kinds.yaml",
            ROOT / "guardrails/data/injection_train.yaml", ROOT / "guardrails/data/injection_families.yaml"]
MIN_WORDS = 3


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("’", "'")))


def _texts(data: object) -> list[str]:
    """Every message in an evaluation or training file, whatever its shape."""
    out: list[str] = []
    if isinstance(data, dict):
        if "cases" in data:
            for case in data["cases"] or []:
                out += [str(t["user"]) for t in case.get("turns", [])]
            return out
        for value in data.values():
            out += _texts(value)
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and "text" in item:
                out.append(str(item["text"]))
            elif isinstance(item, str):
                out.append(item)
            else:
                out += _texts(item)
    return out


def evaluation_files() -> list[Path]:
    files = [*ROOT.glob("evals/dev/**/*.yaml"), *ROOT.glob("evals/holdout/**/*.yaml"),
             ROOT / "agent/nlu/dev.yaml", ROOT / "agent/nlu/selfcheck.yaml",
             ROOT / "guardrails/data/injection_dev.yaml"]
    return sorted(p for p in files if p.exists())


def evaluation_messages() -> set[str]:
    seen: set[str] = set()
    for path in evaluation_files():
        for text in _texts(yaml.safe_load(path.read_text(encoding="utf-8"))):
            key = norm(text)
            if len(key.split()) >= MIN_WORDS:
                seen.add(key)
    return seen


def overlaps() -> dict[Path, list[str]]:
    held = evaluation_messages()
    out: dict[Path, list[str]] = {}
    for path in TRAINING:
        if path.exists():
            hits = [t for t in _texts(yaml.safe_load(path.read_text(encoding="utf-8"))) if norm(t) in held]
            if hits:
                out[path] = hits
    return out


_ITEM = re.compile(r"^(\s*-\s*)(.+?)\s*$")


def _line_text(line: str) -> str | None:
    m = _ITEM.match(line)
    if not m:
        return None
    try:
        value = yaml.safe_load(m.group(2))
    except yaml.YAMLError:
        return None
    if isinstance(value, dict):
        value = value.get("text")
    return str(value) if isinstance(value, str) else None


def main(argv: list[str]) -> int:
    found = overlaps()
    if "--check" in argv:
        for path, hits in found.items():
            print(f"{path.relative_to(ROOT)}: {len(hits)} message(s) also in an evaluation set")
        return 1 if found else 0
    held = evaluation_messages()
    for path in found:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [ln for ln in lines if (t := _line_text(ln)) is None or norm(t) not in held]
        path.write_text("".join(kept), encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: removed {len(lines) - len(kept)} line(s)")
    left = overlaps()
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
