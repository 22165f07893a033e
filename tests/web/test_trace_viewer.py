"""The trace viewer a reviewer trusts: per-step timings, filters, cost, the conversation view, readable
tool calls, labels per prompt version, and two prompt versions replayed side by side."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import select

from store.models import Trace
from tests.faults.conftest import completion
from tests.web.conftest import Web, login, make_web, post_form
from textdesk.clock import FrozenClock
from web.trace_view import fmt_ms

PHONE = "+12125550123"
LLM = "http://llm.viewer.test/v1"


def listed(page: str) -> set[int]:
    """The trace ids a list page links to."""
    return {int(x) for x in re.findall(r'href="/traces/(\d+)"', page)}


def waterfall_rows(page: str) -> list[tuple[str, str, str]]:
    """(row name, start, duration) of each waterfall row, as the page shows them."""
    table = page.split('<table class="waterfall">', 1)[1].split("</table>", 1)[0]
    out = []
    for row in re.findall(r'<tr class="wf-row.*?</tr>', table, re.S):
        name = re.search(r'class="step-name">([^<]+)<', row)
        nums = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert name and len(nums) == 2, row
        out.append((name.group(1), nums[0], nums[1]))
    return out


async def trace_for(web: Web, message_id: int | None) -> Trace:
    async with web.services.sessions() as s:
        return (await s.exec(select(Trace).where(Trace.message_id == message_id))).one()


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, 15, 0, tzinfo=dt.UTC)  # 10:00 in New York, the salon's zone


async def seed(web: Web, **fields: Any) -> int:
    async with web.services.sessions() as s:
        trace = Trace(**{"route": "agent", **fields})
        s.add(trace)
        await s.commit()
        return trace.id or 0


# -- timings ----------------------------------------------------------------------------------------


async def test_waterfall_shows_every_step_of_a_real_turn_with_its_duration(web: Web) -> None:
    result = await web.text("can i get a haircut with kim on wednesday at 2pm", PHONE)
    trace = await trace_for(web, result.message_id)
    names = [s["step"] for s in trace.steps]
    assert {"rate_limit", "rules", "injection", "understand", "policy", "output_guard"} <= set(names)
    for s in trace.steps:  # every step is timed, inside the turn
        assert s["ms"] >= 0 and s["at_ms"] >= 0, s
        assert s["at_ms"] + s["ms"] <= trace.latency_ms + 0.05, (s, trace.latency_ms)
    starts = [s["at_ms"] for s in trace.steps]
    assert starts[0] == min(starts) and trace.steps[-1]["step"] == "output_guard"

    await login(web.client, "reviewer")
    page = (await web.client.get(f"/traces/{trace.id}")).text
    rows = waterfall_rows(page)
    by_start = sorted(trace.steps, key=lambda s: s["at_ms"])
    assert [(r[0]) for r in rows] == [s["step"].replace("_", " ") for s in by_start]
    assert [(r[1], r[2]) for r in rows] == [(fmt_ms(s["at_ms"]), fmt_ms(s["ms"])) for s in by_start]
    bar = r'<svg class="wf-bar"[^>]*aria-hidden="true"[^>]*><rect x="([\d.]+)" y="0" width="([\d.]+)"'
    bars = re.findall(bar, page)
    assert len(bars) == len(rows) and all(float(w) >= 2 for _, w in bars)
    assert "Recorded before" not in page


async def test_tool_steps_are_timed_inside_the_step_that_ran_them(web: Web) -> None:
    result = await web.text("HUMAN", PHONE)
    trace = await trace_for(web, result.message_id)
    rules = next(s for s in trace.steps if s["step"] == "rules")
    tool = next(s for s in trace.steps if s["step"] == "tool")
    assert rules["at_ms"] <= tool["at_ms"] and tool["at_ms"] + tool["ms"] <= rules["at_ms"] + rules["ms"]
    await login(web.client, "reviewer")
    page = (await web.client.get(f"/traces/{trace.id}")).text
    assert re.search(r'<tr class="wf-row wf-step step-tool [^"]*wf-nested">', page)  # drawn under the rule


async def test_an_old_trace_without_timings_still_renders(web: Web) -> None:
    steps = [{"step": "rate_limit", "outcome": "pass"}, {"step": "rules", "outcome": "pass"}]
    tid = await seed(web, steps=steps,
                     llm=[{"model": "gpt-4o-mini", "prompt_version": "understand@v1#abc", "request": [],
                           "tokens_in": 5, "tokens_out": 1, "ms": 420.0}])
    await login(web.client, "reviewer")
    resp = await web.client.get(f"/traces/{tid}")
    assert resp.status_code == 200
    assert "Recorded before textdesk timed each step" in resp.text
    assert waterfall_rows(resp.text) == [("rate limit", "–", "–"), ("rules", "–", "–"),
                                         ("model call 1", "–", "420.0 ms")]
    assert '<svg class="wf-bar"' not in resp.text


@pytest.fixture
async def llm_web(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    """The app with the OpenAI provider, its endpoint answered by respx in the wire format."""
    async for w in make_web(sqlite_url, tmp_path, clock, llm_provider="openai", llm_base_url=LLM,
                            llm_api_key="sk-test"):
        yield w


def by_prompt_version(request: httpx.Request) -> httpx.Response:
    """understand@v1 reads "what are your hours?" as a question, v2 (told apart by its wording) as
    a greeting: the two versions disagree, so the side by side has something to show."""
    system = json.loads(request.content)["messages"][0]["content"]
    intent = "greeting" if system.startswith("You classify text messages") else "ask_question"
    return httpx.Response(200, json=completion({"intent": intent, "confidence": 0.95, "slots": {},
                                                "tool_calls": []}))


async def test_model_calls_are_timed_within_the_understand_step(llm_web: Web) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(f"{LLM}/chat/completions").mock(side_effect=by_prompt_version)
        result = await llm_web.text("what are your hours?", PHONE)
    trace = await trace_for(llm_web, result.message_id)
    understand = next(s for s in trace.steps if s["step"] == "understand")
    (call,) = trace.llm
    assert "started_s" not in call  # a process-local clock reading is never stored
    assert understand["at_ms"] <= call["at_ms"]
    assert call["at_ms"] + call["ms"] <= understand["at_ms"] + understand["ms"] + 0.2
    await login(llm_web.client, "reviewer")
    page = (await llm_web.client.get(f"/traces/{trace.id}")).text
    rows = waterfall_rows(page)
    names = [r[0] for r in rows]
    assert names[names.index("understand") + 1] == "model call 1"
    assert rows[names.index("model call 1")][1:] == (fmt_ms(call["at_ms"]), fmt_ms(call["ms"]))
    assert '<article class="exchange" id="ex-1">' in page
    assert "$0.00012" in page  # 700 in, 30 out at gpt-4o-mini's price


# -- the list: filters, tokens and cost ------------------------------------------------------------


async def test_filters_narrow_the_list_and_combine(web: Web) -> None:
    a = await seed(web, intent="book_appointment", prompt_version="understand@v1", model="gpt-4o-mini",
                   label="wrong", created_at=at(2, 20), reply="See you Wednesday")
    b = await seed(web, intent="ask_question", prompt_version="understand@v2", model="gpt-4o-mini",
                   label="correct", created_at=at(3, 1), reply="We are at 12 Maple St")
    c = await seed(web, intent="cancel_appointment", prompt_version="understand@v2", model="local-llama",
                   created_at=at(3, 2), reply="Cancelled, call me at 917-555-0188 if needed", tokens_in=50)
    d = await seed(web, route="rule", rule="help", created_at=at(3, 2), reply="Maple Salon: reply STOP")
    await login(web.client, "reviewer")

    async def ids(query: str) -> set[int]:
        resp = await web.client.get(f"/traces?{query}")
        assert resp.status_code == 200
        return listed(resp.text)

    assert await ids("") == {a, b, c, d}
    assert await ids("intent=ask_question") == {b}
    assert await ids("prompt=understand@v2") == {b, c}
    assert await ids("prompt=understand@v2&label=none") == {c}
    assert await ids("prompt=none") == {d}
    assert await ids("model=local-llama") == {c}
    assert await ids("route=rule") == {d}
    assert await ids("since=2026-03-01&until=2026-03-01") == {b}  # business-local days, both ends included
    assert await ids("since=2026-03-01") == {b, c, d}
    assert await ids("until=2026-02-28") == {a}
    assert await ids("q=maple") == {b, d}
    assert await ids("q=MAPLE&route=agent") == {b}
    assert await ids("prompt=understand@v1&label=wrong&since=2026-02-01&q=wednesday") == {a}
    assert await ids("q=0188") == set()  # the page shows "[phone …88]": digits cannot be fished for
    assert await ids("q=call+me") == {c}
    assert await ids("prompt=understand@v9&intent=bogus&since=not-a-date") == {a, b, c, d}  # unknown: ignored

    page = (await web.client.get("/traces?prompt=understand@v2&label=none&q=cancelled&since=2026-03-01")).text
    assert '<option selected>understand@v2</option>' in page and 'value="cancelled"' in page
    assert 'value="2026-03-01"' in page and '<option value="none" selected>unlabelled</option>' in page
    assert "917-555-0188" not in page


async def test_tokens_and_estimated_cost_per_turn(web: Web) -> None:
    known = await seed(web, model="gpt-4o-mini", tokens_in=1000, tokens_out=100)
    unknown = await seed(web, model="local-llama", tokens_in=50, tokens_out=5)
    await login(web.client, "reviewer")
    page = (await web.client.get("/traces")).text
    rows = dict(re.findall(r'<tr>\s*<td><a href="/traces/(\d+)">(.*?)</tr>', page, re.S))
    rows = {int(k): v for k, v in rows.items()}
    assert '<td class="num">1000 / 100</td>' in rows[known]
    assert "$0.00021" in rows[known]  # 1000 × $0.15 + 100 × $0.60 per million
    assert '<td class="num">50 / 5</td>' in rows[unknown] and '<td class="num">—</td>' in rows[unknown]


# -- a conversation, tool calls ---------------------------------------------------------------------


async def test_conversation_view_lists_its_turns_in_order_under_a_redacted_header(web: Web) -> None:
    first = await web.text("where are you located?", PHONE)
    second = await web.text("my email is ana@example.com", PHONE)
    other = await web.text("HUMAN", "+12125550199")
    await login(web.client, "reviewer")
    resp = await web.client.get(f"/traces/conversations/{first.conversation_id}")
    assert resp.status_code == 200
    page = resp.text
    assert "[phone …23]" in page and "2125550123" not in page and "ana@example.com" not in page
    assert "SMS" in page and "Bot" in page and re.search(r"<dt>Turns</dt><dd>2</dd>", page)
    t1, t2 = await trace_for(web, first.message_id), await trace_for(web, second.message_id)
    assert re.findall(r'href="/traces/(\d+)">Turn \d', page) == [str(t1.id), str(t2.id)]
    assert str((await trace_for(web, other.message_id)).id) not in re.findall(r'href="/traces/(\d+)"', page)
    detail = (await web.client.get(f"/traces/{t2.id}")).text
    assert f'href="/traces/conversations/{first.conversation_id}"' in detail
    assert (await web.client.get("/traces/conversations/999999")).status_code == 404


async def test_tool_call_arguments_are_pretty_printed_escaped_json(web: Web) -> None:
    args = {"name": "<b>Ana</b> & Co", "email": "a@b.co"}
    tid = await seed(web, tools=[{"name": "update_contact", "args": args}])
    await login(web.client, "reviewer")
    page = (await web.client.get(f"/traces/{tid}")).text
    block = re.search(r'<code>update_contact</code><pre class="json">(.*?)</pre>', page, re.S)
    assert block, page
    assert "<b>" not in block.group(1) and "&lt;b&gt;Ana&lt;/b&gt; &amp; Co" in block.group(1)
    assert json.loads(html.unescape(block.group(1))) == {"name": "<b>Ana</b> & Co", "email": "[email]"}
    assert '\n  "name": ' in html.unescape(block.group(1))  # indented, one key a line


# -- labels per prompt version ----------------------------------------------------------------------


async def test_label_summary_counts_per_prompt_version_with_wrong_ones_a_click_away(web: Web) -> None:
    wrong = await seed(web, prompt_version="understand@v1", label="wrong")
    await seed(web, prompt_version="understand@v1", label="correct")
    await seed(web, prompt_version="understand@v1", label="correct")
    await seed(web, prompt_version="understand@v2", label="correct")
    await seed(web, prompt_version="understand@v2")
    await seed(web, route="rule")
    await login(web.client, "reviewer")
    page = (await web.client.get("/traces/labels")).text

    def counts(name: str) -> list[str]:
        row = re.search(rf'<th scope="row">{re.escape(name)}</th>(.*?)</tr>', page, re.S)
        assert row, name
        return re.findall(r">(\d+|–|\d+%)</", row.group(1))

    assert counts("understand@v1") == ["2", "1", "0", "3", "33%"]  # correct, wrong, unlabelled, turns
    assert counts("understand@v2") == ["1", "0", "1", "2", "0%"]
    assert counts("No prompt") == ["0", "0", "1", "1", "–"]
    link = re.search(r'href="(/traces\?prompt=understand%40v1&amp;label=wrong)"', page)
    assert link
    assert listed((await web.client.get(html.unescape(link.group(1)))).text) == {wrong}


# -- two prompt versions side by side --------------------------------------------------------------


async def test_side_by_side_replays_a_stored_conversation_with_two_versions(web: Web) -> None:
    await web.text("where are you located?", PHONE)
    second = await web.text("can i get a haircut with kim on wednesday at 2pm? i'm ana@example.com", PHONE)
    cid = second.conversation_id
    await login(web.client, "reviewer")
    form = (await web.client.get(f"/traces/compare?conversation={cid}")).text
    assert f'<option value="{cid}" selected>' in form and "<option selected>understand@v2</option>" in form
    resp = await post_form(web.client, "/traces/compare",
                           {"conversation": str(cid), "a": "understand@v1", "b": "understand@v2"})
    assert resp.status_code == 200, resp.text[:500]
    page = resp.text
    table = page.split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"turn-(same|differs)\">(.*?)</tr>", table, re.S)
    assert len(rows) == 2 and "2 turns replayed" in page
    # The offline provider reads no prompt: both versions answer alike, and they are real answers.
    assert [kind for kind, _ in rows] == ["same", "same"]
    assert "both versions answered every turn the same way" in page
    assert rows[0][1].count("12 Maple St") == 2 and rows[1][1].count("book_appointment") == 2
    assert "ana@example.com" not in page and "[email]" in rows[1][1]
    t2 = await trace_for(web, second.message_id)
    assert f'href="/traces/{t2.id}"' in rows[1][1]  # each turn links its stored trace
    async with web.services.sessions() as s:  # the replay ran in a scratch store
        assert len(list(await s.exec(select(Trace).where(Trace.conversation_id == cid)))) == 2


async def test_side_by_side_highlights_where_two_versions_differ(llm_web: Web) -> None:
    with respx.mock() as mock:
        mock.post(f"{LLM}/chat/completions").mock(side_effect=by_prompt_version)
        result = await llm_web.text("what are your hours?", PHONE)
        await login(llm_web.client, "reviewer")
        resp = await post_form(llm_web.client, "/traces/compare",
                               {"conversation": str(result.conversation_id), "a": "understand@v1",
                                "b": "understand@v2"})
        assert mock.calls.call_count == 3  # the stored turn, then one per version
    assert resp.status_code == 200, resp.text[:500]
    table = resp.text.split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    ((kind, row),) = re.findall(r"<tr class=\"turn-(same|differs)\">(.*?)</tr>", table, re.S)
    assert kind == "differs" and "1 differs between the versions" in resp.text
    a_cell, b_cell = re.findall(r'<dl class="fields replay-side">(.*?)</dl>', row, re.S)
    assert re.search(r'<dt class="diff">intent <span class="diff-mark">\(differs\)</span></dt>', a_cell)
    assert "ask_question" in a_cell and "greeting" in b_cell
    assert re.search(r"<dt>route</dt>", a_cell)  # the same route is not marked


async def test_side_by_side_refuses_bad_input(web: Web) -> None:
    result = await web.text("where are you located?", PHONE)
    await login(web.client, "reviewer")
    bad = [{"conversation": str(result.conversation_id), "a": "understand@v1", "b": "understand@v99"},
           {"conversation": "", "a": "understand@v1", "b": "understand@v2"},
           {"conversation": "999999", "a": "understand@v1", "b": "understand@v2"}]
    for data in bad:
        resp = await post_form(web.client, "/traces/compare", data)
        assert resp.status_code == 400 and 'role="alert"' in resp.text, data


async def test_side_by_side_is_for_reviewers_and_admins_and_needs_the_csrf_token(web: Web) -> None:
    result = await web.text("where are you located?", PHONE)
    data = {"conversation": str(result.conversation_id), "a": "understand@v1", "b": "understand@v2"}
    await login(web.client, "agent")
    assert (await web.client.get("/traces/compare")).status_code == 403
    assert (await post_form(web.client, "/traces/compare", data)).status_code == 403
    for role in ("reviewer", "admin"):
        await login(web.client, role)
        assert (await post_form(web.client, "/traces/compare", data)).status_code == 200
        no_token = await web.client.post("/traces/compare", data=data)
        assert no_token.status_code == 403 and "side-by-side" not in no_token.text
