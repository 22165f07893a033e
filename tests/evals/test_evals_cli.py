"""`textdesk eval` end to end: exit codes, filters, gates, JSON/JUnit/HTML, --compare."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textdesk.cli import app
from textdesk.settings import DEMO_BUSINESS_FILE, Settings

runner = CliRunner()

CASES = f"""\
suite: cli
defaults:
  now: "2026-03-03T10:00:00-05:00"
  business: {DEMO_BUSINESS_FILE}
  contact: {{phone: "+12125550140", consent: opted_in}}
cases:
  - id: stop
    tags: [compliance]
    turns:
      - user: STOP
        expect: {{route: rule, rule: opt_out, consent: opted_out, reply: true, tools: []}}
    final: {{consent: opted_out}}
  - id: help
    tags: [compliance, help]
    turns:
      - user: HELP
        expect: {{route: rule, rule: help, reply_contains: ["STOP"], max_segments: 2}}
  - id: human
    tags: [handoff]
    turns:
      - user: AGENT
        expect: {{escalated: true, tools: [{{name: escalate, args: {{reason: requested}}}}]}}
      - user: hello?
        expect: {{route: handoff, reply: false}}
"""

FAILING = CASES + """\
  - id: wrong
    turns:
      - user: HELP
        expect: {route: agent, tools: [{name: create_booking, args: {service: haircut}}]}
"""

BURST = f"""\
defaults: {{now: "2026-03-03T10:00:00-05:00", business: {DEMO_BUSINESS_FILE}}}
cases:
  - id: burst
    tags: [ratelimit]
    contact: {{phone: "+12125550141", consent: opted_in}}
    turns:
      - {{user: HELP, expect: {{route: rule}}}}
      - {{user: HELP, wait: 1s, expect: {{route: rule}}}}
      - {{user: HELP, wait: 1s, expect: {{route: rule}}}}
  - id: steady
    contact: {{phone: "+12125550142", consent: opted_in}}
    turns: [{{user: HELP, expect: {{route: rule}}}}]
"""

SUMMARY_KEYS = {"cases", "passed", "failed", "provider", "prompt", "metrics"}
METRIC_KEYS = {"intent_accuracy", "slot_f1", "tool_call_exact", "escalation_precision", "escalation_recall",
               "containment", "compliance", "blocked_rate", "llm_calls_per_turn", "tokens_per_turn", "p50_ms",
               "p95_ms"}
ACTUAL_KEYS = {"route", "rule", "intent", "slots", "confidence", "tools", "escalated", "escalation_reason",
               "consent", "reply", "segments", "llm_calls", "tokens", "ms"}


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    path = tmp_path / "cases.yaml"
    path.write_text(CASES)
    return path


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *map(str, args)])
    return result.exit_code, result.output


def test_passing_run_exits_0_and_writes_the_json_contract(cases: Path, tmp_path: Path) -> None:
    code, out = invoke(cases, "--json", tmp_path / "r.json", "--quiet")
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) == {"summary", "cases"}
    s = report["summary"]
    assert set(s) >= SUMMARY_KEYS and set(s["metrics"]) >= METRIC_KEYS
    assert (s["cases"], s["passed"], s["failed"], s["provider"]) == (3, 3, 0, "offline")
    assert s["metrics"]["compliance"] == 1.0
    for case in report["cases"]:
        assert {"id", "passed", "turns"} <= set(case)
        for turn in case["turns"]:
            assert {"user", "passed", "failures", "actual"} <= set(turn)
            assert set(turn["actual"]) == ACTUAL_KEYS
    stop = report["cases"][0]["turns"][0]
    assert (stop["user"], stop["passed"], stop["failures"]) == ("STOP", True, [])
    assert stop["actual"]["rule"] == "opt_out" and stop["actual"]["consent"] == "opted_out"


def test_failures_exit_1_and_say_expected_and_got(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(FAILING)
    code, out = invoke(path)
    assert code == 1
    assert "FAIL wrong" in out
    assert "turn 1: route: expected agent got rule" in out
    assert "turn 1: tools: expected [create_booking{service: haircut}] got []" in out
    assert "4 cases: 3 passed, 1 failed" in out


def test_malformed_file_exits_2_naming_file_case_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CASES.replace("reply: false", "reply: false, mood: happy"))
    code, out = invoke(path)
    assert code == 2
    assert str(path) in out.replace("\n", "") and "'human'" in out and "turns[1].expect.mood" in out


def test_filters(cases: Path, tmp_path: Path) -> None:
    code, _ = invoke(cases, "--tag", "compliance", "--case", "h*", "--json", tmp_path / "r.json")
    assert code == 0
    assert [c["id"] for c in json.loads((tmp_path / "r.json").read_text())["cases"]] == ["help"]
    code, _ = invoke(cases, "--case", "st*", "--case", "human", "--json", tmp_path / "r.json")
    assert [c["id"] for c in json.loads((tmp_path / "r.json").read_text())["cases"]] == ["stop", "human"]
    code, out = invoke(cases, "--tag", "nothing-has-this")
    assert code == 1 and "no cases selected" in out


@pytest.mark.parametrize(("gate", "code"), [
    (["--fail-under", "compliance=1.0"], 0),
    (["--fail-under", "compliance=100%", "--fail-over", "llm_calls_per_turn=0"], 0),
    (["--fail-under", "intent_accuracy=0.5"], 1),  # not measured by these cases
    (["--fail-over", "p95_ms=0.000001"], 1),
    (["--fail-under", "p95_ms=100"], 2),  # lower is better: must be --fail-over
    (["--fail-under", "bogus=1"], 2),
])
def test_gates(cases: Path, gate: list[str], code: int) -> None:
    got, out = invoke(cases, *gate)
    assert got == code, out


def test_junit_and_html(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(FAILING)
    code, _ = invoke(path, "--junit", tmp_path / "j.xml", "--html", tmp_path / "r.html",
                     "--fail-under", "compliance=1")
    assert code == 1
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite[@name='cli']/testcase")
    assert [c.get("name") for c in cases] == ["stop", "help", "human", "wrong"]
    [failure] = [f for c in cases for f in c.findall("failure")]
    assert failure.get("message") == "turn 1: route: expected agent got rule"
    assert "tools: expected [create_booking{service: haircut}]" in (failure.text or "")
    assert root.find("./testsuite[@name='gates']/testcase") is not None
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html
    assert "wrong" in html and "expected" in html and "create_booking{service: haircut}" in html


def test_compare_shows_deltas_and_changed_cases(tmp_path: Path) -> None:
    path = tmp_path / "burst.yaml"
    path.write_text(BURST)
    code, out = invoke(path, "--compare", "rate_limit_per_minute=100", "rate_limit_per_minute=2",
                       "--json", tmp_path / "c.json", "--html", tmp_path / "c.html",
                       "--junit", tmp_path / "c.xml")
    assert code == 1  # B, the candidate, fails
    assert "A (rate_limit_per_minute=100)  vs  B (rate_limit_per_minute=2)" in out and "delta" in out
    assert "burst: pass -> FAIL" in out
    assert "turn 3: route rule -> limited" in out
    assert "steady" not in out.split("burst: pass -> FAIL")[1]  # unchanged cases are not listed
    data = json.loads((tmp_path / "c.json").read_text())
    assert set(data) == {"a", "b", "diff"}
    assert set(data["a"]["summary"]) >= SUMMARY_KEYS and set(data["b"]["summary"]) >= SUMMARY_KEYS
    assert (data["a"]["summary"]["passed"], data["b"]["summary"]["passed"]) == (2, 1)
    assert data["diff"]["cases"] == [{"id": "burst", "a_passed": True, "b_passed": False,
                                      "changes": ["turn 3: route rule -> limited"]}]
    assert data["diff"]["metrics"]["blocked_rate"]["delta"] == 0
    html = (tmp_path / "c.html").read_text()
    assert "A (rate_limit_per_minute=100)" in html and "B (rate_limit_per_minute=2)" in html
    assert len(ET.parse(tmp_path / "c.xml").getroot().findall(".//testcase")) == 4
    code, _ = invoke(path, "--compare", "rate_limit_per_minute=2", "rate_limit_per_minute=100")
    assert code == 0


def test_bad_options_exit_2(cases: Path) -> None:
    assert invoke(cases, "--compare", "colour=red", "prompt=x")[0] == 2
    assert invoke(cases, "--set", "clarify_threshold=high")[0] == 2
    assert invoke(cases, "--provider", "nonsense")[0] == 2


def test_settings_overrides_reach_the_run(cases: Path, tmp_path: Path) -> None:
    args = [cases, "--set", "clarify_threshold=0.7,prompt=understand@v1", "--json", tmp_path / "r.json"]
    if "cassette_mode" in Settings.model_fields:
        args.append("--record")
    else:
        assert invoke(cases, "--record")[0] == 2  # asked to record and cannot: say so
    code, out = invoke(*args)
    assert code == 0, out
    overrides = json.loads((tmp_path / "r.json").read_text())["summary"]["overrides"]
    assert overrides["clarify_threshold"] == "0.7"
    assert overrides.get("cassette_mode", "record") == "record"


def test_verbose_shows_turns(cases: Path) -> None:
    code, out = invoke(cases, "--verbose", "--case", "stop")
    assert code == 0
    assert "1. 'STOP' -> rule opt_out []" in out
    assert textwrap.dedent("intent_accuracy").strip() in out  # metrics table is printed


def test_json_report_says_where_it_went_on_stderr(cases: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", str(cases), "--json", "out/r.json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"wrote JSON report to {tmp_path / 'out' / 'r.json'}" in result.stderr
    assert "wrote" not in result.stdout  # stdout keeps the report for people
    assert json.loads((tmp_path / "out" / "r.json").read_text())["summary"]["passed"] == 3
