"""Fixtures for the staff app: the real app over a migrated SQLite file, staff users of every role,
a fake Twilio REST API (httpx MockTransport speaking Twilio's wire format), and helpers to log in
and to post forms with the CSRF token."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from channels.twilio import TwilioChannel
from channels.twilio_http import HttpxTwilioClient
from store.models import User
from tests.conftest import ACCOUNT_SID, PUBLIC_URL, Sms, make_settings, require
from textdesk import tasks
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound, TurnResult
from textdesk.services import Services, build_services
from textdesk.settings import Settings
from web.app import create_app
from web.auth import add_user

PASSWORD = "correct horse battery staple"
EMAILS = {
    "admin": "admin@example.com",
    "agent": "agent@example.com",
    "agent2": "agent2@example.com",
    "reviewer": "reviewer@example.com",
}
ROLE_OF = {"admin": "admin", "agent": "agent", "agent2": "agent", "reviewer": "reviewer"}
BASE = "https://testserver.local"  # cookies are Secure (public_url is https)
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium, for the browser tests: they skip without it, and fail under CI."""
    require(CHROMIUM.exists(), "Debian chromium is not installed at /usr/bin/chromium "
            "(Playwright cannot download its own browser here)")
    return CHROMIUM


class FakeTwilio:
    """Answers POST .../Messages.json like Twilio does; records every send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.fail_status: int | None = None
        self.fail_code = 20500

    def handler(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.sent.append(form)
        if self.fail_status is not None:
            return httpx.Response(
                self.fail_status,
                json={
                    "code": self.fail_code,
                    "message": "fake failure",
                    "more_info": "",
                    "status": self.fail_status,
                },
            )
        sid = "SM" + uuid.uuid4().hex
        return httpx.Response(
            201,
            json={
                "sid": sid,
                "account_sid": ACCOUNT_SID,
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
            },
        )

    def channel(self, settings: Settings) -> TwilioChannel:
        http = HttpxTwilioClient(httpx.AsyncClient(transport=httpx.MockTransport(self.handler)))
        return TwilioChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from,
            settings.public_url,
            http=http,
            validate=settings.validate_signatures,
        )


def web_settings(db_url: str, tmp_path: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "saved_cases_dir": tmp_path / "saved",
        "auto_replies_file": tmp_path / "autoreplies.json",
        "scheduler_enabled": False,
    }  # no reminder loop competing for the SQLite lock
    return make_settings(db_url, **{**base, **over})


async def seed_users(services: Services) -> dict[str, int]:
    ids = {}
    async with services.sessions() as s:
        for key, email in EMAILS.items():
            user: User = await add_user(s, email, ROLE_OF[key], PASSWORD)
            ids[key] = user.id or 0
        await s.commit()
    return ids


def csrf(client: httpx.AsyncClient) -> str:
    token = client.cookies.get("csrftoken")
    assert token, "no CSRF cookie yet: GET a page first"
    return token


async def login(client: httpx.AsyncClient, who: str, password: str = PASSWORD) -> httpx.Response:
    client.cookies.clear()
    await client.get("/login")
    return await client.post(
        "/login",
        data={"email": EMAILS.get(who, who), "password": password, "_csrf_token": csrf(client)},
        follow_redirects=False,
    )


async def post_form(
    client: httpx.AsyncClient, url: str, data: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    if not client.cookies.get("csrftoken"):
        await client.get("/login")
    return await client.post(
        url,
        data={**(data or {}), "_csrf_token": csrf(client)},
        follow_redirects=kw.pop("follow_redirects", False),
        **kw,
    )


def inbox_row(html: str, cid: int) -> str:
    """The inbox table's one row for conversation ``cid``."""
    rows = [r for r in re.findall(r"<tr.*?</tr>", html, re.S) if f'href="/inbox/{cid}"' in r]
    assert len(rows) == 1, rows
    return rows[0]


async def settle(limit_s: float = 10.0) -> None:
    """Let the pipeline's background hooks (Slack, telemetry) finish. The test client runs the
    app on its own event loop in a thread, so this polls instead of awaiting the tasks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while tasks.pending():
        if loop.time() > deadline:
            raise TimeoutError("background hooks did not finish")
        await asyncio.sleep(0.01)


@dataclass
class Web:
    services: Services
    app: Litestar
    client: AsyncTestClient[Any]
    twilio: FakeTwilio
    users: dict[str, int]
    sms: Sms
    clock: FrozenClock
    extra: list[httpx.AsyncClient] = field(default_factory=list)

    def new_client(self) -> httpx.AsyncClient:
        """Another browser: same app, separate cookies."""
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        self.extra.append(c)
        return c

    async def text(self, body: str, phone: str = "+12125550123") -> TurnResult:
        """A customer turn through the pipeline directly. Waits for the turn's background hooks:
        they run on this test's loop, which the test client blocks while it waits for the app."""
        inbound = Inbound(sender=phone, body=body, provider_message_id=f"SM{uuid.uuid4().hex}")
        result = await self.services.pipeline.handle(inbound)
        await settle()
        return result

    async def escalated(self, phone: str = "+12125550123", body: str = "HUMAN") -> int:
        result = await self.text(body, phone)
        assert result.escalated, result
        return result.conversation_id or 0


async def make_web(db_url: str, tmp_path: Path, clock: FrozenClock, **over: Any) -> AsyncIterator[Web]:
    settings = web_settings(db_url, tmp_path, **over)
    fake = FakeTwilio()
    services = build_services(settings, clock=clock, twilio=fake.channel(settings))
    app = create_app(services)
    users = await seed_users(services)
    async with AsyncTestClient(app=app, base_url=BASE) as client:
        web = Web(services, app, client, fake, users, Sms(client), clock)
        try:
            yield web
        finally:
            await settle()
            for c in web.extra:
                await c.aclose()


@pytest.fixture
async def web(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    async for w in make_web(sqlite_url, tmp_path, clock):
        yield w


assert PUBLIC_URL.startswith("https://")  # cookies are Secure in these tests, like production
