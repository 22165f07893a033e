"""Fault: Twilio's REST API fails (500, 429), recovers, or hangs (issue 8.3).

The Dispatcher must retry a bounded number of times, mark the message failed, never send a
message twice once Twilio accepted it, let a later retry job send it exactly once, and never
send to a contact who opted out while the message waited (consent is re-checked at send time).

The fake Twilio answers in Twilio's wire format (201 with ``"status": "queued"``, as the real
API does for an accepted message; errors as ``{"code", "message", "status"}``). A hang is a
real loopback socket that accepts the request and never answers, so httpx's own read timeout
fires, not a mocked exception.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlmodel import select

from channels.twilio import TwilioChannel
from channels.twilio_http import HttpxTwilioClient
from store import jobs, repo
from store.models import Contact, Job, Message
from store.outbox import queue_outbound
from tests.conftest import MONDAY_9AM, make_settings
from textdesk.clock import FrozenClock
from textdesk.services import Services, build_services
from web.app import create_app

pytestmark = [pytest.mark.postgres]

PHONE = "+12125550142"


@pytest.fixture
async def svc(pg_url: str, fake_twilio: Any) -> Any:
    settings = make_settings(pg_url)
    services = build_services(settings, clock=FrozenClock(MONDAY_9AM), twilio=fake_twilio.channel(settings))
    yield services
    await services.close()


async def queue(services: Services, body: str = "Your haircut is confirmed.", kind: str = "reply",
                consent: str = "opted_in", phone: str = PHONE) -> int:
    """A contact with ``consent`` and one queued outbound message; returns its outbox id."""
    async with services.sessions() as s:
        contact = await repo.get_or_create_contact(s, phone)
        contact.consent = consent
        s.add(contact)
        conv = await repo.open_conversation(s, contact, services.clock.now())
        msg = queue_outbound(s, contact, conv, body, kind=kind, now=services.clock.now())  # type: ignore[arg-type]
        await s.commit()
        return msg.id or 0


async def row(services: Services, message_id: int) -> Message:
    async with services.sessions() as s:
        msg = await s.get(Message, message_id)
        assert msg is not None
        return msg


async def opt_out(services: Services, phone: str = PHONE) -> None:
    async with services.sessions() as s:
        contact = await repo.contact_by_phone(s, phone)
        assert contact is not None
        await repo.set_consent(s, contact, "opted_out", "keyword", detail="STOP")
        await s.commit()


async def send_jobs(services: Services) -> list[Job]:
    async with services.sessions() as s:
        return list(await s.exec(select(Job).where(Job.kind == "send")))


def failing(*statuses: int, code: int = 20500) -> Any:
    """Answer the first len(statuses) calls with those HTTP statuses, then 201."""
    def script(form: dict[str, str], n: int) -> tuple[int, int] | None:
        return (statuses[n], 429 if statuses[n] == 429 else code) if n < len(statuses) else None
    return script


# -- bounded retries ------------------------------------------------------------------------------

@pytest.mark.parametrize("statuses", [(500, 503), (429, 429, 429)])
async def test_transient_errors_are_retried_then_sent_exactly_once(svc: Services, fake_twilio: Any,
                                                                   statuses: tuple[int, ...]) -> None:
    fake_twilio.script = failing(*statuses)
    mid = await queue(svc)
    msg = await svc.dispatcher.send(mid)
    assert msg is not None
    assert len(fake_twilio.calls) == len(statuses) + 1
    assert len(fake_twilio.delivered) == 1 and fake_twilio.delivered[0].message_id == mid
    assert msg.provider_message_id and msg.provider_message_id.startswith("SM") and msg.delivery == "rest"
    assert msg.attempts == len(statuses) + 1 and msg.status != "failed"


async def test_persistent_5xx_stops_after_a_bounded_burst_and_waits_retrying(
        svc: Services, fake_twilio: Any) -> None:
    fake_twilio.script = failing(*([500] * 50))
    mid = await queue(svc)
    started = time.monotonic()
    msg = await svc.dispatcher.send(mid)
    # Not "failed": a retry is planned, and staff must not give up on a message that will leave.
    assert msg is not None and msg.status == "retrying" and msg.error_code == 20500
    assert msg.next_attempt_at is not None
    assert len(fake_twilio.calls) == svc.dispatcher.max_attempts == msg.attempts
    assert time.monotonic() - started < 8, "retries are bounded in time too"
    # Calling send again does not start another burst: a retrying message waits for its retry job.
    await svc.dispatcher.send(mid)
    assert len(fake_twilio.calls) == svc.dispatcher.max_attempts and fake_twilio.delivered == []


async def test_a_provider_down_for_every_retry_ends_failed_after_the_attempt_limit(
        svc: Services, fake_twilio: Any) -> None:
    clock: FrozenClock = svc.clock  # type: ignore[assignment]
    fake_twilio.script = failing(*([500] * 200))
    mid = await queue(svc)
    msg = await svc.dispatcher.send(mid)
    for _ in range(20):
        assert msg is not None
        if msg.status != "retrying":
            break
        clock.advance(hours=2)
        await svc.scheduler.run_due()
        msg = await row(svc, mid)
    assert msg is not None and msg.status == "failed" and msg.next_attempt_at is None
    assert msg.attempts == svc.dispatcher.attempt_limit == len(fake_twilio.calls)
    assert fake_twilio.delivered == []


async def test_permanent_4xx_is_not_retried_and_21610_opts_the_contact_out(svc: Services,
                                                                           fake_twilio: Any) -> None:
    fake_twilio.script = lambda form, n: (400, 21610)
    mid = await queue(svc)
    msg = await svc.dispatcher.send(mid)
    assert msg is not None and msg.status == "failed" and msg.error_code == 21610
    assert len(fake_twilio.calls) == 1
    async with svc.sessions() as s:
        contact = await repo.contact_by_phone(s, PHONE)
    assert contact is not None and contact.consent == "opted_out"


# -- never twice once successful --------------------------------------------------------------------

async def test_a_message_twilio_accepted_is_never_sent_again(svc: Services, fake_twilio: Any) -> None:
    """Twilio answers an accepted message with ``"status": "queued"``. The outbox must not read
    that as "still waiting to be sent": a second send() or a retry job must not send it again."""
    mid = await queue(svc)
    first = await svc.dispatcher.send(mid)
    assert first is not None and first.provider_message_id and len(fake_twilio.delivered) == 1
    await svc.dispatcher.send(mid)
    async with svc.sessions() as s:
        await jobs.schedule(s, "send", svc.clock.now(), {"message_id": mid})
        await s.commit()
    await svc.scheduler.run_due()
    msg = await row(svc, mid)
    assert len(fake_twilio.delivered) == 1, (
        f"sent {len(fake_twilio.delivered)} times; after the first send the outbox row says "
        f"status={first.status!r} provider_message_id={first.provider_message_id!r}, "
        "which send() treats as not sent yet")
    assert msg.provider_message_id == first.provider_message_id


# -- a later retry job ------------------------------------------------------------------------------

async def test_a_retry_job_sends_a_failed_message_once_after_twilio_recovers(svc: Services,
                                                                             fake_twilio: Any) -> None:
    clock: FrozenClock = svc.clock  # type: ignore[assignment]
    outage = {"on": True}
    fake_twilio.script = lambda form, n: (503, 20503) if outage["on"] else None
    mid = await queue(svc)
    async with svc.sessions() as s:
        await jobs.schedule(s, "send", clock.now(), {"message_id": mid}, dedupe_key=f"send:{mid}")
        await s.commit()

    assert await svc.scheduler.run_due() == 1  # the whole burst fails...
    assert len(fake_twilio.calls) == svc.dispatcher.max_attempts and fake_twilio.delivered == []
    assert await svc.scheduler.run_due() == 0  # ...and the job waits for its backoff, not hot-looping

    outage["on"] = False
    for _ in range(6):  # bounded: a few backoff periods
        clock.advance(minutes=10)
        await svc.scheduler.run_due()
        if fake_twilio.delivered:
            break
    clock.advance(hours=2)
    await svc.scheduler.run_due()
    await svc.scheduler.run_due()
    assert len(fake_twilio.delivered) == 1 and fake_twilio.delivered[0].message_id == mid
    (job,) = await send_jobs(svc)
    assert job.status == "done"


async def test_a_failed_reply_gets_a_retry_without_anyone_scheduling_it(
        svc: Services, fake_twilio: Any, kit: Any, asgi_client_factory: Any) -> None:
    """End to end: a slow turn answers over REST, Twilio is down for that whole burst, then comes
    back. The reply must still reach the customer exactly once via the job loop; nothing in the
    app should need a person to re-send it."""
    clock: FrozenClock = svc.clock  # type: ignore[assignment]
    svc.settings.turn_budget_s = 0.2
    real = svc.pipeline.provider.understand

    async def slow(req: Any) -> Any:
        await asyncio.sleep(0.5)
        return await real(req)

    svc.pipeline.provider.understand = slow  # type: ignore[method-assign]
    outage = {"on": True}
    fake_twilio.script = lambda form, n: (500, 20500) if outage["on"] else None
    hooks = kit.Webhooks(asgi_client_factory(create_app(svc)))
    a = await hooks.post(kit.sms_params(PHONE, "where are you located?"))
    assert a.status == 200 and a.messages == []  # over budget: empty TwiML, the reply goes by REST
    for _ in range(100):  # bounded: the REST burst ends within a few seconds
        await asyncio.sleep(0.05)
        async with svc.sessions() as s:
            out = list(await s.exec(select(Message).where(Message.direction == "out")))
        if out and out[0].status == "retrying":
            break
    assert out and out[0].status == "retrying", [(m.status, m.attempts) for m in out]
    outage["on"] = False
    for _ in range(8):
        clock.advance(minutes=15)
        await svc.scheduler.run_due()
        if fake_twilio.delivered:
            break
    assert len(fake_twilio.delivered) == 1, (
        f"the failed reply was never retried: outbox status {(await row(svc, out[0].id or 0)).status!r}, "
        f"send jobs {[(j.status, j.payload) for j in await send_jobs(svc)]}")


# -- a hung Twilio ----------------------------------------------------------------------------------

async def test_a_hung_twilio_times_out_each_attempt_and_waits_retrying(svc: Services, kit: Any) -> None:
    async with kit.HangingServer() as hung:
        s = svc.settings
        http = HttpxTwilioClient(httpx.AsyncClient(timeout=httpx.Timeout(0.4, connect=0.4)), timeout=0.4)
        channel = TwilioChannel(s.twilio_account_sid, s.twilio_auth_token.get_secret_value(), s.twilio_from,
                                s.public_url, http=http, api_base=hung.base)
        svc.dispatcher.senders = {**svc.dispatcher.senders, ("sms", channel.provider): channel}
        mid = await queue(svc)
        started = time.monotonic()
        msg = await asyncio.wait_for(svc.dispatcher.send(mid), timeout=15)
        elapsed = time.monotonic() - started
        await http.close()
    assert msg is not None and msg.status == "retrying" and msg.attempts == svc.dispatcher.max_attempts
    assert hung.connections == svc.dispatcher.max_attempts  # one request per attempt, no more
    assert elapsed < svc.dispatcher.max_attempts * 0.4 + 4, elapsed


# -- consent flips while a message waits ------------------------------------------------------------

async def test_opt_out_between_queue_and_send_blocks_the_message(svc: Services, fake_twilio: Any) -> None:
    mid = await queue(svc)
    confirmation = await queue(svc, "You're unsubscribed. Reply START to resubscribe.",
                               kind="opt_out_confirmation")
    await opt_out(svc)
    msg = await svc.dispatcher.send(mid)
    assert msg is not None and msg.status == "blocked"
    conf = await svc.dispatcher.send(confirmation)
    assert conf is not None and conf.provider_message_id
    assert [c.message_id for c in fake_twilio.calls] == [confirmation]


async def test_opt_out_before_a_retry_job_blocks_the_failed_message(svc: Services, fake_twilio: Any) -> None:
    clock: FrozenClock = svc.clock  # type: ignore[assignment]
    fake_twilio.script = failing(*([500] * 4))
    mid = await queue(svc)
    async with svc.sessions() as s:
        await jobs.schedule(s, "send", clock.now(), {"message_id": mid})
        await s.commit()
    await svc.scheduler.run_due()
    assert len(fake_twilio.calls) == 4 and fake_twilio.delivered == []
    await opt_out(svc)
    for _ in range(6):
        clock.advance(minutes=30)
        await svc.scheduler.run_due()
    assert fake_twilio.delivered == [] and len(fake_twilio.calls) == 4
    assert (await row(svc, mid)).status == "blocked"


async def test_opt_out_during_the_retry_backoff_stops_the_retries(svc: Services, fake_twilio: Any) -> None:
    """The customer texts STOP while the Dispatcher is backing off after a 500: the next attempt
    is a send to an opted-out number and must not happen."""
    async def script(form: dict[str, str], n: int) -> tuple[int, int] | None:
        if n == 0:
            await opt_out(svc)  # STOP is processed while this attempt is in flight
            return (500, 20500)
        return None

    fake_twilio.script = script
    mid = await queue(svc)
    await svc.dispatcher.send(mid)
    async with svc.sessions() as s:
        contact = (await s.exec(select(Contact).where(Contact.phone == PHONE))).one()
    assert contact.consent == "opted_out"
    assert fake_twilio.delivered == [], (
        f"sent to an opted-out number on retry attempt {len(fake_twilio.calls)}: consent is checked "
        "once before the retry loop, not before each attempt")
    assert (await row(svc, mid)).status in ("blocked", "failed")


