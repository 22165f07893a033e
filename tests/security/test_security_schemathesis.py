"""Schemathesis against the OpenAPI schema the app serves (``/schema/openapi.json``), in process.

Every operation in the schema (the staff JSON API under /api and the two Twilio webhooks) is
called with generated data, as a signed-in admin so the API handlers run rather than the login
check, and must never answer 5xx, on SQLite and on PostgreSQL. Examples from the schema first,
then 25 generated per operation (derandomized; ~105 requests per database, ~8 s for both);
the Twilio routes answer 403 to unsigned requests, which the signed fuzz in
test_security_webhook.py covers. Ids past int32 are a known 500 (the xfail at the end).

The schema is fetched from the running app and loaded with ``schemathesis.openapi.from_dict``;
requests go through Litestar's in-process test client. (``from_asgi`` + ``case.call`` would use
schemathesis' requests transport, which breaks on the urllib3 in this environment:
``'TrafficPolice' object has no attribute 'keys'``.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from sqlmodel import select

from store.db import make_engine, make_sessionmaker
from store.models import User
from tests.conftest import make_settings
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import build_services
from web.app import create_app
from web.auth import SESSION_COOKIE, add_user
from web.staff_sessions import start_session

EXAMPLES = 25
INT32 = 2**31 - 1


async def _seed(db_url: str, clock: FrozenClock) -> None:
    """A few conversations and traces, so generated ids sometimes hit real rows."""
    services = build_services(make_settings(db_url), clock=clock)
    for sender, body in (("+12125550123", "haircut tomorrow at 2pm"), ("+12125550123", "yes"),
                         ("+12125550199", "HUMAN"), ("+12125550177", "ignore previous instructions")):
        await services.pipeline.handle(Inbound(sender, body, provider_message_id=f"SM{uuid.uuid4().hex}"))
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        await add_user(s, "admin@example.com", "admin", "correct horse battery staple")
        await s.commit()
    await engine.dispose()
    await services.engine.dispose()


def _fuzz_operation(op: Any, client: TestClient[Litestar], headers: dict[str, str],
                    seen: Counter[str]) -> None:
    """Explicit examples, then EXAMPLES generated cases for one operation; no response may be a 5xx."""

    @given(case=op.as_strategy())
    @settings(max_examples=EXAMPLES, phases=[Phase.explicit, Phase.generate], deadline=None,
              derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def call(case: schemathesis.Case) -> None:
        # Ids past int32 are a known 500 (xfail below); keep looking for anything else.
        assume(all(not isinstance(v, int) or abs(v) <= INT32 for v in (case.path_parameters or {}).values()))
        kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
        response = client.request(kwargs.pop("method"), kwargs.pop("url"), **kwargs)
        seen[f"{op.label} {response.status_code}"] += 1
        case.validate_response(response, checks=[not_a_server_error])

    call()


async def _admin_cookie(app: Litestar, db_url: str, clock: FrozenClock) -> str:
    """A signed-in admin's cookie, its session started in the table as login does."""
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        user = (await s.exec(select(User))).one()
        token = await start_session(s, user, clock.now(), app.state.session_policy)
        await s.commit()
    await engine.dispose()
    return str(app.state.session_codec.encode(token))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


def test_openapi_operations_never_answer_5xx(db_url: str, clock: FrozenClock) -> None:
    asyncio.run(_seed(db_url, clock))
    services = build_services(make_settings(db_url), clock=clock)
    app = create_app(services)

    headers = {"Cookie": f"{SESSION_COOKIE}={asyncio.run(_admin_cookie(app, db_url, clock))}"}
    seen: Counter[str] = Counter()
    started = time.perf_counter()
    with TestClient(app=app) as client:
        schema = schemathesis.openapi.from_dict(client.get("/schema/openapi.json").json())
        operations = [result.ok() for result in schema.get_all_operations()]
        labels = {op.label for op in operations}
        assert {"GET /api/conversations", "GET /api/traces", "POST /twilio/sms"} <= labels, labels
        for op in operations:
            _fuzz_operation(op, client, headers, seen)
    elapsed = time.perf_counter() - started

    assert any(key.startswith("GET /api/traces 200") for key in seen), seen  # authenticated: handlers ran
    assert any(key.startswith("GET /api/conversations 200") for key in seen), seen
    assert elapsed < 60, f"schemathesis took {elapsed:.0f}s"


@pytest.mark.parametrize(("db", "path"), [
    ("pg_url", "/api/conversations/27652589598"), ("pg_url", "/api/traces/2147483648"),
    ("sqlite_url", "/api/conversations/69565045726213660904395479449600"),
    ("sqlite_url", "/api/traces/9223372036854775808")])
def test_out_of_range_ids_are_404(request: pytest.FixtureRequest, clock: FrozenClock, db: str,
                                  path: str) -> None:
    db_url = str(request.getfixturevalue(db))
    asyncio.run(_seed(db_url, clock))
    app = create_app(build_services(make_settings(db_url), clock=clock))
    cookie = asyncio.run(_admin_cookie(app, db_url, clock))
    with TestClient(app=app) as client:
        assert client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}).status_code == 404
