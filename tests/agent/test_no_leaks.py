"""No evaluation message is training data (issue 17.8): the frozen dev and holdout cases, the
older agent/nlu dev and selfcheck sets and the injection dev sets never appear, normalised, in
the intent or injection training files. scripts/dedupe_training.py removes a leak."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _dedupe() -> object:
    spec = importlib.util.spec_from_file_location("dedupe_training", ROOT / "scripts" / "dedupe_training.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_evaluation_message_is_in_the_training_data() -> None:
    dedupe = _dedupe()
    held = dedupe.evaluation_messages()  # type: ignore[attr-defined]
    assert len(held) > 2000  # the frozen sets are really being read
    leaks = dedupe.overlaps()  # type: ignore[attr-defined]
    assert not leaks, {str(p.relative_to(ROOT)): hits[:5] for p, hits in leaks.items()}


def test_the_check_sees_a_leak(tmp_path: Path) -> None:
    """The check can fail: a dev message copied into a training file is found."""
    dedupe = _dedupe()
    some = sorted(dedupe.evaluation_messages())[0]  # type: ignore[attr-defined]
    leaked = tmp_path / "train.yaml"
    leaked.write_text(f'book_appointment:\n  - "{some}"\n', encoding="utf-8")
    dedupe.TRAINING.append(leaked)  # type: ignore[attr-defined]
    try:
        assert leaked in dedupe.overlaps()  # type: ignore[attr-defined]
    finally:
        dedupe.TRAINING.remove(leaked)  # type: ignore[attr-defined]
