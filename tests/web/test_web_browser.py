"""The staff app in a real browser (Playwright + Debian's chromium) against a real uvicorn server.

The server runs in a thread of this process on a free 127.0.0.1 port, over a migrated SQLite file
seeded through the real pipeline. Twilio's REST API is a fake behind an httpx MockTransport (the
same wire format as the real one), so replies "send" without a network; the customer's next
message arrives as a signed POST /twilio/sms while the conversation page is open.

Screenshots of the inbox, a conversation, a trace and the reports page go to ./screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from twilio.request_validator import RequestValidator

from store.db import migrate
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.web.conftest import EMAILS, PASSWORD, FakeTwilio, seed_users, web_settings
from textdesk.services import build_services
from web.app import create_app

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
CUSTOMER = "+12125550123"

# The `chromium` fixture (tests/web/conftest.py) first: without chromium a browser test skips, or
# fails under CI, before its server starts. Other browser test files import this.
pytestmark = pytest.mark.usefixtures("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    twilio: FakeTwilio
    saved: Path

    def text(self, body: str, sender: str = CUSTOMER) -> httpx.Response:
        """A customer message, signed like Twilio signs it."""
        params = {
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        sig = RequestValidator(AUTH_TOKEN).compute_signature(self.url + "/twilio/sms", params)
        return httpx.post(
            self.url + "/twilio/sms",
            content=urlencode(params),
            timeout=20,
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
        )


async def _seed_users(db_url: str, tmp_path: Path, public_url: str) -> None:
    services = build_services(web_settings(db_url, tmp_path, public_url=public_url))
    try:
        await seed_users(services)
    finally:
        await services.close()


SEED = [  # (customer, message), sent as signed webhooks once the server is up
    ("+13475550142", "where are you located?"),
    ("+19175550177", "can i get a haircut with kim on wednesday at 2pm"),
    ("+16465550110", "you charged my card twice for the manicure"),
    (CUSTOMER, "can i get a haircut with kim on wednesday at 2pm"),
    (CUSTOMER, "actually i'd rather talk to someone"),
    (CUSTOMER, "HUMAN"),
]


@contextmanager
def serve(tmp_path: Path, seed: bool = True, **over: Any) -> Iterator[Server]:
    """The app under uvicorn on a free port (settings ``over`` on top of the web tests' own)."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}"
    migrate(db_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    asyncio.run(_seed_users(db_url, tmp_path, url))
    settings = web_settings(db_url, tmp_path, public_url=url, **over)
    fake = FakeTwilio()
    app = create_app(build_services(settings, twilio=fake.channel(settings)))
    # A short graceful shutdown: a web chat stream left open would otherwise hold it.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        srv = Server(url, fake, tmp_path / "saved")
        for sender, body in SEED if seed else []:
            assert srv.text(body, sender).status_code == 200
        yield srv
    finally:
        uv.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path) as srv:
        yield srv


@pytest.fixture
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(chromium),
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def log_in(browser: Any, server: Server, who: str) -> Any:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=server.url)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(EMAILS[who])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    return page


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_agent_works_an_escalated_conversation_from_claim_to_resolve(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    expect(page).to_have_url(re.compile(r"/inbox$"))
    rows = page.locator("#inbox-rows tr")
    expect(rows.first).to_contain_text("Needs a person")
    shot(page, "inbox")

    page.locator("#inbox-rows tr").filter(has_text="Asked for a person").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Suggested next step")).to_be_visible()
    expect(page.locator(".next-step")).to_contain_text("asked for a person")
    page.get_by_role("button", name="Claim").click()
    expect(page.locator(".statusline")).to_contain_text("held by agent@example.com")

    page.get_by_label(re.compile("^Reply to")).fill("Hi! This is Sam at Maple Street. How can I help?")
    page.get_by_role("button", name="Send reply").click()
    sent = page.locator("li.msg.agent").last
    expect(sent).to_contain_text("How can I help?")
    expect(sent.locator(".dl")).to_have_text(re.compile("queued|sent|delivered"))
    assert server.twilio.sent and server.twilio.sent[-1]["To"] == CUSTOMER

    # The customer answers while the page is open: it appears without a reload.
    resp = server.text("Thanks Sam! Is there parking nearby?")
    assert resp.status_code == 200 and "<Message" not in resp.text  # the bot stays silent
    expect(page.locator("li.msg.in").last).to_contain_text("parking nearby", timeout=10_000)
    page.get_by_label("Add a note (staff only)").fill("Asked about parking; answered.")
    page.get_by_role("button", name="Save note").click()
    expect(page.locator("#notes")).to_contain_text("Asked about parking")
    shot(page, "conversation")

    page.get_by_role("button", name="Resolve").click()
    expect(page).to_have_url(re.compile(r"/inbox$"))
    expect(page.locator("#inbox-rows tr").filter(has_text="+12125550123").first).to_contain_text("Resolved")
    page.context.close()


def test_reviewer_labels_a_trace_saves_a_case_and_cannot_reach_admin(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "reviewer")
    expect(page).to_have_url(re.compile(r"/traces$"))
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.locator("tr").filter(has_text="charged my card").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Decision path")).to_be_visible()
    page.get_by_label("Wrong").check()
    page.get_by_label("Comment").fill("Should apologise before handing over.")
    page.get_by_role("button", name="Save label").click()
    expect(page.locator("#label")).to_contain_text("Labelled wrong by reviewer@example.com")

    page.get_by_label("The reply should contain (one per line)").fill("sorry")
    page.get_by_role("button", name="Save eval case").click()
    expect(page.locator("#case")).to_contain_text("Saved as")
    assert list(server.saved.glob("saved-trace-*.yaml"))
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download").click()
    assert dl.value.suggested_filename.startswith("saved-trace-")
    shot(page, "trace")

    for path in ("/admin/users", "/admin/settings", "/inbox"):
        page.goto(path)
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    page.context.close()


def test_admin_sees_reports_and_manages_users_with_the_keyboard(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "admin")
    page.goto("/reports")
    expect(page.get_by_role("heading", name="Reports")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(5)
    shot(page, "reports")

    page.goto("/rules")
    expect(page.get_by_role("heading", name="Hard keyword rules")).to_be_visible()
    page.get_by_label("Keyword", exact=True).fill("HOURS")
    page.get_by_label("Reply", exact=True).fill("Mon-Wed 9-6, Thu-Fri 9-8, Sat 10-4.")
    page.get_by_role("button", name="Save auto-reply").click()
    expect(page.locator("#auto-replies")).to_contain_text("Thu-Fri 9-8")
    shot(page, "rules")

    page.goto("/admin/users")
    page.get_by_label("Email").fill("keyboard.user@example.com")
    page.get_by_label("Role", exact=True).select_option("reviewer")
    page.get_by_label("Initial password").fill("a long enough password")
    page.get_by_label("Initial password").press("Enter")  # keyboard submit
    expect(page.locator("tbody")).to_contain_text("keyboard.user@example.com")

    page.goto("/login")  # logged in: goes home
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert "Skip to main content" in focused  # the first Tab stop is the skip link
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # visible focus
    page.context.close()


def test_login_page_and_logout(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/inbox")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Finbox"))
    page.get_by_label("Email").fill(EMAILS["agent"])
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    page.context.close()
