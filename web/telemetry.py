"""OpenTelemetry export of each turn's Trace row, in GenAI semantic-convention terms.

Registered as a pipeline message hook when ``settings.otlp_endpoint`` is set. After a turn
commits, the hook reads the new Trace rows of the conversation and emits one span tree per turn:

    invoke_agent textdesk                      gen_ai.operation.name=invoke_agent, textdesk.route/...
    ├── textdesk.step rules                    textdesk.step.outcome / reason / score
    ├── textdesk.step understand
    │   └── chat gpt-4o-mini                   gen_ai.operation.name=chat, gen_ai.request.model,
    │                                          gen_ai.usage.input_tokens / output_tokens
    ├── execute_tool escalate                  gen_ai.operation.name=execute_tool, gen_ai.tool.name
    └── ...

Message contents are not exported (the semantic conventions make them opt-in) and every string
attribute goes through ``redact``: no phone number or email leaves in a span. The spans are
rebuilt from the stored trace, so their timing is the turn's start plus recorded durations.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Trace
from textdesk.redact import redact

__all__ = ["TurnSpans", "otlp_provider"]

log = logging.getLogger("textdesk.web.telemetry")
_MAX_CONVERSATIONS = 10_000


def otlp_provider(endpoint: str) -> TracerProvider:
    """A tracer provider exporting over OTLP/HTTP to ``endpoint`` (a collector base URL)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": "textdesk"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url, timeout=5)))
    return provider


def _ns(at: dt.datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1e9)


def _timed(step: dict[str, Any], start: int, end: int) -> tuple[int, int]:
    """A step's own span inside the turn when the trace timed it (``at_ms``/``ms``), else the turn's."""
    at, ms = step.get("at_ms"), step.get("ms")
    if not isinstance(at, int | float) or not isinstance(ms, int | float):
        return start, end
    begin = min(end, start + int(at * 1e6))
    return begin, min(end, max(begin + int(ms * 1e6), begin + 1000))


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values, redact strings (OTel attributes must be scalars)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        out[key] = redact(value) if isinstance(value, str) else value
    return out


class TurnSpans:
    """The message hook: export each committed turn of a conversation once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], provider: TracerProvider) -> None:
        self.sessions, self.provider = sessions, provider
        self.tracer = provider.get_tracer("textdesk.turns")
        self._seen: OrderedDict[int, int] = OrderedDict()  # conversation id -> last exported trace id

    async def __call__(self, conversation_id: int) -> None:
        try:
            async with self.sessions() as session:
                q = select(Trace).where(Trace.conversation_id == conversation_id)
                last = self._seen.get(conversation_id)
                if last is None:
                    rows = list(await session.exec(q.order_by(col(Trace.id).desc()).limit(1)))
                else:
                    rows = list(await session.exec(q.where(col(Trace.id) > last).order_by(col(Trace.id))))
            for trace in sorted(rows, key=lambda t: t.id or 0):
                self.export(trace)
                self._seen[conversation_id] = trace.id or 0
                self._seen.move_to_end(conversation_id)
            while len(self._seen) > _MAX_CONVERSATIONS:
                self._seen.popitem(last=False)
        except Exception as exc:  # telemetry must never affect a turn
            log.warning(
                "otel.export_failed", extra={"conversation_id": conversation_id, "error": type(exc).__name__}
            )

    def export(self, t: Trace) -> None:
        start = _ns(t.created_at)
        end = start + max(int(t.latency_ms * 1e6), 1_000_000)
        system = "openai" if t.provider in {"openai", "hybrid"} else (t.provider or "textdesk")
        root = self.tracer.start_span(
            "invoke_agent textdesk",
            kind=SpanKind.INTERNAL,
            start_time=start,
            attributes=_attrs(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "textdesk",
                    "gen_ai.system": system,
                    "gen_ai.provider.name": system,
                    "gen_ai.request.model": t.model,
                    "gen_ai.usage.input_tokens": t.tokens_in,
                    "gen_ai.usage.output_tokens": t.tokens_out,
                    "textdesk.trace.id": t.id,
                    "textdesk.conversation.id": t.conversation_id,
                    "textdesk.route": t.route,
                    "textdesk.rule": t.rule,
                    "textdesk.intent": t.intent,
                    "textdesk.confidence": t.confidence,
                    "textdesk.escalated": t.escalated,
                    "textdesk.escalation_reason": t.escalation_reason,
                    "textdesk.prompt_version": t.prompt_version,
                    "textdesk.llm_calls": t.llm_calls,
                    "textdesk.segments": t.segments,
                    "textdesk.tools": ",".join(str(c.get("name")) for c in t.tools) or None,
                }
            ),
        )
        ctx = set_span_in_context(root)
        for step in t.steps:
            self._step(step, t, system, start, end, ctx)
        root.end(end_time=end)

    def _step(self, step: dict[str, Any], t: Trace, system: str, start: int, end: int, ctx: Any) -> None:
        name, outcome, reason = str(step.get("step")), str(step.get("outcome")), str(step.get("reason") or "")
        turn_start, (start, end) = start, _timed(step, start, end)
        if name == "tool":
            span: Span = self.tracer.start_span(
                f"execute_tool {reason}",
                context=ctx,
                start_time=start,
                attributes=_attrs(
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": reason,
                        "textdesk.tool.outcome": outcome,
                    }
                ),
            )
            if outcome != "ok":
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.end(end_time=end)
            return
        score = step.get("score")
        span = self.tracer.start_span(
            f"textdesk.step {name}",
            context=ctx,
            start_time=start,
            attributes=_attrs(
                {
                    "textdesk.step": name,
                    "textdesk.step.outcome": outcome,
                    "textdesk.step.reason": reason,
                    "textdesk.step.score": float(score) if isinstance(score, int | float) else None,
                }
            ),
        )
        if name == "understand":
            at = start
            inner = set_span_in_context(span)
            for ex in t.llm:
                dur = max(int(float(ex.get("ms") or 0) * 1e6), 1000)
                if isinstance(ex.get("at_ms"), int | float):  # timed traces place each call where it ran
                    at = turn_start + int(float(ex["at_ms"]) * 1e6)
                model = str(ex.get("model") or t.model or "")
                chat = self.tracer.start_span(
                    f"chat {model}".strip(),
                    kind=SpanKind.CLIENT,
                    context=inner,
                    start_time=at,
                    attributes=_attrs(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.system": system,
                            "gen_ai.provider.name": system,
                            "gen_ai.request.model": model,
                            "gen_ai.usage.input_tokens": int(ex.get("tokens_in") or 0),
                            "gen_ai.usage.output_tokens": int(ex.get("tokens_out") or 0),
                            "textdesk.prompt_version": ex.get("prompt_version"),
                            "error.type": ex.get("error"),
                        }
                    ),
                )
                if ex.get("error"):
                    chat.set_status(Status(StatusCode.ERROR, redact(str(ex["error"]))))
                chat.end(end_time=at + dur)
                at += dur
        span.end(end_time=end)

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.provider.shutdown)
