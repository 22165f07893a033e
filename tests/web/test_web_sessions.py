"""Server-side sessions, through the real app: a copy of a session cookie taken before a logout,
a password change, a role change, deactivation or an admin's "sign out everywhere" is refused
after it; sessions end when idle and at their absolute expiry; admins (only) see and end them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from store.models import AuditEvent, StaffSession, User
from tests.web.conftest import Web, login, make_web, post_form
from textdesk.clock import FrozenClock
from web.auth import SESSION_COOKIE, hash_password

DOMAIN = "testserver.local"


def copy_of(web: Web, source: httpx.AsyncClient) -> httpx.AsyncClient:
    """Another browser holding the same session cookie (as a thief with a copy would)."""
    value = source.cookies.get(SESSION_COOKIE)
    assert value, "not signed in"
    other = web.new_client()
    other.cookies.set(SESSION_COOKIE, value, domain=DOMAIN)
    return other


async def signed_in(client: httpx.AsyncClient) -> bool:
    api = await client.get("/api/me")
    page = await client.get("/inbox", follow_redirects=False)
    if api.status_code == 401:
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        return False
    assert api.status_code == 200, api.text
    return True


async def rows(web: Web, who: str) -> list[StaffSession]:
    async with web.services.sessions() as s:
        q = select(StaffSession).where(StaffSession.user_id == web.users[who])
        return list(await s.exec(q))


async def audits(web: Web, kind: str) -> list[AuditEvent]:
    async with web.services.sessions() as s:
        return list(await s.exec(select(AuditEvent).where(AuditEvent.kind == kind)))


def sessions_cell(html: str, email: str) -> str:
    """The Sessions column of one user's row on /admin/users."""
    row = re.search(rf'<th scope="row">{re.escape(email)}</th>(.*?)</tr>', html, re.S)
    assert row, email
    cell = re.search(r'<td class="sessions">(.*?)</td>', row.group(1), re.S)
    assert cell, row.group(1)
    return cell.group(1)


async def test_a_cookie_copied_before_logout_is_refused_after_it(web: Web) -> None:
    assert (await login(web.client, "agent")).status_code == 303
    thief = copy_of(web, web.client)
    assert await signed_in(thief)
    assert (await post_form(web.client, "/logout")).status_code == 303
    assert not await signed_in(web.client)
    assert not await signed_in(thief)
    [row] = await rows(web, "agent")
    assert row.revoked_at == web.clock.now()


async def test_the_table_keeps_only_a_hash_of_the_token(web: Web) -> None:
    await login(web.client, "agent")
    cookie = web.client.cookies.get(SESSION_COOKIE) or ""
    token = cookie.partition(".")[0]
    [row] = await rows(web, "agent")
    assert row.id == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(v) for v in row.model_dump().values())
    assert row.expires_at == web.clock.now() + web.app.state.session_policy.lifetime


async def test_a_password_change_ends_every_session_of_the_user(web: Web) -> None:
    """There is no password form in the app: any path that changes the hash (here the database,
    as an operator's script would) ends the sessions, and for good."""
    await login(web.client, "agent")
    thief = copy_of(web, web.client)
    async with web.services.sessions() as s:
        user = await s.get(User, web.users["agent"])
        assert user is not None
        user.password_hash = hash_password("a brand new password")
        s.add(user)
        await s.commit()
    assert not await signed_in(thief)
    assert not await signed_in(web.client)
    [row] = await rows(web, "agent")
    assert row.revoked_at is not None
    assert (await login(web.client, "agent", "a brand new password")).status_code == 303
    assert await signed_in(web.client)


async def test_a_role_change_ends_every_session_of_the_user(web: Web) -> None:
    agent = web.new_client()
    await login(agent, "agent")
    thief = copy_of(web, agent)
    await login(web.client, "admin")
    uid = web.users["agent"]
    # Choosing the role the user already has changes nothing, and ends nothing.
    assert (await post_form(web.client, f"/admin/users/{uid}/role", {"role": "agent"})).status_code == 303
    assert await signed_in(thief)
    assert (await post_form(web.client, f"/admin/users/{uid}/role", {"role": "reviewer"})).status_code == 303
    assert not await signed_in(agent)
    assert not await signed_in(thief)
    [event] = await audits(web, "staff.role_changed")
    assert event.data == {"user_id": uid, "old": "agent", "new": "reviewer", "sessions_revoked": 1}
    assert await signed_in(web.client)  # the admin's own session is untouched
    assert (await login(agent, "agent")).headers["location"] == "/traces"  # back in, as a reviewer


async def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(web: Web) -> None:
    agent = web.new_client()
    await login(agent, "agent")
    await login(web.client, "admin")
    uid = web.users["agent"]
    assert (await post_form(web.client, f"/admin/users/{uid}/active", {"active": "false"})).status_code == 303
    assert not await signed_in(agent)
    assert (await post_form(web.client, f"/admin/users/{uid}/active", {"active": "true"})).status_code == 303
    assert not await signed_in(agent)
    [event] = await audits(web, "staff.user_deactivated")
    assert event.data["sessions_revoked"] == 1


async def test_sign_out_everywhere_revokes_every_copy(web: Web) -> None:
    laptop, phone = web.new_client(), web.new_client()
    await login(laptop, "agent")
    await login(phone, "agent")
    thief = copy_of(web, laptop)
    await login(web.client, "admin")
    cell = sessions_cell((await web.client.get("/admin/users")).text, "agent@example.com")
    assert "2 active" in cell and "Sign out everywhere" in cell
    uid = web.users["agent"]

    assert (await post_form(web.client, f"/admin/users/{uid}/sessions/revoke")).status_code == 303

    for client in (laptop, phone, thief):
        assert not await signed_in(client)
    assert all(r.revoked_at is not None for r in await rows(web, "agent"))
    [event] = await audits(web, "staff.sessions_revoked")
    assert event.actor == f"staff:{web.users['admin']}"
    assert event.data == {"user_id": uid, "sessions_revoked": 2}
    html = (await web.client.get("/admin/users")).text
    assert "none" in sessions_cell(html, "agent@example.com")
    assert "1 active" in sessions_cell(html, "admin@example.com")  # the admin's own, untouched


async def test_sign_out_everywhere_needs_csrf_and_an_existing_user(web: Web) -> None:
    agent = web.new_client()
    await login(agent, "agent")
    await login(web.client, "admin")
    url = f"/admin/users/{web.users['agent']}/sessions/revoke"
    assert (await web.client.post(url, follow_redirects=False)).status_code == 403
    assert await signed_in(agent)
    assert (await post_form(web.client, "/admin/users/99999/sessions/revoke")).status_code == 404


@pytest.mark.parametrize("role", ["agent", "reviewer"])
async def test_only_admins_see_or_end_other_peoples_sessions(web: Web, role: str) -> None:
    admin = web.new_client()
    await login(admin, "admin")
    await login(web.client, role)
    assert (await web.client.get("/admin/users", follow_redirects=False)).status_code == 403
    resp = await post_form(web.client, f"/admin/users/{web.users['admin']}/sessions/revoke")
    assert resp.status_code == 403
    assert await signed_in(admin)
    assert await audits(web, "staff.sessions_revoked") == []


async def test_admins_see_each_users_live_sessions(web: Web) -> None:
    agent = web.new_client()
    agent.headers["User-Agent"] = "FieldTablet/2.0"
    await login(agent, "agent")
    await login(web.client, "admin")
    cell = sessions_cell((await web.client.get("/admin/users")).text, "agent@example.com")
    assert "1 active" in cell and "FieldTablet/2.0" in cell
    assert "none" in sessions_cell((await web.client.get("/admin/users")).text, "reviewer@example.com")
    await post_form(agent, "/logout")
    assert "none" in sessions_cell((await web.client.get("/admin/users")).text, "agent@example.com")


async def test_an_idle_session_expires(web: Web) -> None:
    await login(web.client, "agent")
    thief = copy_of(web, web.client)
    idle = web.services.settings.session_idle_minutes
    assert idle == 60
    for _ in range(3):  # in use: each request moves the idle deadline, past the first hour
        web.clock.advance(minutes=idle - 1)
        assert await signed_in(web.client)
    web.clock.advance(minutes=idle)
    assert not await signed_in(thief)
    assert not await signed_in(web.client)
    assert (await web.client.get("/login")).status_code == 200  # the form, not a redirect


@pytest.fixture
async def short_idle(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    async for w in make_web(sqlite_url, tmp_path, clock, session_idle_minutes=5):
        yield w


async def test_the_idle_timeout_is_a_setting(short_idle: Web) -> None:
    web = short_idle
    await login(web.client, "agent")
    web.clock.advance(minutes=4)
    assert await signed_in(web.client)
    web.clock.advance(minutes=5, seconds=1)
    assert not await signed_in(web.client)


async def test_last_use_is_written_at_most_once_a_minute(web: Web) -> None:
    await login(web.client, "agent")
    start = web.clock.now()
    web.clock.advance(seconds=30)
    assert await signed_in(web.client)
    assert [r.last_seen_at for r in await rows(web, "agent")] == [start]
    web.clock.advance(seconds=31)
    assert await signed_in(web.client)
    assert [r.last_seen_at for r in await rows(web, "agent")] == [web.clock.now()]


async def test_a_session_in_use_still_ends_at_its_absolute_expiry(web: Web) -> None:
    await login(web.client, "agent")
    for _ in range(14):  # 11 h 40 min, never idle
        web.clock.advance(minutes=50)
        assert await signed_in(web.client)
    web.clock.advance(minutes=21)  # 12 h 1 min after login, 21 min after the last request
    assert not await signed_in(web.client)


async def test_login_deletes_sessions_past_their_expiry(web: Web) -> None:
    await login(web.client, "agent")
    await login(web.new_client(), "reviewer")
    web.clock.advance(hours=12)
    await login(web.client, "agent")
    assert len(await rows(web, "agent")) == 1 and await rows(web, "reviewer") == []
