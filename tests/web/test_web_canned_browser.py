"""Help-desk conveniences in a real browser: canned replies with the live segment counter, keyboard
shortcuts, and desktop notifications of new escalations (same server and fixtures as
test_web_browser.py)."""

from __future__ import annotations

import re
from typing import Any

from tests.web.test_web_browser import CUSTOMER, Server, browser, log_in, pytestmark, server, shot

__all__ = ["browser", "pytestmark", "server"]  # the fixtures and the chromium check, used by pytest by name

# Records every notification the page raises (the real one is shown by the OS, out of reach).
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) { return; }
  window.__notes = [];
  function Recorded(title, options) {
    const note = { title: title, options: options || {}, onclick: null, close() {} };
    window.__notes.push(note);
    return note;
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
})();
"""


def _open_customer(page: Any) -> None:
    page.locator("#inbox-rows tr").filter(has_text="Asked for a person").get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/inbox/\d+$"))


def test_agent_inserts_a_canned_reply_watches_the_segment_count_and_sends(
    server: Server, browser: Any
) -> None:
    from playwright.sync_api import expect

    admin = log_in(browser, server, "admin")
    admin.goto("/admin/canned")
    admin.get_by_label("Title").fill("Introduce yourself")
    admin.get_by_label("Text").fill("Hello, this is {agent_name} from {business_name}. How can I help?")
    admin.get_by_role("button", name="Add canned reply").click()
    expect(admin.get_by_role("heading", name="Introduce yourself")).to_be_visible()
    shot(admin, "admin-canned")

    page = log_in(browser, server, "agent")
    _open_customer(page)
    count = page.locator("#reply-count")
    expect(count).to_have_text(re.compile(r"^0 characters · 0 segments · GSM-7"))
    box = page.get_by_label(re.compile("^Reply to"))
    box.press_sequentially("Hi")
    expect(count).to_have_text(re.compile(r"^2 characters · 1 segment · GSM-7$"))

    page.get_by_label("Canned reply").select_option(label="Introduce yourself")
    page.get_by_role("button", name="Insert").click()
    text = "Hi Hello, this is Agent from Maple Street Salon. How can I help?"
    expect(box).to_have_value(text)
    expect(box).to_be_focused()
    expect(count).to_have_text(re.compile(rf"^{len(text)} characters · 1 segment · GSM-7$"))

    page.keyboard.type(" 👍")  # the caret is at the end of the inserted text
    expect(count).to_contain_text("UCS-2 (because of '👍')")
    expect(count.locator(".warn").first).to_be_visible()
    shot(page, "canned-segments")
    page.keyboard.type(" " + "x" * 60)  # past 70 UTF-16 units: two segments
    expect(count).to_contain_text("2 segments · UCS-2")
    expect(count).to_contain_text("Sent as 2 texts")

    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("li.msg.agent").last).to_contain_text("Maple Street Salon. How can I help? 👍")
    assert server.twilio.sent[-1]["To"] == CUSTOMER
    assert server.twilio.sent[-1]["Body"].startswith(text + " 👍 xxx")


def test_keyboard_shortcuts_move_open_reply_and_resolve(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    rows = page.locator("#inbox-rows tr")
    page.get_by_label("Search phone, name or message").press("j")  # typing in a field: not a shortcut
    expect(page.locator("#inbox-rows tr.kb-selected")).to_have_count(0)
    page.locator("h1").click()  # leave the field
    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile("kb-selected"))
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("kb-selected"))
    expect(rows.nth(0)).not_to_have_class(re.compile("kb-selected"))
    page.keyboard.press("k")
    expect(rows.nth(0)).to_have_class(re.compile("kb-selected"))
    page.wait_for_timeout(3500)  # the list refreshes every 3 s: the selection survives it
    expect(page.locator("#inbox-rows tr.kb-selected")).to_have_count(1)
    href = rows.nth(0).get_by_role("link").first.get_attribute("href")
    assert href

    page.keyboard.press("?")
    help_box = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("resolve")
    shot(page, "shortcuts-help")
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(href) + "$"))
    box = page.get_by_label(re.compile("^Reply to"))
    page.keyboard.press("r")
    expect(box).to_be_focused()
    page.keyboard.type("e and r are letters here")
    expect(box).to_have_value("e and r are letters here")
    page.keyboard.press("Escape")
    expect(box).not_to_be_focused()

    page.keyboard.press("e")
    page.wait_for_url(re.compile(r"/inbox$"))
    cid = href.rsplit("/", 1)[1]
    assert page.request.get(f"/api/conversations/{cid}").json()["status"] == "resolved"


def test_new_escalation_raises_a_desktop_notification(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    page.context.grant_permissions(["notifications"], origin=server.url)
    page.context.add_init_script(RECORD_NOTIFICATIONS)
    page.reload()
    enable = page.get_by_role("button", name="Enable notifications")
    disable = page.get_by_role("button", name="Turn off notifications")
    expect(disable).to_be_hidden()  # opting in is the agent's choice, even with permission granted
    enable.click()
    expect(disable).to_be_visible()
    expect(enable).to_be_hidden()
    # The first poll only learns where the feed stands.
    page.wait_for_function("() => sessionStorage.getItem('textdesk.notify.cursor') !== null")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__notes.length") == 0  # escalations from before the page are not news

    assert server.text("HUMAN", "+13475550199").status_code == 200
    page.wait_for_function("() => window.__notes.length > 0", timeout=15_000)
    page.wait_for_timeout(6000)  # another poll: still one
    notes = page.evaluate("window.__notes.map(n => [n.title, n.options.body])")
    assert notes == [["Needs a person: +13475550199", "Asked for a person"]]

    page.evaluate("window.__notes[0].onclick()")
    page.wait_for_url(re.compile(r"/inbox/\d+$"))
    expect(page.locator("h1")).to_contain_text("+13475550199")
