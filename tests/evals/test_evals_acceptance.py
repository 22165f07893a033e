"""Acceptance: the shared sample (docs/architecture.md section 4) passes on a correct textdesk,
with compliance at 100 %."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.loader import load_cases
from evals.report import Run
from evals.runner import run_cases
from textdesk.settings import Settings

SAMPLE = Path("/work/shared/examples/cases.yaml")


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared examples not present")
async def test_design_sample_passes() -> None:
    settings = Settings(llm_provider="offline")
    run = Run("sample", settings, await run_cases(load_cases([SAMPLE]), settings))
    assert [c.id for c in run.cases if not c.passed] == [], [c.failures for c in run.cases if not c.passed]
    assert run.metrics.values["compliance"] == 1.0
