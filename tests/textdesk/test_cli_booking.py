"""`textdesk booking no-show` marks the booking and plans one follow-up job."""

from __future__ import annotations

import asyncio

from sqlmodel import select
from typer.testing import CliRunner

from store.models import Booking, Job
from tests.conftest import MONDAY_9AM, make_settings
from textdesk.cli import app
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import build_services


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
