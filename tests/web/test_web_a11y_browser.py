"""Accessibility and the narrow-screen layout of the staff app, in a real browser.

axe-core (bundled in the axe-playwright-python dev dependency, so it installs from uv.lock with no
network at test time) runs on every staff page at desktop width and at 390 px, a phone held
upright; no serious or critical violation is allowed. At 390 px the inbox and a conversation must
not scroll sideways, and a conversation can be answered with the keyboard alone.

Screenshots of every page at both widths go to ./screenshots/ (gitignored) as a11y-<page>-<width>.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.test_web_browser import CUSTOMER, Server, browser, log_in, pytestmark, server, shot

__all__ = ["browser", "pytestmark", "server"]  # fixtures and the chromium check, used by pytest by name

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1360, "height": 900}
BLOCKING = ("serious", "critical")


def axe_problems(page: Any) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def sideways_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it does not scroll sideways)."""
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width - int(page.viewport_size["width"])


def conversation_url(page: Any) -> str:
    page.goto("/inbox")
    link = page.locator("#inbox-rows tr").filter(has_text=CUSTOMER).get_by_role("link").first
    href = link.get_attribute("href")
    assert href
    return str(href)


def trace_url(page: Any) -> str:
    page.goto("/traces")
    href = page.locator("tbody tr").first.get_by_role("link").first.get_attribute("href")
    assert href
    return str(href)


def test_no_serious_axe_violations_on_any_page_at_desktop_and_phone_width(
    server: Server, browser: Any
) -> None:
    problems: dict[str, list[str]] = {}

    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    for size, viewport in (("desktop", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        page.goto("/login")
        problems[f"login {size}"] = axe_problems(page)
        shot(page, f"a11y-login-{size}")
    context.close()

    page = log_in(browser, server, "admin")
    pages = {
        "inbox": "/inbox",
        "conversation": conversation_url(page),
        "traces": "/traces",
        "trace": trace_url(page),
        "reports": "/reports",
        "rules": "/rules",
        "users": "/admin/users",
        "settings": "/admin/settings",
    }
    for size, viewport in (("desktop", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        for name, path in pages.items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert page.locator("main h1").count() == 1, (name, path)
            problems[f"{name} {size}"] = axe_problems(page)
            shot(page, f"a11y-{name}-{size}")
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"data:,\">')")
    assert [p for p in axe_problems(page) if p.startswith("image-alt")]  # the harness does see problems
    page.context.close()
    assert {k: v for k, v in problems.items() if v} == {}


@pytest.mark.parametrize("which", ["inbox", "conversation"])
def test_phone_width_has_no_sideways_scroll_and_keeps_the_menu_in_view(
    server: Server, browser: Any, which: str
) -> None:
    from playwright.sync_api import expect

    for n in range(8) if which == "conversation" else ():  # a transcript longer than the screen
        assert server.text(f"One more question, number {n}: is there parking?").status_code == 200
    page = log_in(browser, server, "agent")
    url = conversation_url(page) if which == "conversation" else "/inbox"
    page.set_viewport_size(PHONE)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert sideways_overflow(page) <= 0
    menu = page.get_by_role("navigation", name="Main").get_by_role("link").all()
    for item in [*menu, page.get_by_role("button", name="Log out")]:
        box = item.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], item  # not cut off
    if which == "inbox":
        # Rows are stacked cards: each cell is labelled with its column.
        row = page.locator("#inbox-rows tr").filter(has_text=CUSTOMER).first
        customer, status = row.locator('td[data-label="Customer"]'), row.locator('td[data-label="Status"]')
        assert customer.bounding_box()["y"] < status.bounding_box()["y"]  # stacked, not side by side
        assert customer.bounding_box()["width"] > PHONE["width"] / 2
        assert status.evaluate("td => getComputedStyle(td, '::before').content") == '"Status"'
    else:
        # While the transcript scrolls by, the reply box and Send stay on screen, near the thumb.
        page.evaluate("document.querySelector('li.msg').scrollIntoView({block: 'start'})")
        send = page.get_by_role("button", name="Send reply")
        for control in (page.get_by_label(re.compile("^Reply to")), send):
            expect(control).to_be_visible()
            box = control.bounding_box()
            assert box and box["y"] >= PHONE["height"] / 3, box  # the lower part of the screen
            assert box["y"] + box["height"] <= PHONE["height"], box  # on screen, not below the fold
    page.context.close()


def test_keyboard_only_reply_from_the_skip_link_to_send(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    url = conversation_url(page)
    page.set_viewport_size(PHONE)
    page.goto(url)
    page.wait_for_load_state("networkidle")

    def active() -> dict[str, str]:
        return dict(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return {tag: e.tagName, id: e.id, text: (e.textContent || '').trim(),"
                " outline: getComputedStyle(e).outlineStyle, nav: String(!!e.closest('nav'))}; })()"
            )
        )

    page.keyboard.press("Tab")
    assert active()["text"] == "Skip to main content" and active()["outline"] != "none"
    page.keyboard.press("Enter")  # skip the header: the next Tab lands in the page's own content
    seen = []
    for _ in range(15):
        page.keyboard.press("Tab")
        now = active()
        seen.append(now)
        assert now["nav"] == "false", seen  # the menu was skipped
        assert now["outline"] != "none", now  # focus is always visible
        if now["id"] == "reply-body":
            break
    else:
        pytest.fail(f"Tab never reached the reply box: {seen}")
    page.keyboard.type("Typed with the keyboard only.")
    for _ in range(5):
        page.keyboard.press("Tab")
        if active()["text"] == "Send reply":
            break
    else:
        pytest.fail("Tab never reached Send reply")
    page.keyboard.press("Enter")
    expect(page.locator("li.msg.agent").last).to_contain_text("Typed with the keyboard only.")
    assert server.twilio.sent and server.twilio.sent[-1]["Body"] == "Typed with the keyboard only."
    page.context.close()
