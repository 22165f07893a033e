"""OpenTelemetry export of turns (GenAI semantic conventions), read from an in-memory exporter."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from store.models import Trace
from tests.web.conftest import Web, make_web, settle
from textdesk.clock import FrozenClock
from web.telemetry import TurnSpans

PHONE = "+12125550123"
_DIGITS = re.compile(r"\D")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def spans_hook(web: Web, exporter: InMemorySpanExporter) -> TurnSpans:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = TurnSpans(web.services.sessions, provider)
    web.services.pipeline.message_hooks.append(hook)
    return hook


def tree(spans: tuple[ReadableSpan, ...]) -> dict[str, list[str]]:
    """Parent span name -> child span names (the normalised span tree)."""
    by_id = {s.context.span_id: s for s in spans}
    out: dict[str, list[str]] = {}
    for s in spans:
        parent = by_id.get(s.parent.span_id).name if s.parent and s.parent.span_id in by_id else "<root>"
        out.setdefault(parent, []).append(s.name)
    return out


def assert_no_phone(spans: tuple[ReadableSpan, ...], phone: str = PHONE) -> None:
    digits = _DIGITS.sub("", phone)
    for s in spans:
        for key, value in (s.attributes or {}).items():
            text = str(value)
            assert digits[-10:] not in _DIGITS.sub("", text), (s.name, key, value)
            assert not _EMAIL.search(text), (s.name, key, value)


async def test_a_rule_turn_becomes_an_agent_span_with_steps_and_the_escalate_tool(
    web: Web, spans_hook: TurnSpans, exporter: InMemorySpanExporter
) -> None:
    await web.text("HUMAN", PHONE)
    await settle()
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.name == "invoke_agent textdesk"
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["textdesk.route"] == "rule" and attrs["textdesk.rule"] == "human"
    assert attrs["textdesk.escalated"] is True and attrs["textdesk.escalation_reason"] == "requested"
    children = tree(spans)["invoke_agent textdesk"]
    assert "textdesk.step rules" in children and "execute_tool escalate" in children
    tool = next(s for s in spans if s.name == "execute_tool escalate")
    assert tool.attributes and tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "escalate"
    assert_no_phone(spans)


async def test_an_agent_turn_has_intent_and_each_turn_is_exported_once(
    web: Web, spans_hook: TurnSpans, exporter: InMemorySpanExporter
) -> None:
    await web.text("where are you located?", PHONE)
    await settle()
    await web.text("do you take walk-ins? my email is ana@example.com, cell 212 555 0123", PHONE)
    await settle()
    roots = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert len(roots) == 2  # one span tree per turn, no duplicates
    assert roots[0].attributes and roots[0].attributes["textdesk.route"] == "agent"
    assert roots[0].attributes["textdesk.intent"] == "ask_question"
    assert "textdesk.step understand" in tree(exporter.get_finished_spans())["invoke_agent textdesk"]
    assert_no_phone(exporter.get_finished_spans())


async def test_step_spans_start_and_last_as_the_trace_timed_them(
    web: Web, spans_hook: TurnSpans, exporter: InMemorySpanExporter
) -> None:
    result = await web.text("where are you located?", PHONE)
    await settle()
    async with web.services.sessions() as s:
        from sqlmodel import select

        trace = (await s.exec(select(Trace).where(Trace.message_id == result.message_id))).one()
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    for step in trace.steps:
        span = next(s for s in spans if s.name == f"textdesk.step {step['step']}")
        offset = (span.start_time or 0) - (root.start_time or 0)
        assert abs(offset - step["at_ms"] * 1e6) < 1e4, step  # within 10 µs of the recorded offset
        assert abs((span.end_time or 0) - (span.start_time or 0) - max(step["ms"] * 1e6, 1000)) < 1e4, step


async def test_llm_exchanges_become_chat_spans_with_genai_attributes(
    web: Web, spans_hook: TurnSpans, exporter: InMemorySpanExporter
) -> None:
    result = await web.text("where are you located?", PHONE)
    await settle()
    exporter.clear()
    exchange: dict[str, Any] = {
        "prompt_version": "understand@v1",
        "model": "gpt-4o-mini",
        "tokens_in": 812,
        "tokens_out": 64,
        "ms": 420.0,
        "request": [{"role": "user", "content": "where are you located? call me at +1 212 555 0123"}],
        "response": {"intent": "ask_question"},
        "tool_calls_raw": [],
        "validation": [],
        "error": None,
    }
    async with web.services.sessions() as s:
        from sqlmodel import select

        trace = (await s.exec(select(Trace).where(Trace.message_id == result.message_id))).one()
        trace.provider, trace.model, trace.tokens_in, trace.tokens_out = "openai", "gpt-4o-mini", 812, 64
        trace.llm = [exchange]
        s.add(trace)
        await s.commit()
        await s.refresh(trace)
    spans_hook.export(trace)
    spans = exporter.get_finished_spans()
    chat = next(s for s in spans if s.name == "chat gpt-4o-mini")
    a = dict(chat.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == "openai" and a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == 812 and a["gen_ai.usage.output_tokens"] == 64
    parent = next(s for s in spans if s.context.span_id == chat.parent.span_id)  # type: ignore[union-attr]
    assert parent.name == "textdesk.step understand"
    root = next(s for s in spans if s.parent is None)
    assert root.attributes and root.attributes["gen_ai.usage.input_tokens"] == 812
    assert (chat.end_time or 0) - (chat.start_time or 0) == 420_000_000
    assert_no_phone(spans)


@pytest.fixture
async def otel_web(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    async for w in make_web(sqlite_url, tmp_path, clock, otlp_endpoint="http://127.0.0.1:9"):
        yield w


async def test_create_app_registers_the_hook_when_an_endpoint_is_set(otel_web: Web) -> None:
    assert isinstance(otel_web.app.state.spans, TurnSpans)
    assert otel_web.app.state.spans in otel_web.services.pipeline.message_hooks


async def test_no_endpoint_no_hook(web: Web) -> None:
    assert web.app.state.spans is None
    assert not any(isinstance(h, TurnSpans) for h in web.services.pipeline.message_hooks)
