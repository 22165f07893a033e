"""`textdesk booking list` shows bookings; `booking no-show` marks one and plans one follow-up job."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlmodel import select
from typer.testing import CliRunner

from store.models import Booking, Contact, Job, utcnow
from tests.conftest import MONDAY_9AM, make_settings
from textdesk.business import load_business
from textdesk.cli import app
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import build_services
from textdesk.settings import DEMO_BUSINESS_FILE


def test_no_show_command(sqlite_url: str) -> None:
    async def book() -> str:
        svc = build_services(make_settings(sqlite_url), clock=FrozenClock(MONDAY_9AM))
        for i, body in enumerate(["haircut tomorrow at 3pm", "yes"]):
            await svc.pipeline.handle(Inbound(sender="+12125550123", body=body,
                provider_message_id=f"SMns{i}"))
        async with svc.sessions() as s:
            (b,) = list(await s.exec(select(Booking)))
        await svc.engine.dispose()
        return b.id

    async def state(bid: str) -> tuple[str, list[str]]:
        svc = build_services(make_settings(sqlite_url))
        async with svc.sessions() as s:
            booking = await s.get(Booking, bid)
            jobs = [j.kind for j in await s.exec(select(Job).where(Job.status == "pending"))]
        await svc.engine.dispose()
        assert booking is not None
        return booking.status, jobs

    bid = asyncio.run(book())
    runner = CliRunner()
    ok = runner.invoke(app, ["booking", "no-show", bid, "--database-url", sqlite_url])
    again = runner.invoke(app, ["booking", "no-show", bid, "--database-url", sqlite_url])
    assert ok.exit_code == 0, ok.output
    assert again.exit_code == 2  # no longer an active booking
    assert asyncio.run(state(bid)) == ("no_show", ["no_show_followup"])


def test_booking_list_shows_upcoming_active_bookings_by_default(sqlite_url: str) -> None:
    now = utcnow()
    day = now.date() + dt.timedelta(days=2)
    soon = dt.datetime.combine(day, dt.time(15, 0), dt.UTC)  # 10:00 or 11:00 in New York, same day

    async def seed() -> None:
        svc = build_services(make_settings(sqlite_url))
        async with svc.sessions() as s:
            named = Contact(phone="+12125550123", name="Dana Smith")
            unnamed = Contact(phone="+12125550188")
            s.add_all([named, unnamed])
            await s.flush()
            assert named.id is not None and unnamed.id is not None
            for bid, contact, start, status in [
                ("bk_soon", unnamed.id, soon, "active"),
                ("bk_later", named.id, soon + dt.timedelta(days=1), "active"),
                ("bk_past", named.id, now - dt.timedelta(days=2), "active"),
                ("bk_cancelled", named.id, soon + dt.timedelta(days=2), "cancelled"),
            ]:
                s.add(Booking(id=bid, contact_id=contact, service="haircut", provider="kim", start=start,
                              end=start + dt.timedelta(minutes=45), status=status))
            await s.commit()
        await svc.engine.dispose()

    asyncio.run(seed())
    runner = CliRunner()

    def listed(*args: str) -> list[str]:
        result = runner.invoke(app, ["booking", "list", "--database-url", sqlite_url, *args])
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    upcoming = listed()
    assert [line.split()[0] for line in upcoming] == ["bk_soon", "bk_later"]
    local = soon.astimezone(load_business(DEMO_BUSINESS_FILE).tz)
    assert f"{local:%Y-%m-%d %H:%M}" in upcoming[0] and "haircut with kim" in upcoming[0]
    assert upcoming[0].endswith("[phone …88]") and "5550188" not in upcoming[0]  # no name: redacted
    assert upcoming[1].endswith("Dana Smith")
    everything = listed("--all")
    assert [line.split()[0] for line in everything] == ["bk_past", "bk_soon", "bk_later", "bk_cancelled"]
    assert everything[-1].endswith("[cancelled]")
    assert [line.split()[0] for line in listed("--date", local.date().isoformat())] == ["bk_soon"]
    assert listed("--date", "2001-01-01") == ["no bookings"]
    bad = runner.invoke(app, ["booking", "list", "--database-url", sqlite_url, "--date", "tomorrow"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.stderr
