"""Fault: the LLM endpoint errors or hangs (issue 8.3).

The app is built from settings exactly as ``textdesk serve`` builds it (``llm_provider=openai``,
``llm_base_url`` pointing at the fake), so the real OpenAI SDK and its httpx client talk to:
respx answering in the chat-completions wire format (status errors, malformed output, refused
connections), or a real loopback socket that accepts the request and never answers (a hang).

Whatever the LLM does, the webhook answers 200 within the turn budget with a safe reply: the
offline provider's answer, or the outage reply plus an escalation. Never a 500, never silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import select

from agent.providers.offline import OfflineProvider
from agent.providers.openai_provider import OpenAIProvider
from guardrails.output import CANARY
from store.models import Conversation, Trace
from tests.conftest import MONDAY_9AM, make_settings
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from textdesk.settings import Settings
from web.app import create_app

BASE = "http://llm.fault.test/v1"
URL = f"{BASE}/chat/completions"
TURN_BUDGET_S = 3.0  # LLM budget = turn budget - 1.5 s pipeline margin = 1.5 s
SLACK_S = 0.75  # the webhook's own overhead on a loaded CI machine
UNSAFE = ("traceback", "exception", "internal error", "error:", "none", "null", CANARY.lower())


def llm_settings(db_url: str, base_url: str = BASE, **over: Any) -> Settings:
    # The model's own budget (1.5 s) sits inside the webhook's (3 s), so a safe reply still makes
    # the TwiML answer; the LLM budget no longer follows turn_budget_s (a slow turn replies by REST).
    over.setdefault("llm_total_budget_s", 1.5)
    return make_settings(db_url, llm_provider="openai", llm_base_url=base_url, llm_api_key="sk-test",
                         turn_budget_s=TURN_BUDGET_S, llm_max_retries=2, **over)


def api_error(status: int, **headers: str) -> httpx.Response:
    body = {"error": {"message": "upstream trouble", "type": "server_error", "code": None}}
    return httpx.Response(status, headers=headers, json=body)


def bad_arguments() -> httpx.Response:
    body = {"id": "chatcmpl-bad", "object": "chat.completion", "created": 1772550000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                         "message": {"role": "assistant", "content": None, "refusal": None,
                                     "tool_calls": [{"id": "call_1", "type": "function",
                                                     "function": {"name": "understand",
                                                                  "arguments": '{"intent": "book_appo'}}]}}],
            "usage": {"prompt_tokens": 700, "completion_tokens": 5, "total_tokens": 705}}
    return httpx.Response(200, json=body)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
async def app_for(sqlite_url: str, asgi_client_factory: Any, kit: Any
                  ) -> AsyncIterator[Callable[..., Any]]:
    built: list[Services] = []

    def make(settings: Settings | None = None, provider: Any = None) -> tuple[Services, Any]:
        services = build_services(settings or llm_settings(sqlite_url), clock=FrozenClock(MONDAY_9AM),
                                  provider=provider)
        built.append(services)
        return services, kit.Webhooks(asgi_client_factory(create_app(services)))

    yield make
    for s in built:
        await s.close()


async def traces(services: Services) -> list[Trace]:
    async with services.sessions() as s:
        return list(await s.exec(select(Trace).order_by(Trace.id)))  # type: ignore[arg-type]


def assert_safe_answer(a: Any) -> None:
    assert a.status == 200, a
    assert a.seconds < TURN_BUDGET_S + SLACK_S, f"answered in {a.seconds:.2f}s, budget {TURN_BUDGET_S}s"
    assert len(a.messages) == 1 and a.messages[0].strip(), f"no reply in the TwiML: {a}"
    low = a.messages[0].lower()
    assert not any(bad in low for bad in UNSAFE), a.messages[0]


FAILURES: dict[str, Any] = {
    "500": dict(return_value=api_error(500)),
    "503_then_429": dict(side_effect=[api_error(503), api_error(429), api_error(503)]),
    "429_retry_after_past_budget": dict(return_value=api_error(429, **{"retry-after": "30"})),
    "401_bad_key": dict(return_value=api_error(401)),
    "malformed_arguments": dict(return_value=bad_arguments()),
    "connection_refused": dict(side_effect=refused),
    # A proxy or gateway in front of the model answering 200 with a page, or a cut-off body.
    "200_html_page": dict(return_value=httpx.Response(200, text="<html>502 Bad Gateway</html>",
                                                      headers={"content-type": "text/html"})),
    "200_truncated_json": dict(return_value=httpx.Response(200, content=b'{"id": "chatcmpl-x", "choi',
                                                           headers={"content-type": "application/json"})),
    "200_empty_object": dict(return_value=httpx.Response(200, json={})),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_llm_errors_fall_back_to_a_safe_reply_within_the_budget(app_for: Any, kit: Any,
                                                                      failure: str) -> None:
    services, hooks = app_for()
    assert isinstance(services.provider, OpenAIProvider)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URL).mock(**FAILURES[failure])
        a = await hooks.post(kit.sms_params("+12125550150", "where are you located?"))
    assert_safe_answer(a)
    assert "12 Maple St" in a.messages[0], "the offline fallback still answers the FAQ"
    assert 1 <= route.call_count <= 3, "bounded: retries and one repair at most"
    (trace,) = await traces(services)
    understand = next(s for s in trace.steps if s["step"] == "understand")
    assert understand["data"]["fallback"] == "offline", understand
    assert trace.llm and all(e.get("error") or e.get("validation") for e in trace.llm)


async def test_llm_errors_under_concurrent_traffic_never_500(app_for: Any, kit: Any) -> None:
    services, hooks = app_for()
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=api_error(500))
        questions = ["where are you located?", "what are your hours?", "how much is a haircut?", "hi",
                     "where are you located?", "what are your hours?"]
        results = await asyncio.gather(*(hooks.post(kit.sms_params(f"+1212555{160 + i:04d}", q))
                                         for i, q in enumerate(questions)))
    for a in results:
        assert_safe_answer(a)
    assert len(await traces(services)) == len(results)


async def test_hung_llm_is_cut_at_the_budget_and_the_customer_still_gets_an_answer(
        sqlite_url: str, app_for: Any, kit: Any) -> None:
    async with kit.HangingServer() as hung:
        services, hooks = app_for(llm_settings(sqlite_url, base_url=f"{hung.base}/v1"))
        started = time.monotonic()
        a = await hooks.post(kit.sms_params("+12125550151", "where are you located?"))
        elapsed = time.monotonic() - started
        assert hung.connections >= 1, "the request reached the hung server"
    assert_safe_answer(a)
    assert "12 Maple St" in a.messages[0]
    assert elapsed >= 1.0, "the LLM was actually waited on (budget 1.5 s), not skipped"
    (trace,) = await traces(services)
    understand = next(s for s in trace.steps if s["step"] == "understand")
    assert understand["data"]["fallback"] == "offline"


async def test_hung_llm_on_a_booking_turn_answers_within_the_budget(sqlite_url: str, app_for: Any,
                                                                    kit: Any) -> None:
    async with kit.HangingServer() as hung:
        _, hooks = app_for(llm_settings(sqlite_url, base_url=f"{hung.base}/v1"))
        a = await hooks.post(kit.sms_params("+12125550152", "can i get a haircut tomorrow at 3pm with kim"))
    assert_safe_answer(a)


class BrokenOffline(OfflineProvider):
    """The offline fallback failing too (e.g. a corrupt model file): the last line of defence."""

    def parse(self, req: Any) -> Any:
        raise RuntimeError("offline model unavailable")


async def test_llm_and_offline_both_failing_gives_the_outage_reply_and_escalates(
        sqlite_url: str, app_for: Any, kit: Any) -> None:
    settings = llm_settings(sqlite_url)
    provider = OpenAIProvider(settings, offline=BrokenOffline(), http_client=httpx.AsyncClient())
    services, hooks = app_for(settings, provider=provider)
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=api_error(503))
        a = await hooks.post(kit.sms_params("+12125550153", "can i book a haircut tomorrow"))
    assert_safe_answer(a)
    assert "team member will text you back" in a.messages[0], a.messages
    (trace,) = await traces(services)
    assert trace.escalated and trace.escalation_reason == "other"
    assert [t["name"] for t in trace.tools] == ["escalate"]
    async with services.sessions() as s:
        conv = (await s.exec(select(Conversation))).one()
    assert conv.status == "waiting", "a person picks the conversation up"


