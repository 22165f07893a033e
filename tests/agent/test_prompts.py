"""Prompt files: loading, validation, rendering, size, canary, and the generated tool schema."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import yaml

from agent.llm_output import UNDERSTAND, understand_tool
from agent.prompts import PROMPTS_DIR, estimate_tokens, load_prompt, render_system
from agent.providers.base import UnderstandRequest
from agent.state import DialogueState, Offer
from agent.types import INTENTS
from guardrails.output import CANARY
from textdesk.business import Business, load_business
from textdesk.errors import ConfigurationError
from textdesk.settings import DEMO_BUSINESS_FILE
from tools.schemas import tool_json_schemas

PROMPTS = ["understand@v1", "understand@v2"]
# 03:30 UTC on Tuesday is still Monday evening in New York: the prompt must use the business zone.
NOW = dt.datetime(2026, 3, 3, 3, 30, tzinfo=dt.UTC)


@pytest.fixture
def business() -> Business:
    return load_business(DEMO_BUSINESS_FILE)


def busy_request(business: Business) -> UnderstandRequest:
    """A large but realistic turn: a task under way, offered times, three bookings."""
    state = DialogueState(task="reschedule_appointment", slots={"service": "color", "date": "2026-03-06"},
                          pending="time",
                          offers=[Offer(date="2026-03-06", time=t) for t in ("10:00", "11:30", "14:00")],
                          booking_id="b2")
    return UnderstandRequest(
        text="can we do the later one", business=business, now=NOW, state=state,
        history=[("user", "move my color to friday"), ("assistant", "Friday has 10:00, 11:30 or 2:00 PM.")],
        bookings=["[b1] haircut with Kim on Thu Mar 5 at 3:00 PM",
                  "[b2] color with Luis on Sat Mar 7 at 11:00 AM",
                  "[b3] manicure on Mon Mar 9 at 9:30 AM"],
    )


@pytest.mark.parametrize("name", PROMPTS)
def test_spec_loads_with_name_fingerprint_and_tools(name: str) -> None:
    spec = load_prompt(name)
    path = PROMPTS_DIR / "understand" / f"{name.split('@')[1]}.yaml"
    assert spec.name == name and spec.canary == CANARY
    assert spec.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.ref == f"{name}#{spec.fingerprint[:8]}"
    assert {"create_booking", "cancel_booking", "escalate"} <= set(spec.tools)
    assert load_prompt(name) is spec  # cached


@pytest.mark.parametrize("name", PROMPTS)
def test_rendered_prompt_has_canary_facts_and_state(name: str, business: Business) -> None:
    text = render_system(load_prompt(name), busy_request(business))
    assert CANARY in text
    assert "Monday 2026-03-02, 22:30" in text  # local date, weekday and time
    assert "Tue 2026-03-03" in text  # the coming days, for "tomorrow" / "thursday"
    for fact in ("Maple Street Salon", "haircut", "from $95", "highlights", "Kim", "Luis", "sun closed",
                 "Where are you located?", "billing, refund, complaint, medical, legal"):
        assert fact in text
    for state in ("reschedule_appointment", "service=color, date=2026-03-06", "time",
                  "1) 10:00 2) 11:30 3) 14:00 (on 2026-03-06)", "[b2] color with Luis"):
        assert state in text
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("name", PROMPTS)
def test_prompt_stays_under_1200_estimated_tokens(name: str, business: Business) -> None:
    tokens = estimate_tokens(render_system(load_prompt(name), busy_request(business)))
    assert tokens < 1200, tokens


def test_empty_state_renders_placeholders(business: Business) -> None:
    req = UnderstandRequest("hi", business, NOW, DialogueState())
    text = render_system(load_prompt("understand@v1"), req)
    assert "active task: none" in text and "- none" in text and "options offered" not in text


def test_understand_schema_is_generated_from_the_validators() -> None:
    spec = load_prompt("understand@v1")
    tool = understand_tool(spec.tools)
    fn = tool["function"]
    assert tool["type"] == "function" and fn["name"] == UNDERSTAND
    params = fn["parameters"]
    assert params["additionalProperties"] is False and "$defs" not in params
    assert set(params["required"]) == {"intent", "confidence"}
    assert params["properties"]["intent"]["enum"] == [*INTENTS, None]
    assert params["properties"]["slots"]["properties"]["date"]["type"] == ["string", "null"]
    variants = params["properties"]["tool_calls"]["items"]["anyOf"]
    assert [v["properties"]["name"]["const"] for v in variants] == spec.tools
    expected = {t["function"]["name"]: t["function"]["parameters"] for t in tool_json_schemas(spec.tools)}
    for v in variants:
        args = v["properties"]["args"]
        assert args["properties"].keys() == expected[v["properties"]["name"]["const"]]["properties"].keys()
        assert "phone" not in args["properties"] and "contact_id" not in args["properties"]


def _write(root: Path, **over: object) -> None:
    data = yaml.safe_load((PROMPTS_DIR / "understand" / "v1.yaml").read_text())
    data.update(over)
    (root / "understand").mkdir(parents=True, exist_ok=True)
    (root / "understand" / "v1.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(("over", "problem"), [
    ({"tools": ["create_booking", "send_sms"]}, "unknown tool names"),
    ({"canary": "something-else"}, "canary"),
    ({"system": "No marker here {{ business.name }}"}, "canary"),
    ({"system": "{% if %} {{ canary }}"}, "v1.yaml"),
    ({"version": 2}, "declares 'understand@v2'"),
    ({"temperature": 0.3}, "temperature"),
])
def test_bad_prompt_files_fail_at_load(tmp_path: Path, over: dict[str, object], problem: str) -> None:
    _write(tmp_path, **over)
    with pytest.raises(ConfigurationError, match=problem):
        load_prompt("understand@v1", root=tmp_path)


@pytest.mark.parametrize("name", ["understand", "understand@v9", "../etc@v1", "understand@1"])
def test_unknown_or_malformed_names_fail(name: str) -> None:
    with pytest.raises(ConfigurationError):
        load_prompt(name)
