"""Cassettes: record live (respx-served) responses, replay them with no network, fail loudly on a miss."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import respx

from agent.providers.base import UnderstandRequest
from agent.providers.cassette import Cassette, CassetteMiss, RecordingTransport, fingerprint
from agent.providers.hybrid import HybridProvider
from agent.providers.llm import build_llm_provider
from agent.providers.offline import OfflineProvider
from agent.providers.openai_provider import OpenAIProvider
from agent.providers.replay import ReplayProvider, cassette_path
from agent.state import DialogueState
from agent.types import Understanding
from textdesk.business import Business, load_business
from textdesk.errors import ProviderError
from textdesk.settings import DEMO_BUSINESS_FILE, Settings

BASE = "http://llm.test/v1"
URL = f"{BASE}/chat/completions"
NOW = dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)


def completion(arguments: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-rec1", "object": "chat.completion", "created": 1772550000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": None, "refusal": None,
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "understand", "arguments": arguments}}]}}],
        "usage": {"prompt_tokens": 700, "completion_tokens": 30, "total_tokens": 730},
    }


GOOD = json.dumps({"intent": "reschedule_appointment", "confidence": 0.88, "target_date": "2026-03-05",
                   "slots": {"date": "2026-03-06", "time": "11:00"},
                   "tool_calls": [{"name": "reschedule_booking",
                                   "args": {"booking_id": "b1", "date": "2026-03-06", "time": "11:00"}}]})


@dataclass
class _Pred:
    intent: str
    confidence: float


class FixedClassifier:
    def predict(self, text: str) -> _Pred:
        return _Pred("out_of_scope", 0.2)


@pytest.fixture
def business() -> Business:
    return load_business(DEMO_BUSINESS_FILE)


@pytest.fixture
def offline() -> OfflineProvider:
    return OfflineProvider(classifier=cast(Any, FixedClassifier()))


def settings(tmp_path: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {"llm_base_url": BASE, "llm_api_key": "sk-test", "llm_model": "gpt-4o-mini",
                              "cassette_dir": tmp_path}
    values.update(over)
    return Settings(**values)


def request(business: Business, text: str = "move my thursday one to friday at 11") -> UnderstandRequest:
    return UnderstandRequest(text, business, NOW, DialogueState(),
                             bookings=["[b1] haircut with Kim on Thu Mar 5 at 3:00 PM"])


def comparable(u: Understanding) -> dict[str, Any]:
    """Everything but wall-clock latency and the provider's own name."""
    data = u.model_dump(exclude={"provider"})
    for ex in data["exchanges"]:
        ex.pop("ms")
    return data


async def record(tmp_path: Path, business: Business, offline: OfflineProvider,
                 responses: list[httpx.Response], text: str | None = None) -> tuple[Understanding, Cassette]:
    cassette = Cassette(tmp_path / "suite.jsonl")
    provider = OpenAIProvider(settings(tmp_path), transport=RecordingTransport(cassette), offline=offline)
    with respx.mock:
        respx.post(URL).mock(side_effect=responses)
        u = await provider.understand(request(business, *(t for t in [text] if t)))
    await provider.aclose()
    return u, cassette


async def test_record_then_replay_gives_the_same_understanding(tmp_path: Path, business: Business,
                                                              offline: OfflineProvider) -> None:
    live, cassette = await record(tmp_path, business, offline, [
        httpx.Response(200, json=completion('{"intent": "resched')),  # bad JSON: the repair is recorded too
        httpx.Response(200, json=completion(GOOD)),
    ])
    assert live.llm_calls == 2 and live.fallback is None and len(cassette) == 2
    assert live.proposed[0].args == {"booking_id": "b1", "date": "2026-03-06", "time": "11:00"}

    replay = ReplayProvider(settings(tmp_path, llm_provider="replay"), Cassette(cassette.path),
                            offline=offline)
    with respx.mock:  # no routes: any real request would fail the test
        again = await replay.understand(request(business))
    await replay.aclose()

    assert again.provider == "replay" and live.provider == "openai"
    assert comparable(again) == comparable(live)


async def test_replay_miss_raises_naming_the_closest_request(tmp_path: Path, business: Business,
                                                            offline: OfflineProvider) -> None:
    _, cassette = await record(tmp_path, business, offline, [httpx.Response(200, json=completion(GOOD))])
    replay = ReplayProvider(settings(tmp_path), Cassette(cassette.path), offline=offline)
    recorded = next(iter(json.loads(line) for line in cassette.path.read_text().splitlines()))

    with pytest.raises(CassetteMiss) as caught:
        await replay.understand(request(business, text="move my thursday one to saturday at 11"))
    miss = caught.value
    assert isinstance(miss, ProviderError)
    assert miss.closest == recorded["fingerprint"]
    assert miss.fingerprint != recorded["fingerprint"] and miss.fingerprint[:12] in str(miss)
    assert "messages[1] differs" in str(miss) and "saturday" in str(miss)
    await replay.aclose()


async def test_empty_cassette_miss_says_so(tmp_path: Path, business: Business,
                                           offline: OfflineProvider) -> None:
    replay = ReplayProvider(settings(tmp_path), Cassette(tmp_path / "none.jsonl"), offline=offline)
    with pytest.raises(CassetteMiss, match="the cassette is empty"):
        await replay.understand(request(business))
    await replay.aclose()


def test_fingerprint_is_canonical() -> None:
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    b = {"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({**a, "temperature": 0.2})


def test_cassette_appends_once_and_redacts_stored_requests(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cassette = Cassette(path)
    body = {"model": "m", "messages": [{"role": "user", "content": "call me at 917-555-0142"}]}
    fp = cassette.put(body, completion(GOOD))
    cassette.put(body, completion(GOOD))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and fp == fingerprint(body)
    assert "917-555-0142" not in lines[0]
    assert Cassette(path).get(fp) is not None


def test_corrupt_cassette_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"fingerprint": "x"}\n')
    with pytest.raises(ProviderError, match=r"bad\.jsonl:1"):
        Cassette(path)


async def test_build_llm_provider_wiring(tmp_path: Path, business: Business) -> None:
    replay = build_llm_provider(settings(tmp_path, llm_provider="replay"), business)
    assert isinstance(replay, ReplayProvider)
    assert replay.cassette.path == cassette_path(settings(tmp_path))
    assert replay.cassette.path == tmp_path / "understand@v1__gpt-4o-mini.jsonl"

    record_settings = settings(tmp_path, llm_provider="openai", cassette_mode="record")
    recording = build_llm_provider(record_settings, business)
    assert isinstance(recording, OpenAIProvider) and not isinstance(recording, ReplayProvider)
    assert isinstance(recording._http._transport, RecordingTransport)

    hybrid = build_llm_provider(settings(tmp_path, llm_provider="hybrid", cassette_mode="replay",
                                         hybrid_threshold=0.7), business)
    assert isinstance(hybrid, HybridProvider) and isinstance(hybrid.llm, ReplayProvider)
    assert hybrid.threshold == 0.7
    for p in (replay, recording, hybrid):
        await p.aclose()  # type: ignore[attr-defined]
