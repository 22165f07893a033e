"""No business vocabulary in code (issue 17.1): the services, aliases and providers of the demo
businesses come from their files only. Every string literal in the understanding, guardrail,
tool and core code (docstrings and comments aside, which may use them as examples) is checked
for them as whole words."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from textdesk.business import load_business
from textdesk.settings import DEMO_BUSINESSES, DEMO_DIR

ROOT = Path(__file__).resolve().parents[2]
CODE = ["agent", "guardrails", "tools", "textdesk"]
# Words that are also plain English the code needs for other reasons: a business may name a
# service with them, but no code pattern is about that service.
ENGLISH = {"cut", "review", "display", "flat", "service", "bike service", "inspection", "check up",
           "estimate", "diagnosis", "battery", "new battery", "scrub", "peel", "needles", "consultation",
           "followup", "follow up", "evaluation", "assessment"}


def _vocabulary() -> set[str]:
    words: set[str] = set()
    for name in DEMO_BUSINESSES:
        b = load_business(DEMO_DIR / f"{name}.yaml")
        for s in b.services:
            words.update(w.lower() for w in (s.name, *s.aliases))
        words.update(p.lower() for p in b.providers)
    return {w for w in words if w not in ENGLISH and len(w) >= 3}


def _literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_code_names_no_service_alias_or_provider_of_any_demo_business() -> None:
    vocab = _vocabulary()
    assert {"massage", "haircut", "screen repair", "dr. chen", "maya"} <= vocab
    found: list[str] = []
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            for text in _literals(path):
                low = text.lower()
                for w in vocab:
                    if re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", low):
                        found.append(f"{path.relative_to(ROOT)}: {w!r} in {text[:60]!r}")
    assert not found, "\n".join(found[:20])
