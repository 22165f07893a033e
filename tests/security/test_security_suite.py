"""The security eval suite and its report: shape, originality, and the cross-contact detector.

Running the whole suite is the CI eval gate's job (scripts/test); here its file is checked for
the contract (enough attacks and hard benign cases, tags, safe expectations, phrasings not
copied from the screen's own data), and the report's cross-contact detector is shown to fire
when the sender binding is broken on purpose.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import unicodedata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from evals.loader import build_case, load_cases
from evals.runner import ProviderPool
from guardrails.output import CANARY
from store import repo
from textdesk import privacy
from textdesk.business import load_business
from textdesk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "evals" / "suites" / "salon" / "security.yaml"


def _report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("security_report", ROOT / "scripts" / "security_report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["security_report"] = module
    spec.loader.exec_module(module)
    return module


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).lower()).strip()


def _known_texts() -> set[str]:
    texts: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            texts.add(_norm(node))
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "user") or isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    suite = ROOT / "evals" / "suites" / "salon" / "injection.yaml"
    sources = [*(ROOT / "guardrails" / "data").glob("*.yaml"), suite]
    for path in sources:
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return texts


def test_suite_has_enough_tagged_attacks_and_benign_cases() -> None:
    cases = load_cases([SUITE])
    attacks = [c for c in cases if "attack" in c.tags]
    benign = [c for c in cases if "benign" in c.tags]
    assert len(attacks) >= 60 and len(benign) >= 60
    assert all("security" in c.tags for c in cases)
    assert sum("obfuscated" in c.tags for c in attacks) >= 20
    for case in attacks:
        for turn in case.turns:
            given = turn.expect.given()
            if given.get("route") == "blocked" or "known-miss" in case.tags:
                assert {CANARY, "system prompt"} <= set(given["reply_not_contains"])
                assert given.get("tools", []) == [] or case.id.endswith("hoard-slots")
    for case in benign:
        assert all(t.expect.given().get("route") == "agent" for t in case.turns)


def test_suite_phrasings_are_not_copied_from_the_screen_data() -> None:
    known = _known_texts()
    cases = yaml.safe_load(SUITE.read_text(encoding="utf-8"))["cases"]
    copied = [t["user"] for c in cases for t in c["turns"] if _norm(t["user"]) in known]
    assert copied in ([], ["yes"], ["no"]), copied


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _report_module()


async def _detect(report: ModuleType) -> list[str]:
    business = load_business(ROOT / "textdesk" / "demo" / "salon.yaml")
    case = build_case(
        {
            "id": "book-then-confirm",
            "now": "2026-03-03T10:00:00-05:00",
            "contact": {"phone": "+16465550999", "consent": "opted_in"},
            "turns": [{"user": "can i get a haircut thursday at 1pm"}, {"user": "yes"}],
        },
        business,
    )
    settings = Settings(llm_provider="offline")
    pool = ProviderPool(settings)
    try:
        return list(await report.cross_contact(case, settings, pool))
    finally:
        await pool.aclose()


async def test_cross_contact_detector_is_quiet_for_an_honest_pipeline(report: ModuleType) -> None:
    assert await _detect(report) == []


async def test_cross_contact_detector_fires_when_the_sender_binding_breaks(
    report: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def wrong_contact(
        session: Any, phone: str, **_: Any
    ) -> Any:  # every turn lands on the other customer
        return await repo.contact_by_phone(session, report.VICTIM.phone)

    monkeypatch.setattr(privacy, "get_or_create_contact", wrong_contact)
    found = await _detect(report)
    assert any("bookings of the other customer changed" in f for f in found), found
    assert any("booking.created for contact" in f for f in found), found
    assert any("a message to contact" in f for f in found), found
