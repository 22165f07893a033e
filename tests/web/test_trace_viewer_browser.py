"""The trace viewer in a real browser: a reviewer reads a turn's waterfall, opens its conversation and
replays it with two prompt versions side by side. Fixtures come from test_web_browser (a uvicorn
server seeded through signed webhooks, Debian's chromium); screenshots go to ./screenshots/."""

from __future__ import annotations

import re
from typing import Any

from tests.web.test_web_browser import Server, browser, log_in, pytestmark, server, shot

__all__ = ["browser", "pytestmark", "server"]  # the fixtures and the skip, used by pytest by name


def test_reviewer_reads_the_waterfall_and_compares_two_prompt_versions(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "reviewer")
    expect(page).to_have_url(re.compile(r"/traces$"))
    page.locator("tr").filter(has_text="haircut with kim").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Decision path")).to_be_visible()
    steps = page.get_by_role("table", name="Steps of this turn with start offset and duration")
    rows = steps.locator("tbody tr")
    expect(rows.filter(has_text="understand")).to_have_count(1)
    assert rows.count() >= 6
    for i in range(rows.count()):  # every step states its start and duration as text, and has a bar
        cells = rows.nth(i).locator("td")
        expect(cells.nth(1)).to_have_text(re.compile(r"^\d+\.\d+ (ms|s)$"))
        expect(cells.nth(2)).to_have_text(re.compile(r"^\d+\.\d+ (ms|s)$"))
        expect(rows.nth(i).locator("svg.wf-bar[aria-hidden=true] rect")).to_have_count(1)
    shot(page, "trace-waterfall")

    page.get_by_role("link", name="whole conversation").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Conversation \d+$"))).to_be_visible()
    expect(page.locator(".conv-facts")).to_contain_text("[phone …23]")
    page.get_by_role("link", name="Compare prompt versions on this conversation").click()
    page.get_by_label("Version A").select_option("understand@v1")
    page.get_by_label("Version B").select_option("understand@v2")
    page.get_by_role("button", name="Replay both").click()
    result = page.locator("#side-by-side")
    expect(result).to_contain_text("understand@v1 vs understand@v2", timeout=30_000)
    expect(result.get_by_role("columnheader", name="understand@v1 (A)")).to_be_visible()
    expect(result.get_by_role("columnheader", name="understand@v2 (B)")).to_be_visible()
    turns = result.locator("tbody tr")
    expect(turns).to_have_count(3)  # the customer's three messages, each answered by both versions
    expect(turns.first.locator("dl.replay-side")).to_have_count(2)
    expect(turns.first).to_contain_text("book_appointment")
    shot(page, "trace-side-by-side")
    page.context.close()
