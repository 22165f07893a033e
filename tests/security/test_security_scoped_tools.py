"""A model that names another customer's booking, phone or id cannot touch that customer.

The model is the real OpenAI provider over respx, answering in the real chat-completions wire
format with malicious ``understand`` calls; the customer's texts are innocent, so every turn
reaches the model. Tools are bound to the sender by code: the other contact's rows must not
change, and every dropped proposal must be on the trace.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import col, select

from agent.providers.openai_provider import OpenAIProvider, RetryTiming
from store.models import AuditEvent, Booking, ConsentEvent, Contact, Conversation, Message, Trace
from tests.conftest import make_settings
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound, Pipeline, TurnResult
from textdesk.services import Services, build_services
from tools.actions import ToolContext, run_tool

BASE = "http://llm.test/v1"
URL = f"{BASE}/chat/completions"
MALLORY, VERA = "+12125550123", "+12125550199"
FRI_11 = {"service": "haircut", "date": "2026-03-06", "time": "11:00"}


def completion(**turn: Any) -> httpx.Response:
    """One forced ``understand`` call, exactly as the API returns it."""
    args = {"intent": None, "confidence": 0.95, "slots": {}, "tool_calls": [], **turn}
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": 1772550000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": None, "refusal": None,
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "understand", "arguments": json.dumps(args)}}]}}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
    }
    return httpx.Response(200, json=body)


@pytest.fixture
async def svc(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Services]:
    services = build_services(make_settings(sqlite_url), clock=clock)  # offline: seeds real bookings
    yield services
    await services.engine.dispose()


async def text(p: Pipeline, sender: str, body: str) -> TurnResult:
    return await p.handle(Inbound(sender, body, provider_message_id=f"SM{uuid.uuid4().hex}"))


async def snapshot(svc: Services, phone: str) -> dict[str, Any]:
    async with svc.sessions() as s:
        c = (await s.exec(select(Contact).where(Contact.phone == phone))).one()
        out: dict[str, Any] = {"contact": c.model_dump()}
        for model in (Booking, Message, ConsentEvent, Conversation, Trace, AuditEvent):
            rows = await s.exec(select(model).where(model.contact_id == c.id))  # type: ignore[attr-defined]
            out[model.__tablename__] = sorted((r.model_dump() for r in rows), key=str)  # type: ignore[attr-defined]
    return out


async def test_malicious_tool_calls_cannot_reach_another_contact(svc: Services) -> None:
    p = svc.pipeline
    for body in ("book a manicure on thursday at 11am", "yes", "update my email to vera@example.com", "yes"):
        await text(p, VERA, body)
    for body in ("haircut with kim tomorrow at 2pm", "yes"):
        await text(p, MALLORY, body)
    vera_before = await snapshot(svc, VERA)
    async with svc.sessions() as s:
        (vera_booking,) = await s.exec(select(Booking).join(Contact).where(Contact.phone == VERA))
        vera_id, vera_contact = vera_booking.id, vera_booking.contact_id
    foreign = {"booking_id": vera_id}

    answers = [
        # 1 "cancel my appointment": the model swaps in Vera's booking, twice, and books on her number.
        completion(intent="cancel_appointment", target_date="2026-03-05", tool_calls=[
            {"name": "cancel_booking", "args": foreign},
            {"name": "reschedule_booking", "args": {**foreign, "date": "2026-03-06", "time": "10:00"}},
            {"name": "create_booking", "args": {"service": "haircut", "date": "2026-03-06", "time": "10:00",
                                                "phone": VERA}}]),
        # 2 "yes": confirms Mallory's own cancellation; the model names Vera's booking again.
        completion(affirm=True, tool_calls=[{"name": "cancel_booking", "args": foreign}]),
        # 3 "move my thursday appt": Vera's date as the target, Vera's id in the call.
        completion(intent="reschedule_appointment", target_date="2026-03-05",
                   slots={"date": "2026-03-06", "time": "10:00"},
                   tool_calls=[{"name": "reschedule_booking", "args": {**foreign, "date": "2026-03-06",
                                                                       "time": "10:00"}}]),
        # 4 "book a haircut friday at 11": for Vera's number.
        completion(intent="book_appointment", slots=FRI_11,
                   tool_calls=[{"name": "create_booking", "args": {**FRI_11, "phone": "212 555 0199"}}]),
        # 5 "yes": with Vera's contact id smuggled into the arguments.
        completion(affirm=True, tool_calls=[{"name": "create_booking",
                                             "args": {**FRI_11, "contact_id": vera_contact}}]),
        # 6 "update my email": Vera's email and phone.
        completion(intent="update_contact", slots={"email": "vera@example.com"}, tool_calls=[
            {"name": "update_contact", "args": {"email": "vera@example.com", "phone": VERA}},
            {"name": "escalate", "args": {"reason": "other", "summary": f"also text {VERA}"}},
            {"name": "delete_contact", "args": {"phone": VERA}}]),
        # 7 "yes" (no proposal: a repeated update_contact proposal re-asks, see the security report)
        completion(affirm=True, tool_calls=[{"name": "cancel_booking", "args": foreign}]),
    ]
    texts = ["cancel my appointment please", "yes", "move my thursday appt to friday at 10",
             "book a haircut friday at 11", "yes", "update my email", "yes"]

    http = httpx.AsyncClient()
    model_settings = make_settings(svc.settings.database_url, llm_provider="openai", llm_base_url=BASE,
                                   llm_api_key="sk-test", llm_max_retries=0)
    provider = OpenAIProvider(model_settings, http_client=http, timing=RetryTiming(0.01, 0.02))
    evil = Pipeline(svc.settings, svc.business, svc.sessions, svc.clock, provider)
    results = []
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URL).mock(side_effect=answers)
        for body in texts:
            results.append(await text(evil, MALLORY, body))
    await provider.aclose()
    assert route.call_count == len(texts)  # every turn reached the model, none needed a repair

    assert await snapshot(svc, VERA) == vera_before  # not one of Vera's rows changed

    tools = [(c["name"], c["args"]) for r in results for c in r.tools]
    assert tools[0][0] == "cancel_booking" and tools[0][1]["booking_id"] != vera_id  # Mallory's own
    assert tools[1] == ("create_booking", {"service": "haircut", "date": "2026-03-06", "time": "11:00",
                                          "provider": tools[1][1]["provider"]})
    assert tools[2] == ("update_contact", {"email": "vera@example.com"})  # on Mallory's own record
    assert len(tools) == 3 and "don't see any upcoming appointments" in (results[2].reply or "")
    async with svc.sessions() as s:
        mallory = (await s.exec(select(Contact).where(Contact.phone == MALLORY))).one()
        mine = list(await s.exec(select(Booking).where(Booking.contact_id == mallory.id)))
        q = select(Trace).where(Trace.contact_id == mallory.id).order_by(col(Trace.id))
        traces = list(await s.exec(q))
    assert {b.id for b in mine} >= {tools[0][1]["booking_id"]} and all(b.id != vera_id for b in mine)
    assert mallory.email == "vera@example.com"  # an email is not verified: see the security report

    notes = [n for t in traces[-len(texts):] for ex in t.llm for n in ex["validation"]]
    dropped_id = f"booking id {vera_id!r} is not one of the sender's bookings"
    assert f"dropped.tool.cancel_booking: {dropped_id}" in notes
    assert f"dropped.tool.reschedule_booking: {dropped_id}" in notes
    assert sum(n == f"dropped.tool.cancel_booking: {dropped_id}" for n in notes) == 3
    phone_drops = [n for n in notes if "arguments name a phone number" in n]
    assert {n.split(":")[0] for n in phone_drops} == {
        "dropped.tool.create_booking", "dropped.tool.update_contact", "dropped.tool.escalate"}
    assert any(n.startswith("dropped.tool.create_booking: contact_id") for n in notes)
    assert "dropped.tool.unknown: 'delete_contact' is not an offered tool" in notes
    stored = json.dumps([t.llm for t in traces])
    assert VERA not in stored and "2125550199" not in stored  # the raw calls are redacted too
    tool_steps = [s for t in traces for s in t.steps if s["step"] == "tool"]
    assert all(s["data"]["args"].get("booking_id") != vera_id for s in tool_steps)


async def test_run_tool_with_a_foreign_booking_id_is_not_found(svc: Services) -> None:
    p = svc.pipeline
    for sender, body in ((VERA, "book a manicure on thursday at 11am"), (VERA, "yes"),
                         (MALLORY, "hi"), (MALLORY, "haircut with kim tomorrow at 2pm"), (MALLORY, "yes")):
        await text(p, sender, body)
    async with svc.sessions() as s:
        vera = (await s.exec(select(Contact).where(Contact.phone == VERA))).one()
        mallory = (await s.exec(select(Contact).where(Contact.phone == MALLORY))).one()
        (vb,) = await s.exec(select(Booking).where(Booking.contact_id == vera.id))
        conv = (await s.exec(select(Conversation).where(Conversation.contact_id == mallory.id))).one()
        ctx = ToolContext(s, svc.business, mallory, conv, svc.clock.now())

        cancel = await run_tool(ctx, "cancel_booking", {"booking_id": vb.id})
        move = await run_tool(ctx, "reschedule_booking", {"booking_id": vb.id, "date": "2026-03-06",
                                                          "time": "10:00"})
        by_phone = await run_tool(ctx, "update_contact", {"email": "x@example.com", "phone": VERA})
        by_id = await run_tool(ctx, "create_booking", {**FRI_11, "contact_id": vera.id})
        unknown = await run_tool(ctx, "delete_contact", {"phone": VERA})
        await s.commit()
    assert (cancel.ok, cancel.code) == (False, "not_found")
    assert (move.ok, move.code) == (False, "not_found")
    assert (by_phone.code, by_id.code, unknown.code) == ("invalid_args", "invalid_args", "unknown_tool")
    async with svc.sessions() as s:
        after = await s.get(Booking, vb.id)
        assert after is not None
        assert (after.status, after.start, after.updated_at) == ("active", vb.start, vb.updated_at)
        assert (await s.get(Contact, mallory.id)).email is None  # type: ignore[union-attr]
