"""Login, sessions, CSRF, throttling, logout, and `textdesk user create`'s create_user."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlmodel import select

from store.models import AuditEvent, User
from tests.conftest import make_settings
from tests.web.conftest import EMAILS, PASSWORD, Web, csrf, login, post_form
from web.auth import SESSION_COOKIE, SessionCodec, create_user, hash_password, verify_password
from web.throttle import LoginThrottle


async def test_login_sets_a_hardened_session_cookie_and_lands_on_the_role_home(web: Web) -> None:
    resp = await login(web.client, "agent")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/inbox"
    cookie = next(h for h in resp.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    attrs = cookie.lower()
    assert "httponly" in attrs and "samesite=lax" in attrs and "secure" in attrs and "path=/" in attrs
    assert (await web.client.get("/inbox")).status_code == 200
    assert (await login(web.client, "reviewer")).headers["location"] == "/traces"


async def test_login_redirects_to_a_local_next_only(web: Web) -> None:
    await web.client.get("/login")
    ok = await web.client.post(
        "/login",
        data={
            "email": EMAILS["agent"],
            "password": PASSWORD,
            "next": "/inbox?status=waiting",
            "_csrf_token": csrf(web.client),
        },
        follow_redirects=False,
    )
    assert ok.headers["location"] == "/inbox?status=waiting"
    web.client.cookies.clear()
    await web.client.get("/login")
    evil = await web.client.post(
        "/login",
        data={
            "email": EMAILS["agent"],
            "password": PASSWORD,
            "next": "//evil.example/x",
            "_csrf_token": csrf(web.client),
        },
        follow_redirects=False,
    )
    assert evil.headers["location"] == "/inbox"


async def test_wrong_password_and_unknown_email_look_the_same(web: Web) -> None:
    wrong = await login(web.client, "agent", "not the password")
    unknown = await login(web.client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password" in wrong.text and "Wrong email or password" in unknown.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


async def test_login_form_needs_the_csrf_token(web: Web) -> None:
    await web.client.get("/login")
    resp = await web.client.post(
        "/login", data={"email": EMAILS["agent"], "password": PASSWORD}, follow_redirects=False
    )
    assert resp.status_code == 403
    assert SESSION_COOKIE not in resp.headers.get("set-cookie", "")


async def test_every_form_needs_the_csrf_token_also_when_logged_in(web: Web) -> None:
    await login(web.client, "admin")
    form = {"email": "x@example.com", "role": "agent", "password": PASSWORD}
    no_token = await web.client.post("/admin/users", data=form, follow_redirects=False)
    assert no_token.status_code == 403
    forged = await web.client.post(
        "/admin/users", data={**form, "_csrf_token": "0" * 128}, follow_redirects=False
    )
    assert forged.status_code == 403
    header = await web.client.post(
        "/admin/users", data=form, headers={"x-csrftoken": csrf(web.client)}, follow_redirects=False
    )
    assert header.status_code == 303  # the header htmx sends is accepted like the form field


async def test_five_failures_lock_the_account_for_fifteen_minutes(web: Web) -> None:
    for _ in range(5):
        assert (await login(web.client, "agent", "wrong password!")).status_code == 401
    locked = await login(web.client, "agent")  # even the right password
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 800
    assert "Too many failed attempts" in locked.text
    assert (await login(web.client, "reviewer")).status_code == 303  # other accounts are not locked
    web.clock.advance(minutes=15, seconds=1)
    assert (await login(web.client, "agent")).status_code == 303


def test_many_failures_from_one_address_lock_that_address() -> None:
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    t = LoginThrottle(max_account_failures=5, max_ip_failures=20)
    for i in range(20):
        assert t.retry_after("10.0.0.1", f"user{i}@example.com", now) is None
        t.failed("10.0.0.1", f"user{i}@example.com", now)
    assert t.retry_after("10.0.0.1", "fresh@example.com", now) is not None
    assert t.retry_after("10.0.0.2", "fresh@example.com", now) is None
    t.succeeded("user1@example.com")
    assert t.retry_after("10.0.0.1", "fresh@example.com", now) is not None  # success doesn't reset the IP
    assert t.retry_after("10.0.0.1", "fresh@example.com", now + dt.timedelta(minutes=15)) is None


async def test_logout_clears_the_session(web: Web) -> None:
    await login(web.client, "agent")
    resp = await post_form(web.client, "/logout")
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert (await web.client.get("/inbox", follow_redirects=False)).status_code == 303


async def test_logout_needs_csrf(web: Web) -> None:
    await login(web.client, "agent")
    assert (await web.client.post("/logout", follow_redirects=False)).status_code == 403


async def test_deactivating_a_user_ends_their_sessions_at_once(web: Web) -> None:
    await login(web.client, "agent")
    async with web.services.sessions() as s:
        user = await s.get(User, web.users["agent"])
        assert user is not None
        user.active = False
        s.add(user)
        await s.commit()
    assert (await web.client.get("/inbox", follow_redirects=False)).status_code == 303
    assert (await login(web.client, "agent")).status_code == 401


async def test_a_password_change_invalidates_old_cookies(web: Web) -> None:
    await login(web.client, "agent")
    async with web.services.sessions() as s:
        user = await s.get(User, web.users["agent"])
        assert user is not None
        user.password_hash = hash_password("a brand new password")
        s.add(user)
        await s.commit()
    assert (await web.client.get("/inbox", follow_redirects=False)).status_code == 303


async def test_tampered_or_expired_cookies_are_rejected(web: Web) -> None:
    await login(web.client, "agent")
    good = web.client.cookies.get(SESSION_COOKIE)
    assert good
    body, sig = good.split(".")
    web.client.cookies.set(SESSION_COOKIE, body[:-2] + "AA." + sig, domain="testserver.local")
    assert (await web.client.get("/api/me")).status_code == 401
    web.client.cookies.set(SESSION_COOKIE, good, domain="testserver.local")
    assert (await web.client.get("/api/me")).status_code == 200
    web.clock.advance(hours=12, seconds=1)
    assert (await web.client.get("/api/me")).status_code == 401


def test_session_codec_round_trip() -> None:
    """The cookie is the session token and its HMAC; expiry lives in the table (test above)."""
    codec = SessionCodec("secret")
    value = codec.encode("random-token")
    assert codec.decode(value) == "random-token"
    assert SessionCodec("other secret").decode(value) is None
    assert codec.decode("other-token." + value.partition(".")[2]) is None
    assert codec.decode("garbage") is None and codec.decode(None) is None


async def test_login_is_audited(web: Web) -> None:
    await login(web.client, "agent", "wrong password!")
    await login(web.client, "agent")
    async with web.services.sessions() as s:
        kinds = [e.kind for e in await s.exec(select(AuditEvent))]
    assert "staff.login_failed" in kinds and "staff.login" in kinds


async def test_create_user_on_a_fresh_database(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    user = await create_user(settings, "Boss@Example.com", "admin", "long enough password")
    assert user.email == "boss@example.com" and user.role == "admin"
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user, "long enough password")
    with pytest.raises(ValueError, match="already exists"):
        await create_user(settings, "boss@example.com", "agent", "long enough password")
    with pytest.raises(ValueError, match="role"):
        await create_user(settings, "x@example.com", "owner", "long enough password")
    with pytest.raises(ValueError, match="email"):
        await create_user(settings, "not-an-email", "agent", "long enough password")
    with pytest.raises(ValueError, match="at least"):
        await create_user(settings, "y@example.com", "agent", "short")


def test_cli_user_create(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from textdesk.cli import app

    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    args = ["user", "create", "--email", "a@example.com", "--role", "agent", "--database-url", db]
    runner = CliRunner()
    ok = runner.invoke(app, args, input="long enough password\n")
    assert ok.exit_code == 0, ok.output
    dup = runner.invoke(app, args, input="long enough password\n")
    assert dup.exit_code == 2
