"""Twilio webhook hardening: account check, replays, body size, and a property-based fuzz.

The fuzz signs every request correctly (as Twilio would) and throws odd content at the
pipeline: random Unicode with control characters, random extra fields, invalid or missing
From values, missing fields, reused MessageSids. Invariants: never a 5xx; a request carrying
From and MessageSid with our (or no) AccountSid is answered 200, so the signature check agrees
with the form parser on every input; at most one stored inbound message per MessageSid.

Example counts (derandomized, so CI runs the same cases): 300 on SQLite, 150 on PostgreSQL;
about 5 s together on a 2-core machine (plus ~1 s of app start-up each).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import string
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient
from sqlalchemy import func
from sqlmodel import select

from store.db import make_engine, make_sessionmaker
from store.models import AuditEvent, Contact, Conversation, Message, Trace
from tests.conftest import ACCOUNT_SID, Sms, make_settings
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from web.app import create_app

OTHER_ACCOUNT = "AC" + "2" * 32
UNLIMITED = {"rate_limit_per_minute": 10**6, "rate_limit_per_hour": 10**6,
             "global_rate_limit_per_minute": 10**6}


async def counts(services: Services) -> dict[str, int]:
    out = {}
    async with services.sessions() as s:
        for model in (Contact, Conversation, Message, Trace, AuditEvent):
            out[model.__tablename__] = (await s.exec(select(func.count()).select_from(model))).one()
    return out


def params(body: str, sender: str = "+12125550123", sid: str | None = None, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "AccountSid": ACCOUNT_SID, "From": sender,
            "To": "+15005550006", "Body": body, "NumMedia": "0", **extra}


# -- account, replay, size ------------------------------------------------------------------------

async def test_account_sid_mismatch_is_403_and_stores_nothing(sms: Sms, services: Services) -> None:
    before = await counts(services)
    resp = await sms.post("/twilio/sms", params("hi", AccountSid=OTHER_ACCOUNT))  # correctly signed
    assert resp.status_code == 403
    resp = await sms.post("/twilio/status", {"MessageSid": "SM1", "MessageStatus": "delivered",
                                             "AccountSid": OTHER_ACCOUNT})
    assert resp.status_code == 403
    assert await counts(services) == before


async def test_replayed_old_request_gets_the_same_answer_and_stores_nothing(
        sms: Sms, services: Services, clock: FrozenClock) -> None:
    form = params("can i get a haircut tomorrow at 2pm?")
    signature = sms.sign("/twilio/sms", form)
    first = await sms.post("/twilio/sms", form, signature=signature)
    assert first.status_code == 200 and "<Message" in first.text
    after_first = await counts(services)

    clock.advance(days=3)  # long after: the conversation has gone idle, the booking offer is stale
    for _ in range(2):
        again = await sms.post("/twilio/sms", form, signature=signature)
        assert (again.status_code, again.text) == (200, first.text)
    assert await counts(services) == after_first

    tampered = {**form, "MessageSid": f"SM{uuid.uuid4().hex}"}  # a "new" message under the old signature
    assert (await sms.post("/twilio/sms", tampered, signature=signature)).status_code == 403
    assert await counts(services) == after_first


async def test_oversized_body_is_rejected_and_nothing_is_stored(sms: Sms, services: Services) -> None:
    before = await counts(services)
    resp = await sms.text("x" * 1_000_000)  # signed; the app's request limit is 64 KiB
    assert resp.status_code in (403, 413)
    assert await counts(services) == before


async def test_oversized_body_is_413(sms: Sms) -> None:
    assert (await sms.text("x" * 1_000_000)).status_code == 413


@pytest.mark.parametrize("form", [params("meet you @ 3\x00pm"), params("hi", sid="SM\x00" + "0" * 31)])
async def test_nul_characters_do_not_break_postgres(pg_url: str, clock: FrozenClock,
                                                     form: dict[str, str]) -> None:
    services = build_services(make_settings(pg_url), clock=clock)
    async with AsyncTestClient(app=create_app(services)) as client:
        assert (await Sms(client).post("/twilio/sms", form)).status_code < 500


async def test_overlong_message_sid_is_a_client_error(pg_url: str, clock: FrozenClock) -> None:
    services = build_services(make_settings(pg_url), clock=clock)
    async with AsyncTestClient(app=create_app(services)) as client:
        assert (await Sms(client).post("/twilio/sms", params("hi", sid="SM" + "a" * 100))).status_code < 500


# -- property-based fuzz --------------------------------------------------------------------------

_FIELDS = ("From", "MessageSid", "Body", "To", "AccountSid")


def _strategies(allow_nul: bool, max_sid: int) -> dict[str, Any]:
    chars = st.characters(codec="utf-8", exclude_characters=None if allow_nul else "\x00")
    return {
        "body": st.one_of(st.text(chars, max_size=200), st.text(chars, min_size=1500, max_size=1800)),
        "sender": st.one_of(
            st.sampled_from(["+12125550123", "+12125550199", "(212) 555-0100", "+447911123456",
                             "whatsapp:+12125550123", "+1", "", "0", "+999999999999999999"]),
            st.from_regex(r"\+?[0-9 ().-]{0,22}", fullmatch=True),
            st.text(chars, max_size=30)),
        "sid": st.one_of(st.sampled_from([f"SMfuzz{n:04d}" for n in range(5)]),
                         st.from_regex(r"SM[0-9a-f]{32}", fullmatch=True),
                         st.text(chars, min_size=1, max_size=max_sid)),
        "extras": st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=12).filter(
            lambda k: k not in _FIELDS), st.text(chars, max_size=40), max_size=4),
        "account": st.sampled_from([ACCOUNT_SID, None, OTHER_ACCOUNT]),
        "drop": st.sets(st.sampled_from(_FIELDS[:4]), max_size=2),
    }


def _fuzz(db_url: str, examples: int, *, allow_nul: bool, max_sid: int) -> Counter[int]:
    loop = asyncio.new_event_loop()
    services = build_services(make_settings(db_url, **UNLIMITED),
                              clock=FrozenClock(dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)))
    client = AsyncTestClient(app=create_app(services))
    loop.run_until_complete(client.__aenter__())
    sms = Sms(client)
    statuses: Counter[int] = Counter()

    @given(**_strategies(allow_nul, max_sid))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    def post_anything(body: str, sender: str, sid: str, extras: dict[str, str], account: str | None,
                      drop: set[str]) -> None:
        form = {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": body, **extras}
        if account is not None:
            form["AccountSid"] = account
        for name in drop:
            form.pop(name, None)
        resp = loop.run_until_complete(sms.post("/twilio/sms", form))
        statuses[resp.status_code] += 1
        assert resp.status_code < 500, resp.text
        sid_ok = 0 < len(sid.replace("\x00", "")) <= 64 and sid.replace("\x00", "").isalnum()
        if form.get("From") and form.get("MessageSid") and account != OTHER_ACCOUNT and not sid_ok:
            assert resp.status_code == 400, f"{resp.status_code} for a malformed MessageSid"
        elif form.get("From") and form.get("MessageSid") and account != OTHER_ACCOUNT:
            assert resp.status_code == 200, f"{resp.status_code} for a correctly signed message"
        elif account == OTHER_ACCOUNT:
            assert resp.status_code == 403
        else:
            assert resp.status_code == 400

    async def stored_per_sid() -> list[int]:
        engine = make_engine(db_url)  # the app's engine lives in the test client's portal loop
        try:
            async with make_sessionmaker(engine)() as s:
                rows = await s.exec(select(Message.provider_message_id, func.count())
                                    .where(Message.direction == "in").group_by(Message.provider_message_id))
                return [n for _, n in rows]
        finally:
            await engine.dispose()

    try:
        post_anything()
        per_sid = loop.run_until_complete(stored_per_sid())
    finally:
        loop.run_until_complete(client.__aexit__(None, None, None))
        loop.close()
    assert per_sid and max(per_sid) == 1
    return statuses


def test_webhook_fuzz_sqlite(sqlite_url: str) -> None:
    statuses = _fuzz(sqlite_url, 300, allow_nul=True, max_sid=80)
    assert statuses[200] > 100  # most examples reached the pipeline


def test_webhook_fuzz_postgres(pg_url: str) -> None:
    statuses = _fuzz(pg_url, 150, allow_nul=True, max_sid=80)
    assert statuses[200] > 50
