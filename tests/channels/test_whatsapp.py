"""WhatsApp over Twilio: the same signed webhook and pipeline, ``whatsapp:`` addresses, the 24 h window."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.datastructures import State
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from channels.twilio_routes import twilio_router
from channels.whatsapp import (
    OutboundPlan,
    Template,
    TemplateRequired,
    WhatsAppSender,
    address,
    in_service_window,
    plan_outbound,
    strip_address,
    whatsapp_router,
)
from store.models import Contact, Conversation, Message
from tests.conftest import ACCOUNT_SID, Sms
from textdesk.errors import ChannelError
from textdesk.services import Services

CUSTOMER = "whatsapp:+14155550100"
OURS = "whatsapp:+14155238886"
NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
async def app_client(services: Services) -> AsyncIterator[AsyncTestClient[Any]]:
    """A minimal app with both channels' routers over the real services (no web.app changes needed)."""
    app = Litestar(route_handlers=[twilio_router, whatsapp_router], state=State({"services": services}))
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
def wa(app_client: AsyncTestClient[Any]) -> Sms:
    return Sms(app_client)


async def _whatsapp(wa: Sms, body: str, sid: str | None = None, sender: str = CUSTOMER, **extra: str) -> Any:
    params = {
        "MessageSid": sid or f"SM{uuid.uuid4().hex}",
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": OURS,
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Ana",
        "WaId": sender.removeprefix("whatsapp:+"),
        **extra,
    }
    return await wa.post("/whatsapp/sms", params)


async def _rows(services: Services, model: Any) -> list[Any]:
    async with services.sessions() as s:
        return list(await s.exec(select(model).order_by(col(model.id))))


async def test_signed_whatsapp_message_reaches_the_pipeline_and_gets_twiml(
    wa: Sms, services: Services
) -> None:
    resp = await _whatsapp(wa, "where are you located?")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/xml")
    assert resp.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message')
    assert "12 Maple St" in resp.text
    assert 'action="https://sms.example.com/twilio/status?m=' in resp.text

    contacts = await _rows(services, Contact)
    assert [c.phone for c in contacts] == ["+14155550100"]  # E.164, prefix stripped
    conversations = await _rows(services, Conversation)
    assert [c.channel for c in conversations] == ["whatsapp"]
    stored = await _rows(services, Message)
    assert [(m.direction, m.status) for m in stored] == [("in", "received"), ("out", "sent")]
    assert stored[1].delivery == "twiml"


async def test_retry_of_the_same_message_sid_answers_once(wa: Sms, services: Services) -> None:
    first = await _whatsapp(wa, "where are you located?", sid="SMwa_dup")
    again = await _whatsapp(wa, "where are you located?", sid="SMwa_dup")
    assert again.text == first.text
    assert [m.direction for m in await _rows(services, Message)] == ["in", "out"]


async def test_same_pipeline_rules_apply_on_whatsapp(wa: Sms, services: Services) -> None:
    resp = await _whatsapp(wa, "STOP")
    assert resp.status_code == 200 and "<Message" in resp.text
    contact = (await _rows(services, Contact))[0]
    assert contact.consent == "opted_out"


async def test_bad_or_missing_signature_is_403(wa: Sms) -> None:
    params = {"MessageSid": "SMx", "AccountSid": ACCOUNT_SID, "From": CUSTOMER, "To": OURS, "Body": "hi"}
    assert (await wa.post("/whatsapp/sms", params, signature="bm90IGEgc2lnbmF0dXJl")).status_code == 403
    assert (await wa.post("/whatsapp/sms", params, signature="")).status_code == 403
    # A signature made for the SMS URL does not open the WhatsApp one.
    sms_sig = wa.sign("/twilio/sms", params)
    assert (await wa.post("/whatsapp/sms", params, signature=sms_sig)).status_code == 403


async def test_wrong_account_is_403_and_non_whatsapp_sender_is_400(wa: Sms) -> None:
    resp = await _whatsapp(wa, "hi", AccountSid="AC" + "9" * 32)
    assert resp.status_code == 403
    resp = await _whatsapp(wa, "hi", sender="+14155550100")
    assert resp.status_code == 400


async def test_sms_router_is_untouched_beside_whatsapp(wa: Sms, services: Services) -> None:
    resp = await wa.text("where are you located?", sender="+14155550100")
    assert resp.status_code == 200 and "12 Maple St" in resp.text
    assert [c.phone for c in await _rows(services, Contact)] == ["+14155550100"]


async def test_slow_turn_replies_over_rest_as_a_whatsapp_message(wa: Sms, services: Services) -> None:
    services.settings.turn_budget_s = 0.05
    real = services.pipeline.provider.understand

    async def slow(req: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(req)

    services.pipeline.provider.understand = slow  # type: ignore[method-assign]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API).mock(
            return_value=httpx.Response(
                201,
                json={
                    "sid": "SMwarest",
                    "status": "queued",
                    "to": CUSTOMER,
                    "from": OURS,
                    "body": "x",
                    "account_sid": ACCOUNT_SID,
                },
            )
        )
        resp = await _whatsapp(wa, "where are you located?")
        assert resp.text.endswith("<Response/>")
        for _ in range(60):
            await asyncio.sleep(0.05)
            if route.called:
                break
        form = dict(httpx.QueryParams(route.calls[0].request.content.decode()))
        assert (form["To"], form["From"]) == (CUSTOMER, OURS)
        assert "12 Maple St" in form["Body"]
    for _ in range(20):
        out = [m for m in await _rows(services, Message) if m.direction == "out"]
        if out and out[0].provider_message_id:
            break
        await asyncio.sleep(0.05)
    assert (out[0].delivery, out[0].provider_message_id) == ("rest", "SMwarest")


# -- addresses, window, templates ---------------------------------------------------------------------


def test_addresses() -> None:
    assert strip_address("whatsapp:+14155550100") == "+14155550100"
    assert strip_address(" WhatsApp:+14155550100 ") == "+14155550100"
    assert address("+14155550100") == "whatsapp:+14155550100"
    assert address("whatsapp:+14155550100") == "whatsapp:+14155550100"
    for bad in ("+14155550100", "whatsapp:", "", "sms:+1415"):
        with pytest.raises(ChannelError):
            strip_address(bad)


def test_service_window() -> None:
    h = dt.timedelta(hours=1)
    assert in_service_window(NOW - 1 * h, NOW)
    assert in_service_window(NOW - 24 * h + dt.timedelta(seconds=1), NOW)
    assert not in_service_window(NOW - 24 * h, NOW)  # the window is under 24 hours
    assert not in_service_window(NOW - 72 * h, NOW)
    assert not in_service_window(None, NOW)  # never wrote: only templates
    assert in_service_window(NOW + dt.timedelta(seconds=5), NOW)  # clock skew is not "outside"
    with pytest.raises(ValueError):
        in_service_window(NOW.replace(tzinfo=None), NOW)


def test_messages_textdesk_starts_need_a_template_outside_the_window() -> None:
    reminder = Template("HX" + "a" * 32, {"1": "Tue Mar 3", "2": "3:00 PM"})
    inside = plan_outbound("See you tomorrow at 3!", last_inbound_at=NOW - dt.timedelta(hours=2), now=NOW)
    assert inside == OutboundPlan("session", body="See you tomorrow at 3!")
    with pytest.raises(TemplateRequired):
        plan_outbound("See you tomorrow at 3!", last_inbound_at=NOW - dt.timedelta(days=3), now=NOW)
    outside = plan_outbound("See you tomorrow at 3!", last_inbound_at=None, now=NOW, template=reminder)
    assert outside == OutboundPlan("template", template=reminder)
    with pytest.raises(ValueError):
        Template("MG123")


async def test_sender_sends_session_and_template_messages(services: Services) -> None:
    sender = WhatsAppSender(services.twilio, "+14155238886")
    with respx.mock() as mock:
        route = mock.post(API).mock(
            side_effect=[
                httpx.Response(201, json={"sid": "SM1", "status": "queued", "account_sid": ACCOUNT_SID}),
                httpx.Response(201, json={"sid": "SM2", "status": "queued", "account_sid": ACCOUNT_SID}),
                httpx.Response(
                    400,
                    json={
                        "code": 63016,
                        "status": 400,
                        "more_info": "https://www.twilio.com/docs/errors/63016",
                        "message": "Failed to send freeform message because you are outside the "
                        "allowed window. Please use a Template.",
                    },
                ),
            ]
        )
        ok = await sender.send("+14155550100", "Your haircut is confirmed.", 4)
        plan = plan_outbound(
            "x", last_inbound_at=None, now=NOW, template=Template("HX" + "b" * 32, {"1": "Ana"})
        )
        templ = await sender.send_planned("+14155550100", plan, 5)
        late = await sender.send("+14155550100", "late free-form", 6)
    first, second = (dict(httpx.QueryParams(c.request.content.decode())) for c in route.calls[:2])
    assert (ok.ok, ok.provider_message_id) == (True, "SM1")
    callback = first.pop("StatusCallback")
    assert first == {"To": CUSTOMER, "From": OURS, "Body": "Your haircut is confirmed."}
    assert callback.endswith("/twilio/status?m=4")
    assert (templ.ok, templ.provider_message_id) == (True, "SM2")
    assert second["ContentSid"] == "HX" + "b" * 32 and json.loads(second["ContentVariables"]) == {"1": "Ana"}
    assert "Body" not in second and second["StatusCallback"].endswith("/twilio/status?m=5")
    assert (late.ok, late.error_code, late.retryable, late.error) == (False, 63016, False, "rejected")
