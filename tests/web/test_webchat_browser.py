"""The web chat widget in a real browser, embedded in a business's page on another origin.

A static page (its own http.server, another port: another origin) holds one ``<script>`` tag
pointing at textdesk under uvicorn. The visitor books through the widget, asks for a person, an
agent claims the conversation in the inbox and replies, and the visitor sees the reply arrive
over the stream without reloading.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_web_browser import Server, browser, free_port, log_in, pytestmark, serve, shot

__all__ = ["browser", "pytestmark"]  # the fixtures and the chromium check, used by pytest by name

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Maple Street Salon</title></head>
<body><h1>Welcome to our salon</h1><p>Book online or chat with us.</p>
<script src="{textdesk}/webchat/widget.js" async></script>
</body></html>
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The business's own site: one static page on another origin."""
    root = tmp_path / "site"
    root.mkdir()
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(tmp_path: Path, site: str) -> Iterator[Server]:
    """textdesk, allowing the site's origin; started before the browser (whose sync API holds
    an event loop in this thread, where the seeding's asyncio.run could not start one)."""
    with serve(tmp_path, seed=False, webchat_origins=[site]) as srv:
        (tmp_path / "site" / "index.html").write_text(PAGE.format(textdesk=srv.url))
        yield srv


def test_visitor_books_in_the_widget_and_sees_the_agent_reply_live(
    site: str, server: Server, browser: Any
) -> None:
    from playwright.sync_api import expect

    visitor = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
    errors: list[str] = []
    visitor.on("pageerror", lambda e: errors.append(str(e)))
    visitor.goto(site + "/index.html")
    visitor.get_by_role("button", name="Chat with us").click()
    chat = visitor.get_by_role("dialog", name="Chat")
    expect(chat).to_be_visible()
    expect(chat.locator("#td-title")).to_have_text(re.compile("Salon|Maple", re.I))

    def say(text: str) -> None:
        box = chat.get_by_role("textbox", name="Message", exact=True)
        box.fill(text)
        box.press("Enter")

    bot = chat.locator(".td-bot")
    say("can i get a haircut on thursday?")
    expect(bot.last).to_contain_text("1)", timeout=15_000)
    say("1")
    expect(bot.last).to_contain_text("Reply YES", timeout=15_000)
    say("yes")
    expect(bot.last).to_contain_text("booked", timeout=15_000)
    expect(chat.locator(".td-you")).to_have_count(3)
    shot(visitor, "webchat-booked")

    say("can I talk to a person please")
    expect(chat.locator(".td-m")).to_have_count(8, timeout=15_000)

    agent = log_in(browser, server, "agent")
    row = agent.locator("#inbox-rows tr").filter(has_text="Web visitor").first
    expect(row).to_contain_text("Web chat")
    expect(row).to_contain_text("Needs a person")
    row.get_by_role("link").first.click()
    expect(agent.locator(".conv-head")).to_contain_text("Web chat")
    agent.get_by_role("button", name="Claim").click()
    expect(agent.locator(".statusline")).to_contain_text("held by agent@")  # the claim's reload is done
    agent.get_by_label(re.compile("^Reply to")).fill("Hi, this is Sam. What can I do for you?")
    agent.get_by_role("button", name="Send reply").click()
    expect(agent.locator("li.msg.agent").last).to_contain_text("What can I do for you?")

    # No reload: the reply arrives over the widget's stream.
    staff = chat.locator(".td-staff")
    expect(staff).to_have_count(1, timeout=10_000)
    expect(staff).to_have_text("Hi, this is Sam. What can I do for you?")
    shot(visitor, "webchat-agent-reply")
    assert server.twilio.sent == []  # all of it stayed in the chat
    assert errors == []
    agent.context.close()
    visitor.context.close()
