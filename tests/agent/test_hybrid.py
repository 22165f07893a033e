"""Hybrid: offline first; the model only when offline is unsure. Counted at the HTTP boundary."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import respx

from agent.providers.base import UnderstandRequest
from agent.providers.hybrid import HybridProvider, offline_suffices
from agent.providers.offline import OfflineProvider
from agent.providers.openai_provider import OpenAIProvider
from agent.state import DialogueState, Offer
from agent.types import Understanding
from textdesk.business import Business, load_business
from textdesk.settings import DEMO_BUSINESS_FILE, Settings

BASE = "http://llm.test/v1"
URL = f"{BASE}/chat/completions"
NOW = dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)


def completion(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-h1", "object": "chat.completion", "created": 1772550000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": None, "refusal": None,
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "understand", "arguments": json.dumps(arguments)}}]}}],
        "usage": {"prompt_tokens": 650, "completion_tokens": 28, "total_tokens": 678},
    }


@dataclass
class _Pred:
    intent: str
    confidence: float


class KeywordClassifier:
    """Stands in for the trained classifier: sure about bookings, unsure about anything else."""

    def predict(self, text: str) -> _Pred:
        if "haircut" in text.lower():
            return _Pred("book_appointment", 0.93)
        return _Pred("out_of_scope", 0.31)


@pytest.fixture
def business() -> Business:
    return load_business(DEMO_BUSINESS_FILE)


@pytest.fixture
async def hybrid() -> AsyncIterator[HybridProvider]:
    offline = OfflineProvider(classifier=cast(Any, KeywordClassifier()))
    settings = Settings(llm_base_url=BASE, llm_api_key="sk-test", llm_model="gpt-4o-mini")
    provider = HybridProvider(offline, OpenAIProvider(settings, offline=offline), threshold=0.8)
    yield provider
    await provider.aclose()


def request(business: Business, text: str, state: DialogueState | None = None) -> UnderstandRequest:
    return UnderstandRequest(text, business, NOW, state or DialogueState())


@respx.mock
async def test_confident_offline_turn_makes_no_call(business: Business, hybrid: HybridProvider) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(500))
    u = await hybrid.understand(request(business, "can i get a haircut tomorrow at 2pm"))
    assert route.call_count == 0 and u.llm_calls == 0 and u.exchanges == []
    assert (u.intent, u.provider) == ("book_appointment", "hybrid:offline")
    assert u.slots.given() == {"service": "haircut", "date": "2026-03-04", "time": "14:00"}
    assert (hybrid.stats.turns, hybrid.stats.llm_turns, hybrid.stats.saved) == (1, 0, 1)


@respx.mock
async def test_unclear_turn_makes_one_call(business: Business, hybrid: HybridProvider) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json=completion(
        {"intent": "ask_question", "confidence": 0.86, "slots": {"service": "color"}})))
    u = await hybrid.understand(request(business, "would the purple stuff wash out of blonde in a week"))
    assert route.call_count == 1 and u.llm_calls == 1
    assert (u.intent, u.provider, u.slots.service) == ("ask_question", "hybrid:openai", "color")
    assert (u.tokens_in, u.tokens_out) == (650, 28)
    assert (hybrid.stats.turns, hybrid.stats.llm_turns, hybrid.stats.saved_share) == (1, 1, 0.0)


@respx.mock
async def test_answer_to_a_pending_question_skips_the_model(business: Business,
                                                           hybrid: HybridProvider) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(500))
    hybrid.threshold = 1.0  # even a perfectionist threshold: "yes" to a confirmation needs no model
    confirm = DialogueState(task="book_appointment", pending="confirm",
                            slots={"service": "haircut", "date": "2026-03-04", "time": "14:00"})
    pick = DialogueState(task="book_appointment", pending="time",
                         offers=[Offer(date="2026-03-04", time=t) for t in ("14:00", "15:00")])
    yes = await hybrid.understand(request(business, "yes please", confirm))
    two = await hybrid.understand(request(business, "2", pick))
    assert route.call_count == 0 and yes.affirm is True and two.choice == 2
    assert hybrid.stats.saved == 2


@respx.mock
async def test_model_outage_on_the_llm_path_still_answers(business: Business, hybrid: HybridProvider) -> None:
    respx.post(URL).mock(return_value=httpx.Response(400, json={"error": {"message": "bad model"}}))
    u = await hybrid.understand(request(business, "hmm about that thing"))
    assert u.provider == "hybrid:openai" and u.fallback == "offline" and u.error is None and u.llm_calls == 1


def test_offline_suffices_rules() -> None:
    st = DialogueState()
    assert offline_suffices(Understanding(confidence=0.8), st, 0.8)
    assert not offline_suffices(Understanding(confidence=0.79), st, 0.8)
    assert not offline_suffices(Understanding(confidence=0.2, affirm=True), st, 0.8)  # nothing pending
    pending = DialogueState(pending="confirm")
    assert offline_suffices(Understanding(confidence=0.2, affirm=False), pending, 0.8)
    assert not offline_suffices(Understanding(confidence=0.99, error="x"), st, 0.8)
