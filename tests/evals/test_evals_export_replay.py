"""Stored conversations -> case files (export) and -> today's pipeline (replay), over a real sqlite file."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from evals.fixtures import conversation_to_case, trace_to_case
from evals.loader import build_case, load_cases
from evals.runner import run_case
from store.db import make_engine, make_sessionmaker
from store.models import Conversation, Trace
from textdesk.business import load_business
from textdesk.cli import app
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import build_services
from textdesk.settings import DEMO_BUSINESS_FILE, Settings

runner = CliRunner()
BUSINESS = load_business(DEMO_BUSINESS_FILE)
MONDAY = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)  # 09:00 in New York

# phone -> (minutes after MONDAY, text)
SCRIPT: dict[str, list[tuple[int, str]]] = {
    "+12125550161": [(0, "where are you located"), (2, "can i get a haircut with kim tomorrow at 2pm?"),
                     (3, "yes please"), (5, "HELP")],
    "+12125550162": [(10, "AGENT"), (11, "hello? anyone there")],
    "+12125550163": [(20, "STOP")],
    # books on Monday; a new conversation on Wednesday morning cancels it
    "+12125550164": [(30, "i want a color with luis on thursday at 11am"), (31, "yes"),
                     (48 * 60, "I need to cancel my color appointment on thursday"), (48 * 60 + 1, "yes")],
}


async def _seed(url: str) -> dict[str, Any]:
    clock = FrozenClock(MONDAY)
    svc = build_services(Settings(database_url=url, business_file=DEMO_BUSINESS_FILE), clock=clock)
    results: dict[str, list[Any]] = {}
    try:
        turns = sorted((m, phone, text) for phone, script in SCRIPT.items() for m, text in script)
        for minutes, phone, text in turns:
            clock.advance(seconds=(MONDAY + dt.timedelta(minutes=minutes) - clock.now()).total_seconds())
            r = await svc.pipeline.handle(Inbound(sender=phone, body=text,
                provider_message_id=f"SM{uuid.uuid4().hex}"))
            results.setdefault(phone, []).append(r)
    finally:
        await svc.engine.dispose()
    return results


@pytest.fixture
def seeded(sqlite_url: str) -> tuple[str, dict[str, Any]]:
    return sqlite_url, asyncio.run(_seed(sqlite_url))


def _sanity(results: dict[str, Any]) -> None:
    """The seeded traffic did what it should, or the round trip below proves nothing."""
    faq, _, yes, _ = results["+12125550161"]
    assert "12 Maple St" in (faq.reply or "")
    assert [t["name"] for t in yes.tools] == ["create_booking"]
    assert results["+12125550162"][0].escalated
    cancel = results["+12125550164"][3]
    assert [t["name"] for t in cancel.tools] == ["cancel_booking"]
    assert results["+12125550164"][2].conversation_id != results["+12125550164"][0].conversation_id


async def _with_session(url: str, fn: Any) -> Any:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await fn(session)
    finally:
        await engine.dispose()


def test_export_then_eval_round_trip(seeded: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, results = seeded
    _sanity(results)
    conv_ids = sorted({r.conversation_id for rs in results.values() for r in rs})
    for cid in conv_ids:
        out = tmp_path / "exported" / f"conv{cid}.yaml"
        res = runner.invoke(app, ["export-case", str(cid), "--out", str(out), "--database-url", url,
                                  "--business", str(DEMO_BUSINESS_FILE)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "exported")])
    assert res.exit_code == 0, res.output
    assert f"{len(conv_ids)} cases: {len(conv_ids)} passed" in res.output

    cancel_conv = results["+12125550164"][2].conversation_id
    [case] = yaml.safe_load((tmp_path / "exported" / f"conv{cancel_conv}.yaml").read_text())["cases"]
    [booking] = case["contact"]["bookings"]  # the booking made in the earlier conversation
    assert {k: booking[k] for k in ("service", "date", "time", "provider")} == {
        "service": "color", "date": "2026-03-05", "time": "11:00", "provider": "Luis"}
    cancel = [{"name": "cancel_booking", "args": {"booking_id": booking["id"]}}]
    assert case["turns"][1]["expect"]["tools"] == cancel
    assert case["contact"]["consent"] == "opted_in"  # granted by the earlier booking
    first = results["+12125550161"][0].conversation_id
    [case] = yaml.safe_load((tmp_path / "exported" / f"conv{first}.yaml").read_text())["cases"]
    assert case["contact"]["consent"] == "unknown"  # before the booking granted it
    assert not Path(case["business"]).is_absolute()  # relative to the case file, like hand-written suites
    assert (tmp_path / "exported" / case["business"]).resolve() == DEMO_BUSINESS_FILE.resolve()
    assert case["turns"][0]["expect"]["intent"] == "ask_question"
    assert case["turns"][2]["expect"]["tools"][0]["name"] == "create_booking"


async def test_conversation_and_trace_to_case_functions(sqlite_url: str) -> None:
    results = await _seed(sqlite_url)
    human = results["+12125550162"]

    async def export(session: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        conv = await session.get(Conversation, human[0].conversation_id)
        whole = await conversation_to_case(session, conv.id)  # no bookings: no business needed
        trace = (await session.exec(Trace.__table__.select().where(
            Trace.message_id == human[1].message_id))).first()
        return whole, await trace_to_case(session, trace.id)

    whole, single = await _with_session(sqlite_url, export)
    assert whole["turns"][0]["expect"]["tools"] == [{"name": "escalate", "args": {"reason": "requested"}}]
    assert whole["turns"][1]["expect"]["route"] == "handoff"
    assert "expect" not in single["turns"][0] and single["turns"][1]["expect"]["reply"] is False
    for data in (whole, single):
        outcome = await run_case(build_case(data, BUSINESS), Settings())
        assert outcome.passed, outcome.failures


def test_export_to_stdout_and_unknown_conversation(seeded: tuple[str, dict[str, Any]]) -> None:
    url, _ = seeded
    res = runner.invoke(app, ["export-case", "1", "--database-url", url])
    assert res.exit_code == 0
    assert yaml.safe_load(res.stdout)["cases"][0]["id"] == "conversation-1"
    res = runner.invoke(app, ["export-case", "999", "--database-url", url])
    assert res.exit_code == 1 and "no conversation 999" in res.output


def test_replay_reports_no_change_then_a_change(seeded: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, results = seeded
    base = ["replay", "--database-url", url, "--business", str(DEMO_BUSINESS_FILE)]
    res = runner.invoke(app, [*base, "--json", str(tmp_path / "same.json")])
    assert res.exit_code == 0, res.output
    assert "5 conversations, 11 turns replayed, 0 turns changed" in res.output

    no_faq = yaml.safe_load(DEMO_BUSINESS_FILE.read_text())
    no_faq["faq"] = []
    (tmp_path / "no_faq.yaml").write_text(yaml.safe_dump(no_faq))
    res = runner.invoke(app, ["replay", "--database-url", url, "--business", str(tmp_path / "no_faq.yaml"),
                              "--json", str(tmp_path / "changed.json")])
    assert res.exit_code == 1
    data = yaml.safe_load((tmp_path / "changed.json").read_text())
    changes = [c for conv in data["conversations"] for c in conv["changes"]]
    faq_conv = results["+12125550161"][0].conversation_id
    assert {(c["turn"], c["field"]) for c in changes} >= {(1, "reply")}
    [changed] = [conv for conv in data["conversations"] if conv["changes"]]
    assert changed["conversation_id"] == faq_conv
    assert "12 Maple St" in next(c["stored"] for c in changes if c["field"] == "reply")


def test_replay_filters(seeded: tuple[str, dict[str, Any]]) -> None:
    url, _ = seeded
    base = ["replay", "--database-url", url, "--business", str(DEMO_BUSINESS_FILE)]
    res = runner.invoke(app, [*base, "--escalated"])
    assert "1 conversations, 2 turns replayed" in res.output
    res = runner.invoke(app, [*base, "--since", "2026-03-04"])
    assert "1 conversations, 2 turns replayed" in res.output  # only Wednesday's
    res = runner.invoke(app, [*base, "--until", "2026-03-01"])
    assert "0 conversations" in res.output
    res = runner.invoke(app, [*base, "--since", "nope"])
    assert res.exit_code == 2


def test_exported_file_loads_with_the_loader(seeded: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, _ = seeded
    out = tmp_path / "one.yaml"
    runner.invoke(app, ["export-case", "1", "--out", str(out), "--database-url", url])
    [case] = load_cases([out])
    assert case.id == "conversation-1" and "exported" in case.tags


@pytest.mark.postgres
def test_replay_and_export_over_postgres(pg_url: str, tmp_path: Path) -> None:
    results = asyncio.run(_seed(pg_url))
    _sanity(results)
    base = ["replay", "--database-url", pg_url, "--business", str(DEMO_BUSINESS_FILE)]
    res = runner.invoke(app, [*base, "--since", "2026-03-02", "--until", "2026-03-04"])
    assert res.exit_code == 0, res.output
    assert "5 conversations, 11 turns replayed, 0 turns changed" in res.output
    cid = results["+12125550164"][2].conversation_id
    out = tmp_path / "pg.yaml"
    res = runner.invoke(app, ["export-case", str(cid), "--out", str(out), "--database-url", pg_url])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["eval", str(out)]).exit_code == 0
