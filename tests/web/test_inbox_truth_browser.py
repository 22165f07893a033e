"""In a real browser: a reply that fails then succeeds reads "retrying" then "delivered"; a hand-back
with an unanswered customer message gets it answered; a struggling conversation rises to the top."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from tests.conftest import AUTH_TOKEN
from tests.web.test_web_browser import CUSTOMER, Server, browser, log_in, pytestmark, server, shot

__all__ = ["browser", "pytestmark", "server"]  # fixtures and the chromium skip, imported so pytest finds them


def delivered_callback(server: Server, tmp_path: Path, body: str) -> None:
    """Twilio's signed status callback saying the message with this body was delivered."""
    form = next(f for f in server.twilio.sent if f.get("Body") == body)
    callback = form["StatusCallback"]
    with sqlite3.connect(tmp_path / "browser.db") as db:
        (sid,) = db.execute(
            "SELECT provider_message_id FROM message WHERE body = ? AND provider_message_id IS NOT NULL",
            (body,),
        ).fetchone()
    params = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": form.get("AccountSid", "")}
    params = {k: v for k, v in params.items() if v}
    sig = RequestValidator(AUTH_TOKEN).compute_signature(callback, params)
    resp = httpx.post(
        callback,
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
    )
    assert resp.status_code in (200, 204), resp.text


def test_retrying_then_delivered_and_a_hand_back_that_answers(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    page.locator("#inbox-rows tr").filter(has_text=CUSTOMER).get_by_role("link").first.click()
    page.get_by_role("button", name="Claim").click()
    expect(page.locator(".statusline")).to_contain_text("held by agent@")

    server.twilio.fail_status = 503  # the provider is down
    page.get_by_label(re.compile("^Reply to")).fill("Checking on that for you now.")
    page.get_by_role("button", name="Send reply").click()
    mine = page.locator("li.msg.agent").last
    expect(mine).to_contain_text("retrying", timeout=15_000)
    expect(mine).to_contain_text(re.compile(r"attempt \d+ of \d+, next try"))
    expect(mine).not_to_contain_text("failed")
    shot(page, "inbox-retrying")

    server.twilio.fail_status = None  # back up: retry now instead of waiting for the next try
    mine.get_by_role("button", name="Retry now").click()
    expect(page.locator("li.msg.agent").last).to_contain_text("sent", timeout=10_000)
    delivered_callback(server, tmp_path, "Checking on that for you now.")
    expect(page.locator("li.msg.agent").last).to_contain_text("delivered", timeout=10_000)  # by polling

    assert server.text("where are you located?").status_code == 200  # while a person holds it
    expect(page.locator("li.msg.in").last).to_contain_text("where are you located?", timeout=10_000)
    page.reload()  # the actions are not polled, the transcript is
    expect(page.locator(".handback")).to_contain_text("has no answer yet")
    page.get_by_role("button", name="Hand back: the bot answers it").click()
    expect(page.locator("li.msg.out").last).to_contain_text("12 Maple St", timeout=10_000)
    expect(page.locator(".statusline")).to_contain_text("Bot")
    shot(page, "inbox-handback-answered")
    page.context.close()


def test_a_struggling_conversation_rises_to_the_top(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    struggling = "+17185550199"
    for body in ("can i get a haircut", "umm", "hmm not sure"):
        assert server.text(body, struggling).status_code == 200
    page = log_in(browser, server, "agent")
    first = page.locator("#inbox-rows tr").first
    expect(first).to_contain_text(struggling, timeout=10_000)
    expect(first).to_contain_text("At risk")
    expect(first).to_contain_text("same question twice")
    page.get_by_label("State").select_option("at_risk")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#inbox-rows tr")).to_have_count(1)
    shot(page, "inbox-at-risk")
    page.context.close()
