"""Per-contact ordering across workers on PostgreSQL, different contacts in parallel."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select

from store.models import Message, Trace
from tests.conftest import MONDAY_9AM, make_settings
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import build_services


async def test_one_contact_is_processed_in_arrival_order_across_two_workers(pg_url: str) -> None:
    clock = FrozenClock(MONDAY_9AM)
    w1 = build_services(make_settings(pg_url), clock=clock)
    w2 = build_services(make_settings(pg_url), clock=clock)
    slow = w1.pipeline.provider.understand

    async def slower(req: object) -> object:  # widen the window in which a second worker could race
        await asyncio.sleep(0.05)
        return await slow(req)  # type: ignore[arg-type]

    w1.pipeline.provider.understand = slower  # type: ignore[method-assign]
    bodies = [f"where are you located? #{i}" for i in range(10)]
    phones = ["+12125550123", "+12125550124"]

    async def send(i: int, phone: str) -> None:
        worker = w1 if i % 2 == 0 else w2
        await asyncio.sleep(0.005 * i)  # arrival order
        await worker.pipeline.handle(Inbound(sender=phone, body=bodies[i],
            provider_message_id=f"SM{phone[-4:]}-{i}"))

    await asyncio.gather(*(send(i, p) for p in phones for i in range(len(bodies))))
    async with w1.sessions() as db:
        inbound = list(
            await db.exec(select(Message).where(Message.direction == "in").order_by(col(Message.id)))
        )
        traces = list(await db.exec(select(Trace).order_by(col(Trace.id))))
    assert len(inbound) == 20 and all(m.processed_at is not None for m in inbound)
    assert len(traces) == 20 and len({t.message_id for t in traces}) == 20  # each processed once
    for phone in phones:
        ids = [m.id for m in inbound
               if m.provider_message_id and m.provider_message_id.startswith(f"SM{phone[-4:]}")]
        processed = [t.message_id for t in traces if t.message_id in ids]
        assert processed == sorted(ids)  # answered in the order they were stored
    await w1.engine.dispose()
    await w2.engine.dispose()
