"""Concurrent invariants besides the slot (issue 15.4), checked the same way: two workers on one
database, the same event at the same moment.

- one contact per phone number when both workers see a new number's first messages at once;
- one Stripe event applied once when it is delivered to both workers at once, many times;
- one reminder per booking and offset, even when a stalled job runs a second time;
- nothing sent to an opted-out contact when the opt-out races a send or its retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import col, select

from store.models import AuditEvent, Booking, Contact, Job, Message, Payment, StripeEvent
from tests.conftest import ACCOUNT_SID
from tests.slot_storm import reply_text, workers
from textdesk.pipeline import Inbound

API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
WHSEC = "whsec_test_concurrency"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


async def test_one_contact_per_phone_when_both_workers_see_a_new_number(db_url: str) -> None:
    async with workers(db_url) as w:
        for n in range(5):  # five new numbers, each with two first messages, each sent to both workers
            phone = f"+1212555{2000 + n:04d}"
            sids = [f"SM{uuid.uuid4().hex}" for _ in range(2)]
            posts = [sms.text(body, sender=phone, sid=sid)
                     for sid, body in zip(sids, ["hi", "where are you located?"], strict=True)
                     for sms in w.smses]
            answers = [reply_text(r) for r in await asyncio.gather(*posts)]
            per_sid = [set(answers[i * 2:(i + 1) * 2]) - {""} for i in range(2)]
            assert all(len(a) <= 1 for a in per_sid), per_sid  # one answer per MessageSid
        async with w.sessions() as s:
            contacts = list(await s.exec(select(Contact)))
            inbound = list(await s.exec(select(Message).where(Message.direction == "in")))
    assert len(contacts) == 5 and len({c.phone for c in contacts}) == 5
    assert len(inbound) == 10 and all(m.processed_at is not None for m in inbound)


def _signed(payload: bytes, at: int) -> str:
    digest = hmac.new(WHSEC.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


async def test_a_stripe_event_is_applied_once_across_workers(db_url: str) -> None:
    async with workers(db_url, stripe_webhook_secret=WHSEC) as w:
        svc = w.services[0]
        async with w.sessions() as s:
            c = Contact(phone="+12125550177")
            s.add(c)
            await s.flush()
            start = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)
            s.add(Booking(id="bk_dep", contact_id=c.id or 0, service="color", provider="Kim", start=start,
                          end=start + dt.timedelta(minutes=90)))
            await s.flush()
            s.add(Payment(booking_id="bk_dep", session_id="cs_test_once", url="https://pay.example/x",
                          amount_cents=2500))
            await s.commit()
        event = {"id": "evt_once_1", "object": "event", "type": "checkout.session.completed",
                 "created": int(svc.clock.now().timestamp()),
                 "data": {"object": {"id": "cs_test_once", "object": "checkout.session",
                                     "payment_status": "paid", "metadata": {"booking_id": "bk_dep"}}}}
        payload = json.dumps(event).encode()
        header = _signed(payload, int(svc.clock.now().timestamp()))
        posts = [sms.client.post("/stripe/webhook", content=payload,
                                 headers={"Stripe-Signature": header, "Content-Type": "application/json"})
                 for _ in range(6) for sms in w.smses]
        answers = await asyncio.gather(*posts)
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        assert sorted(r.text for r in answers) == ["duplicate"] * 11 + ["ok"]
        async with w.sessions() as s:
            events = list(await s.exec(select(StripeEvent)))
            paid = list(await s.exec(select(AuditEvent).where(AuditEvent.kind == "payment.paid")))
            payment = (await s.exec(select(Payment))).one()
    assert len(events) == 1 and len(paid) == 1 and payment.status == "paid"


def _twilio_ok(sent: list[dict[str, str]], delay: float = 0.0) -> Any:
    async def handler(request: httpx.Request) -> httpx.Response:
        if delay:
            await asyncio.sleep(delay)
        form = dict(httpx.QueryParams(request.content.decode()))
        sent.append(form)
        return httpx.Response(201, json={"sid": f"SMr{uuid.uuid4().hex[:8]}", "status": "queued",
                                         "account_sid": ACCOUNT_SID})
    return handler


async def _book(w: Any, phone: str, when: str) -> None:
    for body in (f"haircut tomorrow at {when}", "yes"):
        await w.services[0].pipeline.handle(Inbound(sender=phone, body=body,
            provider_message_id=f"SM{uuid.uuid4().hex}"))


async def test_one_reminder_per_booking_and_offset_even_when_a_job_runs_twice(db_url: str) -> None:
    async with workers(db_url) as w:
        a, b = w.services
        b.scheduler.worker = "worker-b"
        for i in range(4):
            await _book(w, f"+1212555{3000 + i}", f"{10 + i}:00")
        sent: list[dict[str, str]] = []
        with respx.mock(assert_all_called=False) as mock:
            mock.post(API).mock(side_effect=_twilio_ok(sent))
            a.clock.advance(hours=9)  # type: ignore[attr-defined]  # the four 24 h reminders are due
            await asyncio.gather(a.scheduler.run_due(), b.scheduler.run_due(), a.scheduler.run_due())
            # A worker that stalled after sending, before marking its jobs done: their leases expire
            # and another worker takes them again.
            async with w.sessions() as s:
                done = list(await s.exec(select(Job).where(Job.kind == "reminder", Job.status == "done")))
                for job in done:
                    job.status, job.locked_by = "running", "stalled-worker"
                    job.locked_at = a.clock.now() - dt.timedelta(hours=1)
                    s.add(job)
                await s.commit()
            assert len(done) == 4
            await asyncio.gather(a.scheduler.run_due(), b.scheduler.run_due())
        async with w.sessions() as s:
            notes = list(await s.exec(select(Message).where(Message.kind == "notification")))
    assert len(sent) == 4 and len(notes) == 4
    assert len({m.dedupe_key for m in notes}) == 4 and all(m.dedupe_key for m in notes)


async def test_no_text_after_an_opt_out_that_races_the_sends(db_url: str) -> None:
    """Reminders are going out (slowly, and the first attempt of some fails and is retried) while
    their customers text STOP. A reminder may have left before the opt-out was recorded; none may
    leave after the opt-out confirmation did."""
    async with workers(db_url) as w:
        a, b = w.services
        phones = [f"+1212555{4000 + i}" for i in range(8)]
        for i, phone in enumerate(phones):
            await _book(w, phone, f"{9 + i}:00")
        sent: list[dict[str, str]] = []
        attempts: dict[str, int] = {}

        async def flaky(request: httpx.Request) -> httpx.Response:
            form = dict(httpx.QueryParams(request.content.decode()))
            attempts[form["To"]] = attempts.get(form["To"], 0) + 1
            await asyncio.sleep(0.02)
            first = attempts[form["To"]] == 1
            if form["Body"].startswith("Reminder") and first and form["To"] in phones[::2]:
                return httpx.Response(503, json={"code": 20500, "message": "busy", "status": 503})
            sent.append(form)
            return httpx.Response(201, json={"sid": f"SMr{uuid.uuid4().hex[:8]}", "status": "queued",
                                             "account_sid": ACCOUNT_SID})

        with respx.mock(assert_all_called=False) as mock:
            mock.post(API).mock(side_effect=flaky)
            a.clock.advance(hours=8)  # type: ignore[attr-defined]

            async def stop(phone: str, pause: float) -> None:
                await asyncio.sleep(pause)
                await w.text(phone, "STOP")

            await asyncio.gather(a.scheduler.run_due(), b.scheduler.run_due(),
                                 *(stop(p, 0.005 * i) for i, p in enumerate(phones)))
        async with w.sessions() as s:
            out = list(await s.exec(
                select(Message).where(Message.direction == "out").order_by(col(Message.id))))
            contacts = {c.id: c for c in await s.exec(select(Contact))}
    assert all(c.consent == "opted_out" for c in contacts.values())
    for cid in contacts:
        mine = [m for m in out if m.contact_id == cid]
        confirmations = [m for m in mine if m.kind == "opt_out_confirmation" and m.sent_at is not None]
        assert len(confirmations) == 1
        after = [m for m in mine if m.kind == "notification" and m.status != "blocked" and m.sent_at
                 and m.sent_at > confirmations[0].sent_at]
        assert not after, f"texted after the opt-out: {[(m.body, m.sent_at) for m in after]}"
        for m in mine:  # a reminder is either out before the opt-out, or blocked, never pending
            if m.kind == "notification":
                assert m.status in ("sent", "blocked"), (m.status, m.body)
