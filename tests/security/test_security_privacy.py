"""Privacy on SQLite and PostgreSQL: export is complete, forget deletes one contact and nothing
else (but remembers an opt-out), purge blanks old text and keeps the metrics.

Data is seeded through the real pipeline, as customers would create it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, col, select
from typer.testing import CliRunner

from agent.types import Exchange
from store.models import (
    AuditEvent,
    Booking,
    ConsentEvent,
    Contact,
    Conversation,
    Job,
    Message,
    Payment,
    Trace,
)
from tests.conftest import MONDAY_9AM, make_settings
from textdesk import privacy
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import Services, build_services

ANA, BEN, CARA, DEV = "+12125550123", "+12125550199", "+12125550177", "+12125550155"
KEY = privacy.suppression_key("test-secret")

ANA_TURNS = ["can i get a haircut with kim tomorrow at 2pm?", "yes",
             "please update my email to ana@example.com", "yes", "my name is Ana Lopez", "yes"]
BEN_TURNS = ["book a manicure on thursday at 11am", "yes", "where are you located?"]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
async def svc(db_url: str) -> AsyncIterator[Services]:
    services = build_services(make_settings(db_url), clock=FrozenClock(MONDAY_9AM))
    yield services
    await services.engine.dispose()


async def say(svc: Services, sender: str, *bodies: str) -> None:
    for body in bodies:
        await svc.pipeline.handle(Inbound(sender, body, provider_message_id=f"SM{uuid.uuid4().hex}"))


async def seed(svc: Services) -> None:
    await say(svc, ANA, *ANA_TURNS)
    await say(svc, BEN, *BEN_TURNS)


async def rows_of(svc: Services, contact_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every row that names ``contact_id``, for before/after comparisons."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with svc.sessions() as s:
        for model in (Contact, ConsentEvent, Conversation, Message, Booking, Trace, AuditEvent):
            key = model.id if model is Contact else model.contact_id  # type: ignore[attr-defined]
            rows = await s.exec(select(model).where(key == contact_id).order_by(model.id))  # type: ignore[attr-defined]
            out[model.__tablename__] = [r.model_dump() for r in rows]  # type: ignore[attr-defined]
    return out


async def dump_db(svc: Services) -> str:
    """The whole database as text, to search for a phone number or email."""
    parts = []
    async with svc.sessions() as s:
        for table in SQLModel.metadata.sorted_tables:
            parts.extend(repr(tuple(r)) for r in (await s.exec(sa.select(table))).all())
    return "\n".join(parts)


async def jobs(svc: Services) -> list[dict[str, Any]]:
    async with svc.sessions() as s:
        return [j.model_dump() for j in await s.exec(select(Job).order_by(col(Job.id)))]


async def contact_id(svc: Services, phone: str) -> int:
    async with svc.sessions() as s:
        c = (await s.exec(select(Contact).where(Contact.phone == phone))).one()
        return c.id or 0


# -- export ---------------------------------------------------------------------------------------

async def test_export_holds_everything_about_the_contact_and_nothing_else(svc: Services) -> None:
    await seed(svc)
    cid = await contact_id(svc, ANA)
    async with svc.sessions() as s:
        data = await privacy.export_contact(s, "(212) 555-0123", actor="staff:1")
        await s.commit()
    json.dumps(data)  # JSON-ready without a default= hook

    assert data["format"] == privacy.EXPORT_FORMAT
    c = data["contact"]
    assert (c["phone"], c["name"], c["email"], c["consent"]) == (ANA, "Ana Lopez", "ana@example.com",
                                                                 "opted_in")
    assert [(e["old"], e["new"], e["source"]) for e in data["consent_events"]] == [
        ("unknown", "opted_in", "booking")]
    assert [(b["service"], b["provider"], b["status"]) for b in data["bookings"]] == [
        ("haircut", "Kim", "active")]
    inbound = [m["body"] for m in data["messages"] if m["direction"] == "in"]
    assert inbound == ANA_TURNS
    assert sum(m["direction"] == "out" for m in data["messages"]) == len(ANA_TURNS)
    assert len(data["traces"]) == len(ANA_TURNS) and {t["contact_id"] for t in data["traces"]} == {cid}
    assert {"booking.created", "contact.updated"} <= {e["kind"] for e in data["audit_events"]}
    assert len(data["conversations"]) == 1 and data["conversations"][0]["contact_id"] == cid
    assert all(m["created_at"].endswith("+00:00") for m in data["messages"])  # ISO strings, UTC

    text = json.dumps(data)
    assert "2125550199" not in text and "manicure" not in text  # Ben's data stays out
    async with svc.sessions() as s:
        (ev,) = await s.exec(select(AuditEvent).where(AuditEvent.kind == "privacy.export"))
    assert ev.contact_id == cid and ev.actor == "staff:1"
    assert ev.data["counts"]["messages"] == 2 * len(ANA_TURNS)
    assert ANA not in json.dumps(ev.data)


async def test_export_of_an_unknown_number_raises(svc: Services) -> None:
    async with svc.sessions() as s:
        with pytest.raises(privacy.UnknownContact):
            await privacy.export_contact(s, "+12125550100")


# -- forget ---------------------------------------------------------------------------------------

async def test_forget_deletes_every_row_of_the_contact_and_nothing_of_another(svc: Services) -> None:
    await seed(svc)
    ana, ben = await contact_id(svc, ANA), await contact_id(svc, BEN)
    ben_before = await rows_of(svc, ben)
    jobs_before = await jobs(svc)
    async with svc.sessions() as s:
        ana_booking = (await s.exec(select(Booking.id).where(Booking.contact_id == ana))).one()
    ana_jobs = [j for j in jobs_before if j["payload"].get("booking_id") == ana_booking]
    async with svc.sessions() as s:  # a deposit link, as the payments integration stores it
        s.add(Payment(booking_id=ana_booking, session_id="cs_test_ana", url="https://pay.example/ana",
                      amount_cents=2000))
        await s.commit()
    async with svc.sessions() as s:
        await privacy.export_contact(s, ANA)  # an earlier export stays on record, detached
        await s.commit()
    async with svc.sessions() as s:
        result = await privacy.forget_contact(s, "212-555-0123", "staff:7", key=KEY)
        await s.commit()

    assert result["found"] and result["consent"] == "opted_in" and not result["suppressed"]
    deleted = dict(result["deleted"])
    assert deleted.pop("jobs") == len(ana_jobs) >= 1  # the booking's reminders
    assert deleted == {"traces": 6, "messages": 12, "payments": 1, "bookings": 1, "consent_events": 1,
                       "audit_detached": 3, "conversations": 1, "contacts": 1}
    assert result["payment_sessions"] == ["cs_test_ana"]  # Stripe keeps its own copy: the operator's call
    assert await jobs(svc) == [j for j in jobs_before if j not in ana_jobs]  # Ben's reminders stay
    assert await rows_of(svc, ben) == ben_before
    assert all(rows == [] for rows in (await rows_of(svc, ana)).values())
    everything = await dump_db(svc)
    for trace_of_ana in ("2125550123", "555-0123", "ana@example.com", "Ana Lopez", "haircut with kim",
                         "pay.example/ana"):
        assert trace_of_ana.lower() not in everything.lower()
    async with svc.sessions() as s:
        events = list(await s.exec(select(AuditEvent).order_by(col(AuditEvent.id))))
    detached = [e.kind for e in events if e.contact_id is None and e.data == {}]
    assert sorted(detached) == ["booking.created", "contact.updated", "contact.updated"]
    export_ev = next(e for e in events if e.kind == "privacy.export")
    assert export_ev.contact_id is None and "counts" in export_ev.data
    forget_ev = events[-1]
    assert forget_ev.kind == "privacy.forget" and forget_ev.actor == "staff:7"
    assert forget_ev.data["subject"] == privacy.subject_digest(ANA, KEY)
    assert forget_ev.data["alg"] == "hmac-sha256"


async def test_forgetting_a_number_twice_is_a_no_op(svc: Services) -> None:
    await say(svc, ANA, "hi")
    async with svc.sessions() as s:
        await privacy.forget_contact(s, ANA, "cli", key=KEY)
        await s.commit()
    async with svc.sessions() as s:
        again = await privacy.forget_contact(s, ANA, "cli", key=KEY)
        await s.commit()
    assert again == {"found": False, "suppressed": False}


async def test_an_opted_out_number_stays_opted_out_after_forget(svc: Services) -> None:
    await say(svc, CARA, "what are your hours?", "please stop texting me")
    async with svc.sessions() as s:
        result = await privacy.forget_contact(s, CARA, "cli", key=KEY)
        await s.commit()
    assert result["suppressed"] and result["consent"] == "opted_out"
    assert result["consent_source"] == "natural_language"
    assert "2125550177" not in await dump_db(svc)  # only the keyed hash is left

    async with svc.sessions() as s:
        assert await privacy.is_suppressed(s, "+1 (212) 555-0177", key=KEY)
        assert not await privacy.is_suppressed(s, CARA, key=privacy.suppression_key("another-secret"))
        assert not await privacy.is_suppressed(s, BEN, key=KEY)
        contact = await privacy.get_or_create_contact(s, CARA, key=KEY)
        await s.commit()
        assert contact.consent == "opted_out"
        (ev,) = await s.exec(select(ConsentEvent).where(ConsentEvent.contact_id == contact.id))
    assert (ev.new, ev.source) == ("opted_out", "suppression")


async def test_an_opted_in_number_forgotten_comes_back_as_new(svc: Services) -> None:
    await say(svc, ANA, *ANA_TURNS[:2])
    async with svc.sessions() as s:
        await privacy.forget_contact(s, ANA, "cli", key=KEY)
        await s.commit()
    async with svc.sessions() as s:
        assert not await privacy.is_suppressed(s, ANA, key=KEY)
        assert (await privacy.get_or_create_contact(s, ANA, key=KEY)).consent == "unknown"


async def test_latest_forget_record_wins(svc: Services) -> None:
    """Forgotten while opted out, came back and opted in, forgotten again: not suppressed."""
    await say(svc, CARA, "STOP")
    async with svc.sessions() as s:
        await privacy.forget_contact(s, CARA, "cli", key=KEY)
        await s.commit()
    async with svc.sessions() as s:
        await privacy.get_or_create_contact(s, CARA, key=KEY)  # what the pipeline should call
        await s.commit()
    await say(svc, CARA, "START")
    async with svc.sessions() as s:
        assert (await privacy.forget_contact(s, CARA, "cli", key=KEY))["consent"] == "opted_in"
        await s.commit()
    async with svc.sessions() as s:
        assert not await privacy.is_suppressed(s, CARA, key=KEY)


async def test_pipeline_keeps_a_forgotten_opt_out_silent(svc: Services) -> None:
    await say(svc, CARA, "STOP")
    async with svc.sessions() as s:
        await privacy.forget_contact(s, CARA, "cli", key=privacy.suppression_key(
            svc.settings.secret_key.get_secret_value()))
        await s.commit()
    r = await svc.pipeline.handle(Inbound(CARA, "hey, are you open today?", provider_message_id="SMback1"))
    assert r.consent == "opted_out" and r.reply is None


def test_every_table_that_points_at_a_contact_is_handled() -> None:
    """A new table with a foreign key to a contact's rows must be added to forget and export."""
    handled = {"contact", "consentevent", "conversation", "message", "booking", "payment", "trace",
               "auditevent"}
    personal = {"contact", "conversation", "message", "booking"}
    pointing = {t.name for t in SQLModel.metadata.sorted_tables
                if any(fk.column.table.name in personal for fk in t.foreign_keys)}
    assert pointing <= handled, f"not covered by textdesk.privacy: {sorted(pointing - handled)}"


# -- purge ----------------------------------------------------------------------------------------

def _metrics(traces: list[Trace]) -> list[tuple[Any, ...]]:
    return [(t.id, t.route, t.rule, t.intent, t.confidence, t.segments, t.llm_calls, t.tokens_in,
             t.tokens_out, t.latency_ms, t.escalated, t.escalation_reason, [c["name"] for c in t.tools],
             [(s["step"], s["outcome"]) for s in t.steps], t.reply is None, t.message_id) for t in traces]


async def test_purge_blanks_old_text_and_keeps_every_metric(svc: Services) -> None:
    await seed(svc)
    await say(svc, DEV, "HUMAN", "are you there?")  # a person still holds this conversation
    async with svc.sessions() as s:
        t = (await s.exec(select(Trace).order_by(col(Trace.id)))).first()
        assert t is not None
        t.llm = [Exchange(
            prompt_version="understand@v1#abc", model="gpt-4o-mini", tokens_in=800, tokens_out=40,
            request=[{"role": "user", "content": "can i get a haircut with kim"}],
            response={"id": "x", "finish_reason": "tool_calls", "content": None},
            tool_calls_raw=[{"id": "c1", "function": {"name": "understand", "arguments": "{}"}}],
            validation=["dropped.slot.service: 'perm' is not a service"]).model_dump()]
        s.add(t)
        await s.commit()
    svc.clock.advance(days=40)  # type: ignore[attr-defined]
    await say(svc, BEN, "thanks, see you thursday!")  # recent: must survive
    async with svc.sessions() as s:
        before = _metrics(list(await s.exec(select(Trace).order_by(col(Trace.id)))))
        n_msgs = len(list(await s.exec(select(Message))))

    async with svc.sessions() as s:
        assert await privacy.purge_bodies(s, svc.clock.now(), 0) == 0  # 0 = keep forever
        changed = await privacy.purge_bodies(s, svc.clock.now(), 30, actor="cron")
        await s.commit()

    async with svc.sessions() as s:
        traces = list(await s.exec(select(Trace).order_by(col(Trace.id))))
        msgs = list(await s.exec(select(Message).order_by(col(Message.id))))
        (ev,) = await s.exec(select(AuditEvent).where(AuditEvent.kind == "privacy.purge"))
        convs = list(await s.exec(select(Conversation)))
    assert _metrics(traces) == before and len(msgs) == n_msgs  # rows and metrics survive
    held = {c.id for c in convs if c.status == "waiting"}
    old = [m for m in msgs if m.created_at.replace(tzinfo=dt.UTC) < MONDAY_9AM + dt.timedelta(days=1)
           and m.conversation_id not in held]
    assert old and all(m.body == "" for m in old)
    held_in = [m.body for m in msgs if m.conversation_id in held and m.direction == "in"]
    assert held_in == ["HUMAN", "are you there?"]
    assert msgs[-2].body == "thanks, see you thursday!" and msgs[-1].body  # recent turn untouched
    old_traces = [t for t in traces if t.conversation_id not in held][:-1]
    assert all(t.reply in ("", None) for t in old_traces) and traces[-1].reply
    assert "ana@example.com" not in json.dumps([t.model_dump(mode="json") for t in old_traces])
    ex = traces[0].llm[0]
    assert ex["request"] == [] and ex["response"] == {"finish_reason": "tool_calls"}
    assert (ex["tokens_in"], ex["tokens_out"], ex["model"]) == (800, 40, "gpt-4o-mini")
    assert ex["tool_calls_raw"] == [{"name": "understand"}] and ex["validation"] == ["dropped.slot.service"]
    update = next(t for t in traces if t.tools and t.tools[0]["name"] == "update_contact")
    assert update.tools[0]["args"]["email"] == privacy.PURGED
    assert ev.actor == "cron" and ev.data["retention_days"] == 30 and changed == ev.data["messages"] + \
        ev.data["traces"] + ev.data["conversations"]
    assert [c.summary for c in convs if c.id in held] != [""]  # the handoff summary is kept

    async with svc.sessions() as s:  # a second run finds nothing left to do
        assert await privacy.purge_bodies(s, svc.clock.now(), 30) == 0
        assert await privacy.purge_bodies(s, svc.clock.now(), 30, full=True) == 0


# -- the CLI --------------------------------------------------------------------------------------

def test_cli_export_forget_and_purge(sqlite_url: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from textdesk.cli import app

    async def seed_it() -> None:
        services = build_services(make_settings(sqlite_url), clock=FrozenClock(MONDAY_9AM))
        await say(services, ANA, *ANA_TURNS[:2])
        await say(services, BEN, "hi")
        await services.engine.dispose()

    asyncio.run(seed_it())
    monkeypatch.setenv("TEXTDESK_SECRET_KEY", "test-secret")
    runner, db = CliRunner(), ["--database-url", sqlite_url]
    out = tmp_path / "ana.json"
    r = runner.invoke(app, ["contact", "export", "212 555 0123", "--out", str(out), *db])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["contact"]["phone"] == ANA and (out.stat().st_mode & 0o777) == 0o600
    assert runner.invoke(app, ["contact", "export", "+12125550100", *db]).exit_code == 1
    assert runner.invoke(app, ["contact", "export", "not-a-number", *db]).exit_code == 2

    r = runner.invoke(app, ["contact", "forget", ANA, *db])
    assert r.exit_code == 2 and "--yes" in r.output
    r = runner.invoke(app, ["contact", "forget", ANA, "--yes", "--actor", "dpo@example.com", *db])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["deleted"]["contacts"] == 1
    assert runner.invoke(app, ["contact", "forget", ANA, "--yes", *db]).exit_code == 1

    r = runner.invoke(app, ["purge", "--retention-days", "0", *db])
    assert r.exit_code == 0 and "keep forever" in r.output
    r = runner.invoke(app, ["purge", "--retention-days", "30", *db])
    assert r.exit_code == 0 and "purged text older than 30 days" in r.output
