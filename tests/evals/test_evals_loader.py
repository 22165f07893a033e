"""Loading case files: the shared sample (docs/architecture.md section 4) loads as is; every
malformation names file, case, field."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest

from evals.loader import INTENTS, Expect, load_cases, load_file, merge, parse_wait
from textdesk.errors import EvalFileError
from textdesk.settings import DEMO_BUSINESS_FILE

SAMPLE = Path("/work/shared/examples/cases.yaml")
BIZ = str(DEMO_BUSINESS_FILE)


def write(tmp_path: Path, body: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def one_case(tmp_path: Path, case: str, defaults: str = "") -> Path:
    head = f'defaults:\n  now: "2026-03-03T10:00:00-05:00"\n  business: {BIZ}\n{defaults}'
    return write(tmp_path, head + "cases:\n" + textwrap.indent(textwrap.dedent(case), "  "))


def error_of(path: Path) -> EvalFileError:
    with pytest.raises(EvalFileError) as info:
        load_cases([path])
    return info.value


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared examples not present")
def test_design_sample_loads_unchanged() -> None:
    cases = load_cases([SAMPLE])
    assert [c.id for c in cases] == [
        "sample-stop", "sample-help", "sample-book-haircut", "sample-cancel-is-not-opt-out", "sample-human",
        "sample-billing", "sample-faq", "sample-out-of-scope"]
    book = cases[2]
    assert book.suite == "format-sample"
    assert book.business.name == "Maple Street Salon"
    assert book.times[0] == dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)
    assert book.times[1] - book.times[0] == dt.timedelta(minutes=1)
    assert book.turns[1].expect.given()["tools"][0].args["provider"] == "Kim"
    assert cases[3].model.contact.bookings[0].id == "b1"


@pytest.mark.parametrize(("case", "field", "needle"), [
    ('- id: c1\n  turns: [{user: hi, expect: {colour: red}}]\n', "turns[0].expect.colour", "unknown key"),
    ('- id: c1\n  turns: [{user: hi, expect: {escalated: "maybe"}}]\n', "turns[0].expect.escalated", "bool"),
    ('- id: c1\n  turns: [{user: hi, expect: {route: agentt}}]\n', "turns[0].expect.route", "rule"),
    ('- id: c1\n  turns: [{user: hi, expect: {intent: book}}]\n', "turns[0].expect.intent",
     "book_appointment"),
    ('- id: c1\n  turns: [{user: hi, expect: {tools: [{name: book_it}]}}]\n', "turns[0].expect.tools[0].name",
     ""),
    ('- id: c1\n  turns: [{user: hi, expect: {slots: {time: 15:00}}}]\n', "turns[0].expect.slots.time",
     "quote"),
    ('- id: c1\n  turns: [{user: hi, expect: {slots: {colour: red}}}]\n', "turns[0].expect.slots.colour", ""),
    ('- id: c1\n  turns: [{user: hi, expect: {max_segments: -1}}]\n', "turns[0].expect.max_segments", "0"),
    ('- id: c1\n  tags: [x]\n', "turns", "required"),
    ('- id: c1\n  turns: []\n', "turns", "at least 1"),
    ('- id: c1\n  now: "tuesday morning"\n  turns: [{user: hi}]\n', "now", "ISO 8601"),
    ('- id: c1\n  contact: {phone: "12"}\n  turns: [{user: hi}]\n', "contact.phone", "phone"),
    ('- id: c1\n  contact: {consent: maybe}\n  turns: [{user: hi}]\n', "contact.consent", "opted_in"),
    ('- id: c1\n  turns: [{user: hi, wait: "soon"}]\n', "turns[0].wait", "duration"),
    ('- id: c1\n  turns: [{user: hi, wait: "1h", at: "2026-03-03T11:00:00-05:00"}]\n', "turns[0]",
     "not both"),
    ('- id: c1\n  turns: [{user: a}, {user: b, at: "2026-03-03T09:00:00-05:00"}]\n', "turns[1].at",
     "earlier"),
    ('- id: c1\n  final: {bookings: [{service: haircut, when: tomorrow}]}\n  turns: [{user: hi}]\n',
     "final.bookings[0].when", "unknown key"),
    ('- id: c1\n  contact: {bookings: [{service: massage, date: "2026-03-05", time: "10:00"}]}\n'
     '  turns: [{user: hi}]\n', "contact.bookings[0].service", "unknown service"),
    ('- id: c1\n  business: nowhere/business.yaml\n  turns: [{user: hi}]\n', "business", "not found"),
])
def test_malformed_case_names_file_case_and_field(tmp_path: Path, case: str, field: str, needle: str) -> None:
    path = one_case(tmp_path, case)
    err = error_of(path)
    assert err.path == str(path)
    assert err.case_id == "c1"
    assert err.field == field
    assert needle.lower() in err.problem.lower()
    assert str(path) in str(err) and "c1" in str(err) and field in str(err)


def test_file_level_errors(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, "cases: [\n", "bad.yaml")).field == "file"
    assert error_of(write(tmp_path, "cases: {a: 1}\n", "notlist.yaml")).field == "cases"
    assert error_of(write(tmp_path, "cases: []\nsuit: x\n", "top.yaml")).field == "suit"
    err = error_of(write(tmp_path, "cases: [{id: x, turns: [{user: hi}], now: '2026-03-03T10:00:00Z'}]\n",
                         "nobiz.yaml"))
    assert (err.case_id, err.field) == ("x", "business")
    assert error_of(tmp_path / "missing.yaml").field == "path"


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    path = one_case(tmp_path, "- {id: same, turns: [{user: a}]}\n- {id: same, turns: [{user: b}]}\n")
    err = error_of(path)
    assert (err.case_id, err.field) == ("same", "id")


def test_defaults_merge_and_inline_business(tmp_path: Path) -> None:
    path = write(tmp_path, f"""\
        suite: merged
        defaults:
          now: "2026-03-03T10:00:00"
          business: {BIZ}
          tags: [a]
          contact: {{consent: opted_in, name: Ana}}
        cases:
          - id: one
            contact: {{phone: "+12125550111"}}
            turns: [{{user: hi}}]
          - id: two
            tags: [b]
            business: {{name: Tiny, timezone: Europe/Paris, support: "call 1", hours: {{mon: closed}},
                        services: [{{name: haircut, minutes: 30}}]}}
            turns:
              - {{user: hi}}
              - {{user: later, wait: "2h"}}
              - {{user: exact, at: "2026-03-04T08:00:00+00:00"}}
        """)
    one, two = load_cases([path])
    assert one.model.contact.phone == "+12125550111"
    assert one.model.contact.consent == "opted_in" and one.model.contact.name == "Ana"  # merged, not replaced
    assert one.tags == ["a"] and two.tags == ["b"]  # lists are replaced
    assert one.times[0] == dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)  # naive = business-local (New York)
    assert two.business.name == "Tiny" and two.business_source == "<inline>"
    assert two.times[0] == dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)  # naive = business-local (Paris)
    assert two.times[1] - two.times[0] == dt.timedelta(hours=2)
    assert two.times[2] == dt.datetime(2026, 3, 4, 8, 0, tzinfo=dt.UTC)


def test_business_path_is_relative_to_the_case_file(tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "business.yaml").write_text(DEMO_BUSINESS_FILE.read_text())
    path = write(tmp_path / "suites", """\
        defaults: {now: "2026-03-03T10:00:00-05:00", business: ../business.yaml}
        cases: [{id: rel, turns: [{user: hi}]}]
        """)
    [case] = load_cases([path])
    assert case.business_source == str((tmp_path / "business.yaml").resolve())


def test_folders_recurse_and_skip_business_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "business.yaml").write_text(DEMO_BUSINESS_FILE.read_text())
    write(tmp_path / "a" / "b", f"""\
        defaults: {{now: "2026-03-03T10:00:00-05:00", business: {BIZ}}}
        cases: [{{id: deep, turns: [{{user: hi}}]}}]
        """, "deep.yml")
    lines = [{"suite": "jl", "defaults": {"now": "2026-03-03T10:00:00-05:00", "business": BIZ}},
             {"id": "j1", "turns": [{"user": "STOP", "expect": {"rule": "opt_out"}}]}]
    (tmp_path / "a" / "more.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    cases = load_cases([tmp_path])
    assert sorted(c.id for c in cases) == ["deep", "j1"]
    assert next(c for c in cases if c.id == "j1").suite == "jl"
    assert load_file(tmp_path / "a" / "business.yaml") == []


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"id": "ok", "now": "2026-03-03T10:00:00Z", "business": BIZ, "turns": [{"user": "hi"}]}
    bad = {**good, "id": "broken", "extra": 1}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    err = error_of(path)
    assert err.path == f"{path}:2" and err.case_id == "broken" and err.field == "extra"


def test_merge_is_recursive_for_mappings_only() -> None:
    merged = merge({"a": {"x": 1, "y": 2}, "l": [1]}, {"a": {"y": 3}, "l": [2]})
    assert merged == {"a": {"x": 1, "y": 3}, "l": [2]}


def test_parse_wait() -> None:
    assert parse_wait("2h") == dt.timedelta(hours=2)
    assert parse_wait("1h30m") == dt.timedelta(minutes=90)
    assert parse_wait("90s") == dt.timedelta(seconds=90)
    assert parse_wait("1d") == dt.timedelta(days=1)
    with pytest.raises(ValueError):
        parse_wait("2 hours")


def test_expect_keeps_only_given_keys_and_allows_null_intent() -> None:
    e = Expect.model_validate({"intent": None, "reply_contains": "12 Maple"})
    assert e.given() == {"intent": None, "reply_contains": ["12 Maple"]}
    with pytest.raises(ValueError):
        Expect.model_validate({"tools": None})


def test_vocabularies_match_the_pipeline() -> None:
    """The loader spells out DESIGN's lists; they must not drift from the code that produces them."""
    from agent.types import ESCALATION_REASONS
    from agent.types import INTENTS as AGENT_INTENTS
    from evals.loader import Reason, RuleName, ToolName
    from guardrails.keywords import Rule
    from tools.schemas import STATE_CHANGING

    assert set(INTENTS) == set(AGENT_INTENTS)
    assert set(Reason.__args__) == set(ESCALATION_REASONS)  # type: ignore[attr-defined]
    assert set(RuleName.__args__) == set(Rule.__args__)  # type: ignore[attr-defined]
    assert set(ToolName.__args__) == set(STATE_CHANGING)  # type: ignore[attr-defined]
