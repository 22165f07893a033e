"""Escalation notices to a Slack-compatible webhook: retried on 5xx, never in the customer's way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from tests.web.conftest import Web, make_web, settle
from textdesk.clock import FrozenClock
from web.slack import SlackNotifier

HOOK = "https://hooks.slack.example/services/T000/B000/XXXX"


@pytest.fixture
async def slack_web(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    async for w in make_web(sqlite_url, tmp_path, clock, slack_webhook_url=HOOK):
        yield w


async def test_escalation_posts_reason_summary_and_link_and_retries_a_500(slack_web: Web) -> None:
    slack_web.app.state.slack.wait_s = 0.01
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200, text="ok")])
        resp = await slack_web.sms.text("HUMAN", sender="+12125550123")
        assert resp.status_code == 200 and "<Message" in resp.text
        await settle()
    assert route.call_count == 2  # a 500, then retried once to the 200
    payload = json.loads(route.calls[-1].request.content)
    assert set(payload) == {"text"}
    text = payload["text"]
    assert "requested" in text and "asking for a person" in text
    assert "https://sms.example.com/inbox/" in text
    assert "2125550123" not in text  # no raw phone number leaves for the chat workspace


async def test_slack_down_never_affects_the_customers_turn(slack_web: Web) -> None:
    slack_web.app.state.slack.wait_s = 0.01
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(503))
        resp = await slack_web.sms.text("HUMAN", sender="+12125550124")
        assert resp.status_code == 200
        assert "<Message" in resp.text  # the customer still got the handoff reply
        await settle()
    assert route.call_count == 3  # bounded: three attempts, then it gives up quietly


async def test_connection_errors_are_retried_and_4xx_are_not() -> None:
    notifier = SlackNotifier(HOOK, "https://sms.example.com", wait_s=0.01)
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(side_effect=[httpx.ConnectError("down"), httpx.Response(200)])
        await notifier(7, "billing", "Customer +1 212 555 0123 was charged twice")
        assert route.call_count == 2
        assert "[phone" in json.loads(route.calls[-1].request.content)["text"]
    with respx.mock() as mock:
        route = mock.post(HOOK).mock(return_value=httpx.Response(404))
        await notifier(7, "billing", "x")  # does not raise
        assert route.call_count == 1
    await notifier.aclose()


async def test_no_webhook_configured_means_no_hook(web: Web) -> None:
    assert web.app.state.slack is None
    assert not any(isinstance(h, SlackNotifier) for h in web.services.pipeline.escalation_hooks)
