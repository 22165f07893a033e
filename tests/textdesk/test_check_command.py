"""`textdesk check`: a business file's problems before it goes live (exit 0, 1 or 2)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from textdesk.cli import app
from textdesk.settings import DEMO_BUSINESSES, DEMO_DIR


def test_every_demo_business_is_clean() -> None:
    for name in DEMO_BUSINESSES:
        result = CliRunner().invoke(app, ["check", name])
        assert result.exit_code == 0, result.output


def test_a_shared_alias_and_a_wordless_faq_are_problems(tmp_path: Path) -> None:
    data = yaml.safe_load((DEMO_DIR / "salon.yaml").read_text())
    data["services"][1]["aliases"].append("trim")  # trim is the haircut's too
    data["faq"].append({"q": "What about it?", "a": "Yes."})
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "'trim' belongs to several services" in result.output and "no words of its own" in result.output


def test_an_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
