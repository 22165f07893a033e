"""CRM events, the signed generic webhook, the HubSpot adapter and the non-blocking sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pytest
import respx

from integrations._http import RetryPolicy
from integrations.crm.events import (
    EVENT_TYPES,
    CrmEvent,
    booking_event,
    contact_event,
    escalation_event,
    tag_event,
)
from integrations.crm.hubspot import HubSpotDestination, note_for
from integrations.crm.sink import MemorySink, QueueSink
from integrations.crm.webhook import SIGNATURE_HEADER, WebhookDestination, verify_signature
from integrations.errors import DeliveryFailed, WebhookSignatureError
from integrations.signing import compute_signature
from store.models import Booking, Contact
from textdesk.clock import FrozenClock

NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
HOOK = "https://crm.example.com/hooks/textdesk"
SECRET = "whsec_textdesk_test"
HS = "https://api.hubapi.com"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _contact(**over: Any) -> Contact:
    return Contact(
        id=7,
        phone="+12125550123",
        name="Ana Lopez",
        email="ana@example.com",
        tags=["vip"],
        consent="opted_in",
        **over,
    )


def _booking() -> Booking:
    start = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)
    return Booking(
        id="bk_1",
        contact_id=7,
        service="haircut",
        provider="Kim",
        start=start,
        end=start + dt.timedelta(minutes=45),
    )


def _event(kind: str = "booking.created") -> CrmEvent:
    return booking_event(
        kind,
        _contact(),
        _booking(),
        NOW,
        timezone="America/New_York",  # type: ignore[arg-type]
        event_id="evt_fixed",
    )


# -- events ------------------------------------------------------------------------------------------


def test_event_json_is_stable_and_round_trips() -> None:
    body = _event().to_json()
    assert body == (
        '{"booking":{"end":"2026-03-03T20:45:00Z","external_id":null,"id":"bk_1","previous_start":null,'
        '"provider":"Kim","service":"haircut","start":"2026-03-03T20:00:00Z","status":"active",'
        '"timezone":"America/New_York"},"contact":{"consent":"opted_in","email":"ana@example.com","id":7,'
        '"name":"Ana Lopez","phone":"+12125550123","tags":["vip"]},"escalation":null,"id":"evt_fixed",'
        '"occurred_at":"2026-03-02T14:00:00Z","tag":null,"type":"booking.created","version":1}'
    )
    assert CrmEvent.from_json(body) == _event()
    assert CrmEvent.from_json(body).to_json() == body


def test_every_event_type_has_a_builder() -> None:
    c, at = _contact(), NOW
    built = [
        contact_event("contact.created", c, at),
        contact_event("contact.updated", c, at),
        tag_event(c, "vip", at),
        *(
            booking_event(k, c, _booking(), at)
            for k in (
                "booking.created",
                "booking.rescheduled",  # type: ignore[arg-type]
                "booking.cancelled",
            )
        ),
        escalation_event(c, "billing", "Asked about a refund", at, conversation_id=3),
    ]
    assert sorted(e.type for e in built) == sorted(EVENT_TYPES)
    assert len({e.id for e in built}) == len(built)
    with pytest.raises(ValueError):
        contact_event("contact.created", c, dt.datetime(2026, 3, 2, 9, 0))  # naive time refused


# -- generic webhook ---------------------------------------------------------------------------------


def _webhook(sleeps: Sleeps, attempts: int = 4) -> WebhookDestination:
    return WebhookDestination(
        HOOK,
        SECRET,
        http=httpx.AsyncClient(),
        clock=FrozenClock(NOW),
        retry=RetryPolicy(attempts=attempts, base=0.1, max_wait=30.0, sleep=sleeps),
    )


@respx.mock
async def test_webhook_signature_round_trip() -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(204))
    await _webhook(Sleeps()).deliver(_event())
    req = route.calls[0].request
    body = req.content
    header = req.headers[SIGNATURE_HEADER]
    t = int(NOW.timestamp())
    assert header == f"t={t},v1={compute_signature(SECRET, t, body)}"
    assert req.headers["X-Textdesk-Event"] == "booking.created"
    assert req.headers["X-Textdesk-Delivery"] == "evt_fixed"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(body)["booking"]["id"] == "bk_1"
    verify_signature(SECRET, header, body, now=t + 10)  # a receiver accepts it
    with pytest.raises(WebhookSignatureError):
        verify_signature("wrong-secret", header, body, now=t)
    with pytest.raises(WebhookSignatureError):
        verify_signature(SECRET, header, body.replace(b"haircut", b"colour!"), now=t)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature(SECRET, header, body, now=t + 301)


@respx.mock
async def test_webhook_retries_then_succeeds() -> None:
    sleeps = Sleeps()
    route = respx.post(HOOK).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("connection refused"),
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    await _webhook(sleeps).deliver(_event())
    assert route.call_count == 4
    assert sleeps[2] == 3.0 and len(sleeps) == 3
    assert len({c.request.content for c in route.calls}) == 1  # the same body every attempt


@respx.mock
async def test_webhook_gives_up_after_bounded_attempts() -> None:
    sleeps = Sleeps()
    route = respx.post(HOOK).mock(return_value=httpx.Response(500))
    with pytest.raises(DeliveryFailed) as err:
        await _webhook(sleeps, attempts=3).deliver(_event())
    assert not err.value.permanent and route.call_count == 3


@respx.mock
async def test_webhook_client_error_is_permanent_and_not_retried() -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(410))
    with pytest.raises(DeliveryFailed) as err:
        await _webhook(Sleeps()).deliver(_event())
    assert err.value.permanent and err.value.status == 410 and route.call_count == 1


def test_webhook_requires_a_secret() -> None:
    with pytest.raises(ValueError):
        WebhookDestination(HOOK, "")


# -- HubSpot -----------------------------------------------------------------------------------------


def _hubspot(sleeps: Sleeps | None = None) -> HubSpotDestination:
    return HubSpotDestination(
        "pat-na1-test",
        http=httpx.AsyncClient(),
        retry=RetryPolicy(
            attempts=4, base=0.1, max_wait=30.0, sleep=sleeps if sleeps is not None else Sleeps()
        ),
    )


def _hs_contact(cid: str) -> dict[str, Any]:
    return {
        "id": cid,
        "properties": {
            "createdate": "2026-03-01T10:00:00.000Z",
            "email": "ana@example.com",
            "firstname": "Ana",
            "hs_object_id": cid,
            "lastname": "Lopez",
            "lastmodifieddate": "2026-03-01T10:00:00.000Z",
            "phone": "+12125550123",
        },
        "createdAt": "2026-03-01T10:00:00.000Z",
        "updatedAt": "2026-03-01T10:00:00.000Z",
        "archived": False,
    }


@respx.mock
async def test_hubspot_creates_contact_and_note_for_a_new_phone() -> None:
    search = respx.post(f"{HS}/crm/v3/objects/contacts/search").mock(
        return_value=httpx.Response(200, json={"total": 0, "results": []})
    )
    create = respx.post(f"{HS}/crm/v3/objects/contacts").mock(
        return_value=httpx.Response(201, json=_hs_contact("501"))
    )
    note = respx.post(f"{HS}/crm/v3/objects/notes").mock(
        return_value=httpx.Response(
            201,
            json={
                "id": "9001",
                "properties": {"hs_note_body": "x"},
                "createdAt": "2026-03-02T14:00:00.000Z",
                "updatedAt": "2026-03-02T14:00:00.000Z",
                "archived": False,
            },
        )
    )
    await _hubspot().deliver(_event())

    q = json.loads(search.calls[0].request.content)
    assert q["filterGroups"][0]["filters"] == [
        {"propertyName": "phone", "operator": "EQ", "value": "+12125550123"}
    ]
    assert q["filterGroups"][1]["filters"][0]["propertyName"] == "mobilephone"
    assert search.calls[0].request.headers["Authorization"] == "Bearer pat-na1-test"
    assert json.loads(create.calls[0].request.content) == {
        "properties": {
            "phone": "+12125550123",
            "firstname": "Ana",
            "lastname": "Lopez",
            "email": "ana@example.com",
        }
    }
    sent = json.loads(note.calls[0].request.content)
    assert sent["associations"] == [
        {"to": {"id": "501"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}
    ]
    assert sent["properties"]["hs_timestamp"] == "2026-03-02T14:00:00.000Z"
    assert sent["properties"]["hs_note_body"] == (
        "Booked by text: haircut with Kim, Tue Mar 03 2026, 15:00 (America/New_York). [textdesk bk_1]"
    )


@respx.mock
async def test_hubspot_updates_an_existing_contact_and_caches_its_id() -> None:
    search = respx.post(f"{HS}/crm/v3/objects/contacts/search").mock(
        return_value=httpx.Response(200, json={"total": 1, "results": [_hs_contact("42")]})
    )
    update = respx.patch(f"{HS}/crm/v3/objects/contacts/42").mock(
        return_value=httpx.Response(200, json=_hs_contact("42"))
    )
    note = respx.post(f"{HS}/crm/v3/objects/notes").mock(return_value=httpx.Response(201, json={"id": "1"}))
    hs = _hubspot()
    await hs.deliver(contact_event("contact.updated", _contact(), NOW))
    await hs.deliver(tag_event(_contact(), "vip", NOW))
    assert search.call_count == 1  # the second event used the cached id
    assert update.call_count == 2
    assert note.call_count == 1  # contact.updated leaves no note; tag.added does
    assert (
        json.loads(note.calls[0].request.content)["properties"]["hs_note_body"] == "Tagged by textdesk: vip"
    )


@respx.mock
async def test_hubspot_adopts_the_existing_record_on_409() -> None:
    respx.post(f"{HS}/crm/v3/objects/contacts/search").mock(
        return_value=httpx.Response(200, json={"total": 0, "results": []})
    )
    respx.post(f"{HS}/crm/v3/objects/contacts").mock(
        return_value=httpx.Response(
            409,
            json={
                "status": "error",
                "message": "Contact already exists. Existing ID: 777",
                "correlationId": "0f7f7e5e-1d9a-4b0e-9d55-6b8f2e1c1a11",
                "category": "CONFLICT",
            },
        )
    )
    update = respx.patch(f"{HS}/crm/v3/objects/contacts/777").mock(return_value=httpx.Response(200, json={}))
    assert await _hubspot().upsert_contact(contact_event("contact.created", _contact(), NOW).contact) == "777"
    assert update.called


@respx.mock
async def test_hubspot_429_with_retry_after_and_5xx_are_retried() -> None:
    sleeps = Sleeps()
    rate_limited = {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c0ffee",
        "policyName": "SECONDLY",
    }
    search = respx.post(f"{HS}/crm/v3/objects/contacts/search").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}, json=rate_limited),
            httpx.Response(502, text="Bad Gateway"),
            httpx.Response(200, json={"total": 1, "results": [_hs_contact("42")]}),
        ]
    )
    respx.patch(f"{HS}/crm/v3/objects/contacts/42").mock(return_value=httpx.Response(200, json={}))
    respx.post(f"{HS}/crm/v3/objects/notes").mock(return_value=httpx.Response(201, json={"id": "1"}))
    await _hubspot(sleeps).deliver(escalation_event(_contact(), "billing", "Wants a refund", NOW))
    assert search.call_count == 3
    assert sleeps[0] == 1.0 and len(sleeps) == 2


@respx.mock
async def test_hubspot_bad_token_is_permanent() -> None:
    route = respx.post(f"{HS}/crm/v3/objects/contacts/search").mock(
        return_value=httpx.Response(
            401,
            json={
                "status": "error",
                "message": "Authentication credentials not found.",
                "category": "INVALID_AUTHENTICATION",
            },
        )
    )
    with pytest.raises(DeliveryFailed) as err:
        await _hubspot().deliver(_event())
    assert err.value.permanent and route.call_count == 1


def test_notes_for_each_kind() -> None:
    moved = booking_event(
        "booking.rescheduled",
        _contact(),
        _booking(),
        NOW,
        timezone="America/New_York",
        previous_start=dt.datetime(2026, 3, 3, 19, 0, tzinfo=dt.UTC),
    )
    assert note_for(moved) == (
        "Rescheduled by text: haircut with Kim, Tue Mar 03 2026, 15:00 (America/New_York). "
        "Was Tue Mar 03 2026, 14:00 (America/New_York). [textdesk bk_1]"
    )
    assert note_for(escalation_event(_contact(), "complaint", "Unhappy with colour", NOW)) == (
        "Conversation handed to staff (complaint). Unhappy with colour"
    )
    assert note_for(contact_event("contact.created", _contact(), NOW)) is None


# -- the sink ----------------------------------------------------------------------------------------


class SlowDestination:
    name = "slow"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.got: list[str] = []

    async def deliver(self, event: CrmEvent) -> None:
        await self.release.wait()
        self.got.append(event.id)


class BrokenDestination:
    name = "broken"

    async def deliver(self, event: CrmEvent) -> None:
        raise DeliveryFailed("nope", permanent=True)


async def test_emit_never_blocks_and_the_worker_delivers_in_order() -> None:
    slow = SlowDestination()
    dead: list[tuple[str, str]] = []

    async def on_dead(event: CrmEvent, dest: str, exc: Exception) -> None:
        dead.append((event.id, dest))

    sink = QueueSink([BrokenDestination(), slow], maxsize=2, on_dead=on_dead)
    await sink.start()
    events = [contact_event("contact.updated", _contact(), NOW, event_id=f"evt_{i}") for i in range(4)]
    for e in events:
        sink.emit(e)  # synchronous: returns at once even though the destination is stuck
    await asyncio.sleep(0)
    assert sink.stats.accepted + sink.stats.dropped == 4 and sink.stats.dropped >= 1
    slow.release.set()
    await asyncio.wait_for(sink.drain(), 2)
    assert slow.got == [e.id for e in events][: len(slow.got)] and len(slow.got) == sink.stats.accepted
    assert [d for _, d in dead] == [
        "broken"
    ] * sink.stats.accepted  # one destination failing spares the other
    await sink.stop()


async def test_stop_delivers_what_is_queued() -> None:
    slow = SlowDestination()
    slow.release.set()
    sink = QueueSink([slow])
    await sink.start()
    sink.emit(_event())
    await sink.stop(grace=2)
    assert slow.got == ["evt_fixed"] and sink.stats.delivered == 1


def test_memory_sink_records() -> None:
    sink = MemorySink()
    sink.emit(_event())
    assert [e.id for e in sink.events] == ["evt_fixed"]
