"""Admin: user management with its safety rails, and read-only settings with secrets masked."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlmodel import select

from store.models import User
from tests.conftest import make_settings
from tests.web.conftest import Web, login, post_form
from web.routes.admin import masked_settings


async def user(web: Web, email: str) -> User:
    async with web.services.sessions() as s:
        return (await s.exec(select(User).where(User.email == email))).one()


async def test_admin_creates_a_user_who_can_then_log_in(web: Web) -> None:
    await login(web.client, "admin")
    resp = await post_form(
        web.client,
        "/admin/users",
        {"email": "New.Agent@Example.com", "role": "agent", "password": "a long password"},
    )
    assert resp.status_code == 303
    created = await user(web, "new.agent@example.com")
    assert created.role == "agent" and created.password_hash.startswith("$argon2id$")
    assert "new.agent@example.com" in (await web.client.get("/admin/users")).text
    assert (await login(web.new_client(), "new.agent@example.com", "a long password")).status_code == 303


async def test_bad_new_users_are_refused_with_a_message(web: Web) -> None:
    await login(web.client, "admin")
    dup = await post_form(
        web.client,
        "/admin/users",
        {"email": "agent@example.com", "role": "agent", "password": "a long password"},
    )
    assert dup.status_code == 400 and "already exists" in dup.text
    short = await post_form(
        web.client, "/admin/users", {"email": "x@example.com", "role": "agent", "password": "short"}
    )
    assert short.status_code == 400 and "at least 10" in short.text
    role = await post_form(
        web.client, "/admin/users", {"email": "y@example.com", "role": "owner", "password": "a long password"}
    )
    assert role.status_code == 400


async def test_change_role_and_deactivate(web: Web) -> None:
    await login(web.client, "admin")
    uid = web.users["agent"]
    assert (await post_form(web.client, f"/admin/users/{uid}/role", {"role": "reviewer"})).status_code == 303
    assert (await user(web, "agent@example.com")).role == "reviewer"
    assert (await post_form(web.client, f"/admin/users/{uid}/role", {"role": "god"})).status_code == 400
    assert (await post_form(web.client, f"/admin/users/{uid}/active", {"active": "false"})).status_code == 303
    assert not (await user(web, "agent@example.com")).active
    assert (await login(web.new_client(), "agent")).status_code == 401
    assert (await post_form(web.client, f"/admin/users/{uid}/active", {"active": "true"})).status_code == 303
    assert (await user(web, "agent@example.com")).active
    assert (await post_form(web.client, "/admin/users/99999/role", {"role": "agent"})).status_code == 404


async def test_the_last_admin_cannot_be_removed_and_nobody_deactivates_themselves(web: Web) -> None:
    await login(web.client, "admin")
    me = web.users["admin"]
    assert (await post_form(web.client, f"/admin/users/{me}/active", {"active": "false"})).status_code == 409
    demote = await post_form(web.client, f"/admin/users/{me}/role", {"role": "agent"})
    assert demote.status_code == 409 and "at least one active admin" in demote.text
    assert (await user(web, "admin@example.com")).role == "admin"


async def test_settings_are_shown_with_secrets_masked(web: Web) -> None:
    await login(web.client, "admin")
    html = (await web.client.get("/admin/settings")).text
    assert "TEXTDESK_TWILIO_AUTH_TOKEN" in html and "TEXTDESK_SECRET_KEY" in html
    assert web.services.settings.twilio_auth_token.get_secret_value() not in html
    assert web.services.settings.secret_key.get_secret_value() not in html
    assert "•••••• (set)" in html
    assert "<form" not in html.split("<main")[1]  # read-only


def test_masking_rules(tmp_path: Path) -> None:
    settings = make_settings(
        "postgresql+asyncpg://app:hunter2@db:5432/textdesk",
        slack_webhook_url="https://hooks.slack.com/services/T/B/secret",
        TEXTDESK_LLM_API_KEY=SecretStr("sk-live"),
    )  # the field is set by its alias
    shown = dict(masked_settings(settings))
    assert shown["TEXTDESK_DATABASE_URL"] == "postgresql+asyncpg://app:••••••@db:5432/textdesk"
    assert shown["TEXTDESK_SLACK_WEBHOOK_URL"] == "•••••• (set)"
    assert shown["TEXTDESK_LLM_API_KEY"] == "•••••• (set)"
    assert shown["TEXTDESK_OTLP_ENDPOINT"] == "(not set)"
