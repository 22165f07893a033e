"""Revocable sessions in a real browser: a session cookie copied into a second browser context
stops working once the first logs out, or once an admin signs the user out everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_web_browser import Server, browser, log_in, pytestmark, serve
from web.auth import SESSION_COOKIE

__all__ = ["browser", "pytestmark"]  # the fixtures and the chromium check, used by pytest by name

@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path, seed=False) as srv:  # no conversations needed
        yield srv


def copy_session(browser: Any, server: Server, page: Any) -> Any:
    """A second browser context holding a copy of ``page``'s session cookie, and its page."""
    [cookie] = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    context = browser.new_context(base_url=server.url)
    context.add_cookies([cookie])
    return context.new_page()


def test_a_copied_cookie_is_refused_after_logout(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, server, "agent")
    expect(page).to_have_url(re.compile(r"/inbox$"))
    copy = copy_session(browser, server, page)
    copy.goto("/inbox")
    expect(copy).to_have_url(re.compile(r"/inbox$"))  # the copy works while the session lives

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    copy.goto("/inbox")
    expect(copy).to_have_url(re.compile(r"/login\?next=%2Finbox$"))
    expect(copy.get_by_role("button", name="Log in")).to_be_visible()
    copy.context.close()
    page.context.close()


def test_an_admin_signs_a_user_out_everywhere(server: Server, browser: Any) -> None:
    from playwright.sync_api import expect

    agent = log_in(browser, server, "agent")
    copy = copy_session(browser, server, agent)
    admin = log_in(browser, server, "admin")
    admin.goto("/admin/users")
    row = admin.get_by_role("row").filter(has=admin.get_by_role("rowheader", name="agent@example.com"))
    row.get_by_text("1 active").click()  # opens the list
    expect(row.locator(".sessions li")).to_contain_text("last seen")
    row.get_by_role("button", name="Sign out everywhere").click()
    expect(admin).to_have_url(re.compile(r"/admin/users$"))
    expect(row.locator(".sessions")).to_contain_text("none")

    for page in (agent, copy):
        page.goto("/inbox")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Finbox$"))
    for page in (agent, copy, admin):
        page.context.close()
