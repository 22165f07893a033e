"""Deposits end to end: booking -> Stripe Checkout link in the reply -> signed webhook marks it
paid (once) -> an unpaid hold is released by the scheduler."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from litestar.testing import AsyncTestClient
from sqlmodel import select

from store.models import AuditEvent, Booking, Payment
from tests.conftest import MONDAY_9AM, make_settings
from textdesk.clock import FrozenClock
from textdesk.pipeline import Inbound
from textdesk.services import Services, build_services
from textdesk.settings import DEMO_BUSINESS_FILE
from web.app import create_app

SESSIONS = "https://api.stripe.com/v1/checkout/sessions"
WHSEC = "whsec_test_secret"
_n = iter(range(10**9))


@pytest.fixture
def business_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEMO_BUSINESS_FILE.read_text())
    data["services"][1]["deposit"] = "$20"  # color needs a deposit
    data["allowed_link_hosts"] = [*data["allowed_link_hosts"], "checkout.stripe.com"]
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
async def svc(sqlite_url: str, business_file: Path) -> AsyncIterator[Services]:
    s = build_services(
        make_settings(
            sqlite_url,
            business_file=business_file,
            stripe_secret_key="sk_test_x",
            stripe_webhook_secret=WHSEC,
            deposit_hold_minutes=30,
        ),
        clock=FrozenClock(MONDAY_9AM),
    )
    yield s
    await s.close()


def checkout_session(request: httpx.Request) -> httpx.Response:
    form = dict(httpx.QueryParams(request.content.decode()))
    bid = form["metadata[booking_id]"]
    return httpx.Response(
        200,
        json={
            "id": f"cs_test_{bid}",
            "object": "checkout.session",
            "amount_total": int(form.get("line_items[0][price_data][unit_amount]", 2000)),
            "currency": "usd",
            "client_reference_id": bid,
            "metadata": {"booking_id": bid},
            "mode": "payment",
            "payment_status": "unpaid",
            "status": "open",
            "expires_at": int(MONDAY_9AM.timestamp()) + 1800,
            "url": f"https://checkout.stripe.com/c/pay/cs_test_{bid}",
        },
    )


def signed(event: dict[str, Any], at: dt.datetime) -> tuple[bytes, str]:
    payload = json.dumps(event, separators=(",", ":")).encode()
    t = int(at.timestamp())
    sig = hmac.new(WHSEC.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={t},v1={sig}"


async def book_color(svc: Services, phone: str) -> tuple[Any, Booking]:
    await svc.pipeline.handle(Inbound(sender=phone, body="color tomorrow at 10am",
        provider_message_id=f"SMd{next(_n)}"))
    r = await svc.pipeline.handle(Inbound(sender=phone, body="yes", provider_message_id=f"SMd{next(_n)}"))
    async with svc.sessions() as db:
        b = (await db.exec(select(Booking).order_by(Booking.created_at.desc()))).first()  # type: ignore[attr-defined]
    assert b is not None
    return r, b


async def test_deposit_link_then_paid_once(svc: Services) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(SESSIONS).mock(side_effect=checkout_session)
        r, booking = await book_color(svc, "+12125550123")
    assert f"https://checkout.stripe.com/c/pay/cs_test_{booking.id}" in (r.reply or "")
    assert "$20 deposit" in (r.reply or "")
    event = {
        "id": "evt_paid_1",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(MONDAY_9AM.timestamp()),
        "data": {
            "object": {
                "id": f"cs_test_{booking.id}",
                "object": "checkout.session",
                "client_reference_id": booking.id,
                "metadata": {"booking_id": booking.id},
                "payment_status": "paid",
                "status": "complete",
                "amount_total": 2000,
                "currency": "usd",
            }
        },
    }
    payload, header = signed(event, MONDAY_9AM)
    async with AsyncTestClient(app=create_app(svc)) as client:
        bad = await client.post("/stripe/webhook", content=payload, headers={"Stripe-Signature": "t=1,v1=00"})
        assert bad.status_code == 400
        ok = await client.post("/stripe/webhook", content=payload, headers={"Stripe-Signature": header})
        again = await client.post("/stripe/webhook", content=payload, headers={"Stripe-Signature": header})
    assert ok.status_code == again.status_code == 200 and again.text == "duplicate"
    async with svc.sessions() as db:
        (p,) = list(await db.exec(select(Payment)))
        audits = [a.kind for a in await db.exec(select(AuditEvent)) if a.kind.startswith("payment.")]
    assert p.status == "paid" and audits == ["payment.paid"]
    # A paid booking is never released.
    svc.clock.advance(hours=2)  # type: ignore[attr-defined]
    assert await svc.scheduler.release_unpaid_holds(svc.clock.now()) == []


async def test_unpaid_hold_is_released(svc: Services) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(SESSIONS).mock(side_effect=checkout_session)
        mock.post(url__regex=r"https://api\.twilio\.com/.*").mock(
            return_value=httpx.Response(201, json={"sid": "SMx", "status": "queued"})
        )
        _, booking = await book_color(svc, "+12125550124")
        svc.clock.advance(minutes=31)  # type: ignore[attr-defined]
        released = await svc.scheduler.release_unpaid_holds(svc.clock.now())
    assert released == [booking.id]
    async with svc.sessions() as db:
        b = await db.get(Booking, booking.id)
    assert b is not None and b.status == "cancelled"
