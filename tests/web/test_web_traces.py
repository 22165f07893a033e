"""The trace viewer: the decision path, redaction, labels, and "save as eval case"."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import yaml
from sqlmodel import select

from store.models import Trace
from tests.web.conftest import Web, login, post_form
from web.cases import FIXTURE_PHONE, parse_tools, tools_text

PHONE = "+12125550123"


async def trace_for(web: Web, message_id: int | None) -> Trace:
    async with web.services.sessions() as s:
        return (await s.exec(select(Trace).where(Trace.message_id == message_id))).one()


async def test_trace_page_shows_the_decision_path_redacted(web: Web) -> None:
    result = await web.text("my email is ana@example.com, cell 917-555-0188", PHONE)
    trace = await trace_for(web, result.message_id)
    await login(web.client, "reviewer")
    html = (await web.client.get(f"/traces/{trace.id}")).text
    for step in ("rate limit", "rules", "handoff", "injection", "understand", "policy", "output guard"):
        assert f'<span class="step-name">{step}</span>' in html, step
    assert "score" in html  # the injection screen's score
    assert "Update your email to [email]" in html  # the reply, redacted too
    assert "update_contact" in html and "Latency" in html and "Tokens" in html
    assert "917-555-0188" not in html and "ana@example.com" not in html
    assert "[phone …88]" in html and "[email]" in html
    listing = (await web.client.get("/traces")).text
    assert f'href="/traces/{trace.id}"' in listing and "917-555-0188" not in listing


async def test_trace_list_filters(web: Web) -> None:
    await web.text("where are you located?", PHONE)
    human = await web.text("HUMAN", "+12125550124")
    await login(web.client, "reviewer")
    only_rules = (await web.client.get("/traces?route=rule")).text
    ids = {int(x) for x in re.findall(r'href="/traces/(\d+)"', only_rules)}
    assert ids == {(await trace_for(web, human.message_id)).id}
    assert re.findall(r'href="/traces/(\d+)"', (await web.client.get("/traces?label=wrong")).text) == []


async def test_label_a_turn(web: Web) -> None:
    result = await web.text("where are you located?", PHONE)
    trace = await trace_for(web, result.message_id)
    await login(web.client, "reviewer")
    resp = await post_form(
        web.client, f"/traces/{trace.id}/label", {"label": "wrong", "comment": "should mention parking"}
    )
    assert resp.status_code == 303
    labelled = await trace_for(web, result.message_id)
    assert (labelled.label, labelled.label_comment, labelled.labelled_by) == (
        "wrong",
        "should mention parking",
        "reviewer@example.com",
    )
    assert "should mention parking" in (await web.client.get(f"/traces/{trace.id}")).text
    bad = await post_form(web.client, f"/traces/{trace.id}/label", {"label": "meh"})
    assert bad.status_code == 400
    wrong = (await web.client.get("/traces?label=wrong")).text
    assert f'href="/traces/{trace.id}"' in wrong


async def test_save_as_eval_case_writes_a_loadable_case_and_offers_it_for_download(
    web: Web, tmp_path: Path
) -> None:
    await web.text("can i get a haircut with kim on wednesday at 2pm? call 917-555-0188 if needed", PHONE)
    second = await web.text("yes please", PHONE)
    trace = await trace_for(web, second.message_id)
    await login(web.client, "reviewer")
    await post_form(
        web.client, f"/traces/{trace.id}/label", {"label": "wrong", "comment": "should have booked"}
    )
    form = {
        "route": "agent",
        "intent": "book_appointment",
        "escalated": "false",
        "tools_mode": "exact",
        "tools": "create_booking service=haircut provider=Kim date=2026-03-04 time=14:00",
        "reply_contains": "2:00\nWednesday",
    }
    resp = await post_form(web.client, f"/traces/{trace.id}/case", form)
    assert resp.status_code == 303, resp.text[:500]
    path = tmp_path / "saved" / f"saved-trace-{trace.id}.yaml"
    assert path.is_file()
    data = yaml.safe_load(path.read_text())
    case = data["cases"][0]
    assert data["defaults"]["business"].endswith("salon.yaml")
    assert case["contact"]["phone"] == FIXTURE_PHONE
    assert [t["user"] for t in case["turns"]] == [
        "can i get a haircut with kim on wednesday at 2pm? call [phone …88] if needed",
        "yes please",
    ]
    assert "expect" not in case["turns"][0]
    assert case["turns"][1]["expect"] == {
        "route": "agent",
        "intent": "book_appointment",
        "tools": [
            {
                "name": "create_booking",
                "args": {"service": "haircut", "provider": "Kim", "date": "2026-03-04", "time": "14:00"},
            }
        ],
        "escalated": False,
        "reply_contains": ["2:00", "Wednesday"],
    }
    assert "should have booked" in case["description"]
    assert "2125550123" not in path.read_text() and "917-555-0188" not in path.read_text()

    # The eval runner's own loader accepts it unchanged.
    from evals.loader import load_file

    loaded = load_file(path)
    assert [c.id for c in loaded] == [f"saved-trace-{trace.id}"]
    assert loaded[0].turns[-1].expect.intent == "book_appointment"

    page = (await web.client.get(f"/traces/{trace.id}")).text
    assert f"saved-trace-{trace.id}.yaml" in page
    download = await web.client.get(f"/traces/{trace.id}/case.yaml")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    assert download.text == path.read_text()


async def test_saved_case_runs_with_the_eval_cli(web: Web, tmp_path: Path) -> None:
    result = await web.text("HUMAN", PHONE)
    trace = await trace_for(web, result.message_id)
    await login(web.client, "reviewer")
    form = {"route": "rule", "escalated": "true", "tools_mode": "exact", "tools": "escalate reason=requested"}
    assert (await post_form(web.client, f"/traces/{trace.id}/case", form)).status_code == 303
    path = tmp_path / "saved" / f"saved-trace-{trace.id}.yaml"

    from typer.testing import CliRunner

    from textdesk.cli import app

    args = ["eval", str(path), "--json", str(tmp_path / "report.json")]
    out = await asyncio.to_thread(CliRunner().invoke, app, args)  # the CLI runs its own event loop
    assert out.exit_code == 0, out.output
    report = yaml.safe_load((tmp_path / "report.json").read_text())
    assert report["summary"]["cases"] == 1 and report["summary"]["passed"] == 1


async def test_a_bad_correction_is_reported_not_saved(web: Web, tmp_path: Path) -> None:
    result = await web.text("HUMAN", PHONE)
    trace = await trace_for(web, result.message_id)
    await login(web.client, "reviewer")
    resp = await post_form(
        web.client, f"/traces/{trace.id}/case", {"tools_mode": "exact", "tools": "launch_rockets"}
    )
    assert resp.status_code == 400 and 'role="alert"' in resp.text
    assert not (tmp_path / "saved" / f"saved-trace-{trace.id}.yaml").exists()
    assert (await web.client.get(f"/traces/{trace.id}/case.yaml")).status_code == 404


def test_tool_lines_round_trip() -> None:
    calls = [
        {"name": "create_booking", "args": {"service": "haircut", "time": "15:00"}},
        {"name": "escalate"},
    ]
    assert parse_tools(tools_text(calls)) == calls
    assert parse_tools('update_contact name="Ana Maria"') == [
        {"name": "update_contact", "args": {"name": "Ana Maria"}}
    ]
