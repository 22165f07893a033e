"""The SMS webhook end to end: TwiML, idempotency, bad input, delivery callbacks, REST sends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import respx
from sqlmodel import col, select

from store.models import ConsentEvent, Contact, Message
from tests.conftest import ACCOUNT_SID, Sms


async def messages(services: Any) -> list[Message]:
    async with services.sessions() as s:
        return list(await s.exec(select(Message).order_by(col(Message.id))))


async def contact(services: Any, phone: str = "+12125550123") -> Contact | None:
    async with services.sessions() as s:
        return (await s.exec(select(Contact).where(Contact.phone == phone))).first()


async def test_reply_is_twiml(sms: Sms) -> None:
    resp = await sms.text("where are you located?")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/xml")
    assert resp.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message')
    assert "12 Maple St" in resp.text


async def test_duplicate_message_sid_returns_first_answer_once(sms: Sms, services: Any) -> None:
    first = await sms.text("where are you located?", sid="SMdup1")
    again = await sms.text("where are you located?", sid="SMdup1")
    assert first.status_code == again.status_code == 200
    assert again.text == first.text
    stored = await messages(services)
    assert [m.direction for m in stored] == ["in", "out"]  # one inbound, one reply, nothing more


async def test_concurrent_retries_store_one_message(sms: Sms, services: Any) -> None:
    results = await asyncio.gather(*(sms.text("help", sid="SMrace") for _ in range(4)))
    assert {r.text for r in results} == {results[0].text}
    stored = await messages(services)
    assert sum(m.direction == "in" for m in stored) == 1
    assert sum(m.direction == "out" for m in stored) == 1


async def test_unknown_form_fields_are_ignored(sms: Sms) -> None:
    resp = await sms.text("hi", FancyNewTwilioField="x", NumSegments="1")
    assert resp.status_code == 200


async def test_empty_body_gets_a_defined_answer(sms: Sms) -> None:
    resp = await sms.text("")
    assert resp.status_code == 200
    assert "<Response" in resp.text


async def test_long_body_is_truncated_not_rejected(sms: Sms, services: Any) -> None:
    resp = await sms.text("can i book a haircut " * 100)  # ~2,100 characters
    assert resp.status_code == 200
    inbound = [m for m in await messages(services) if m.direction == "in"]
    assert len(inbound[0].body) == 1600


async def test_emoji_only_body(sms: Sms) -> None:
    resp = await sms.text("😀😀🙏")
    assert resp.status_code == 200
    assert "<Message" in resp.text


async def test_malformed_phone_number_gets_empty_twiml(sms: Sms, services: Any) -> None:
    resp = await sms.text("hi", sender="not-a-number")
    assert resp.status_code == 200
    assert resp.text.endswith("<Response/>")
    assert await messages(services) == []


async def test_missing_from_is_400(sms: Sms) -> None:
    resp = await sms.post("/twilio/sms", {"MessageSid": "SMx", "AccountSid": ACCOUNT_SID, "Body": "hi"})
    assert resp.status_code == 400


async def test_status_callback_updates_delivery(sms: Sms, services: Any) -> None:
    await sms.text("where are you located?")
    out = next(m for m in await messages(services) if m.direction == "out")
    assert out.delivery == "twiml"
    resp = await sms.post(
        "/twilio/status",
        {"MessageSid": "SMout1", "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID},
        query=f"m={out.id}",
    )
    assert resp.status_code in (200, 204)
    # An older status arriving late never moves it backwards.
    await sms.post(
        "/twilio/status",
        {"MessageSid": "SMout1", "MessageStatus": "sent", "AccountSid": ACCOUNT_SID},
        query=f"m={out.id}",
    )
    out2 = next(m for m in await messages(services) if m.id == out.id)
    assert (out2.status, out2.provider_message_id) == ("delivered", "SMout1")


async def test_error_21610_marks_the_contact_opted_out(sms: Sms, services: Any) -> None:
    await sms.text("where are you located?")
    out = next(m for m in await messages(services) if m.direction == "out")
    await sms.post(
        "/twilio/status",
        {
            "MessageSid": "SMo",
            "MessageStatus": "undelivered",
            "ErrorCode": "21610",
            "AccountSid": ACCOUNT_SID,
        },
        query=f"m={out.id}",
    )
    c = await contact(services)
    assert c is not None and c.consent == "opted_out"
    async with services.sessions() as s:
        events = list(await s.exec(select(ConsentEvent)))
    assert [(e.new, e.source) for e in events] == [("opted_out", "carrier_opt_out")]
    # And nothing more is sent to them.
    resp = await sms.text("hello again")
    assert resp.text.endswith("<Response/>")


async def test_slow_turn_answers_empty_twiml_and_sends_over_rest(sms: Sms, services: Any) -> None:
    services.settings.turn_budget_s = 0.05
    real = services.pipeline.provider.understand

    async def slow(req: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(req)

    services.pipeline.provider.understand = slow  # type: ignore[method-assign]
    api = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(api).mock(
            return_value=httpx.Response(
                201,
                json={
                    "sid": "SMrest1",
                    "status": "queued",
                    "to": "+12125550123",
                    "from": "+15005550006",
                    "body": "x",
                    "account_sid": ACCOUNT_SID,
                },
            )
        )
        resp = await sms.text("where are you located?")
        assert resp.text.endswith("<Response/>")
        for _ in range(50):
            await asyncio.sleep(0.05)
            if route.called:
                break
        assert route.call_count == 1
        form = dict(httpx.QueryParams(route.calls[0].request.content.decode()))
        assert form["To"] == "+12125550123" and "12 Maple St" in form["Body"]
        assert form["StatusCallback"].startswith("https://sms.example.com/twilio/status?m=")
    for _ in range(20):
        out = [m for m in await messages(services) if m.direction == "out"]
        if out and out[0].provider_message_id:
            break
        await asyncio.sleep(0.05)
    assert (out[0].delivery, out[0].provider_message_id) == ("rest", "SMrest1")


async def test_rest_send_retries_429_then_succeeds(services: Any) -> None:
    api = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    with respx.mock() as mock:
        route = mock.post(api).mock(
            side_effect=[
                httpx.Response(429, json={"code": 20429, "message": "Too Many Requests", "status": 429}),
                httpx.Response(201, json={"sid": "SMok", "status": "queued", "account_sid": ACCOUNT_SID}),
            ]
        )
        result = await services.twilio.send("+12125550123", "hello", 1)
        assert not result.ok and result.retryable and result.error == "rate_limited"
        result = await services.twilio.send("+12125550123", "hello", 1)
        assert result.ok and result.provider_message_id == "SMok"
        assert route.call_count == 2
