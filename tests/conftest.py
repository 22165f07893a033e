"""Shared fixtures: a real app over a real database, signed Twilio requests, a frozen clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from litestar.testing import AsyncTestClient
from twilio.request_validator import RequestValidator

from store.db import migrate
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from textdesk.settings import DEMO_BUSINESS_FILE, Settings
from web.app import create_app

AUTH_TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "1" * 32
PUBLIC_URL = "https://sms.example.com"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# Monday 2 March 2026, 09:00 in New York.
MONDAY_9AM = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


def pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def in_ci() -> bool:
    """``CI`` is set to something truthy (GitHub Actions and most CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def require(available: bool, reason: str) -> None:
    """Skip a test whose service (PostgreSQL, chromium) is missing, with the reason; under CI fail
    instead, so a CI image that lost a service cannot pass by quietly skipping its tests."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def make_settings(db_url: str, **over: Any) -> Settings:
    base: dict[str, Any] = dict(
        database_url=db_url,
        business_file=DEMO_BUSINESS_FILE,
        public_url=PUBLIC_URL,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from="+15005550006",
        scheduler_enabled=False,  # tests run jobs explicitly with Scheduler.run_due()
    )
    base.update(over)
    return Settings(**base)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'textdesk.db'}"
    migrate(url)
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test, migrated; dropped afterwards."""
    require(pg_available(), "PostgreSQL is not running at 127.0.0.1:5432")
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?search_path={schema}"
    migrate(url)
    yield url
    asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(MONDAY_9AM)


class Sms:
    """Signs and posts Twilio webhooks like Twilio does."""

    def __init__(self, client: AsyncTestClient[Any], token: str = AUTH_TOKEN) -> None:
        self.client = client
        self.validator = RequestValidator(token)
        self.n = 0

    def sign(self, path: str, params: dict[str, str], query: str = "") -> str:
        url = PUBLIC_URL + path + (f"?{query}" if query else "")
        return self.validator.compute_signature(url, params)

    async def post(
        self,
        path: str,
        params: dict[str, str],
        query: str = "",
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sig = self.sign(path, params, query) if signature is None else signature
        hdrs = {"X-Twilio-Signature": sig, **(headers or {})} if sig != "" else dict(headers or {})
        url = path + (f"?{query}" if query else "")
        return await self.client.post(
            url,
            content=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded", **hdrs},
        )

    async def text(
        self, body: str, sender: str = "+12125550123", sid: str | None = None, **extra: str
    ) -> Any:
        self.n += 1
        params = {
            "MessageSid": sid or f"SM{uuid.uuid4().hex}",
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
            **extra,
        }
        return await self.post("/twilio/sms", params)


@pytest.fixture
async def services(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Services]:
    svc = build_services(make_settings(sqlite_url), clock=clock)
    yield svc
    await svc.engine.dispose()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(services)
    async with AsyncTestClient(app=app) as c:
        yield c


@asynccontextmanager
async def serve_in_loop(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (middleware, routes) over ASGI in the test's own event loop. Litestar's
    AsyncTestClient runs the app on a portal thread with a loop of its own, so ``tasks.drain()``
    in the test would not see the replies a REST-answering webhook leaves to the background."""
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def sms(client: AsyncTestClient[Any]) -> Sms:
    return Sms(client)


os.environ.setdefault("TEXTDESK_LOG_LEVEL", "WARNING")
