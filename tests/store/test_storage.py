"""Storage on SQLite and PostgreSQL: migrations, constraints, consent history, round trips."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from store import repo
from store.db import make_engine, make_sessionmaker
from store.models import Booking, ConsentEvent, Contact, Message

TABLES = {
    "contact",
    "consentevent",
    "conversation",
    "message",
    "booking",
    "trace",
    "auditevent",
    "user",
    "alembic_version",
}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[object]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_migrations_create_every_table(db_url: str) -> None:
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert names >= TABLES


async def test_provider_message_id_is_unique_per_provider(sessions: object) -> None:
    async with sessions() as s:  # type: ignore[operator]
        c = await repo.get_or_create_contact(s, "+12125550123")
        conv = await repo.open_conversation(s, c, dt.datetime.now(dt.UTC))

        def msg(body: str, provider: str) -> Message:
            return Message(conversation_id=conv.id, contact_id=c.id, direction="in", body=body,
                           provider="twilio" if provider == "twilio" else provider, provider_message_id="SM1")

        s.add(msg("a", "twilio"))
        s.add(msg("a", "vonage"))  # another provider's id space
        await s.commit()
        s.add(msg("b", "twilio"))
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_consent_history_records_who_what_when(sessions: object) -> None:
    async with sessions() as s:  # type: ignore[operator]
        c = await repo.get_or_create_contact(s, "+12125550123")
        assert await repo.set_consent(s, c, "opted_out", "keyword", detail="STOP")
        assert not await repo.set_consent(s, c, "opted_out", "keyword", detail="STOP")  # no-op
        assert await repo.set_consent(s, c, "opted_in", "staff", actor="admin@example.com")
        await s.commit()
        events = list(await s.exec(select(ConsentEvent).order_by(ConsentEvent.id)))  # type: ignore[arg-type]
    assert [(e.old, e.new, e.source, e.actor) for e in events] == [
        ("unknown", "opted_out", "keyword", "system"),
        ("opted_out", "opted_in", "staff", "admin@example.com"),
    ]
    assert all(e.at.tzinfo is not None for e in events)


async def test_contact_json_fields_and_aware_datetimes_round_trip(sessions: object) -> None:
    start = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)
    async with sessions() as s:  # type: ignore[operator]
        c = Contact(
            phone="+12125550199", tags=["vip"], state={"task": "book_appointment", "slots": {"a": "b"}}
        )
        s.add(c)
        await s.flush()
        s.add(
            Booking(
                id="b1",
                contact_id=c.id or 0,
                service="haircut",
                provider="Kim",
                start=start,
                end=start + dt.timedelta(minutes=45),
            )
        )
        await s.commit()
    async with sessions() as s:  # type: ignore[operator]
        c2 = await repo.contact_by_phone(s, "+12125550199")
        assert c2 is not None and c2.tags == ["vip"] and c2.state["slots"] == {"a": "b"}
        (b,) = await repo.active_bookings(s, c2.id or 0, start - dt.timedelta(days=1))
        assert b.start == start and b.start.tzinfo is not None
        busy = await repo.busy_between(s, start - dt.timedelta(hours=1), start + dt.timedelta(hours=1))
        assert [(x.provider, x.ref) for x in busy] == [("Kim", "b1")]
