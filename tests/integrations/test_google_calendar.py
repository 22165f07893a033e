"""Google Calendar v3 adapter against respx serving Google's real URLs and JSON shapes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from integrations._http import RetryPolicy
from integrations.calendar.base import BookingInfo
from integrations.calendar.google import GoogleCalendar, GoogleCalendarConfig, event_id_for
from integrations.calendar.google_auth import (
    GOOGLE_TOKEN_URI,
    RefreshingToken,
    ServiceAccountToken,
    StaticToken,
)
from integrations.errors import CalendarConflict, CalendarNotFound, CalendarUnavailable
from textdesk.clock import FrozenClock
from textdesk.errors import ConfigurationError

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
START = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)  # Tue 15:00 in New York
END = START + dt.timedelta(minutes=45)
API = "https://www.googleapis.com/calendar/v3"
HOST = "www.googleapis.com"
KIM_CAL = "kim.salon@group.calendar.google.com"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _calendar(
    sleeps: Sleeps,
    *,
    tokens: Any = None,
    provider_calendars: dict[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> GoogleCalendar:
    return GoogleCalendar(
        GoogleCalendarConfig("primary", provider_calendars or {}),
        tokens or StaticToken("ya29.static"),
        NY,
        providers=["Kim", "Luis"],
        http=http or httpx.AsyncClient(),
        retry=RetryPolicy(attempts=3, base=0.1, max_wait=5.0, sleep=sleeps),
    )


def _booking(bid: str = "bk_g1", provider: str | None = "Kim") -> BookingInfo:
    return BookingInfo(bid, "haircut", START, END, provider, "Ana", "+12125550123")


def _event(eid: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "calendar#event",
        "etag": '"3181161784712000"',
        "id": eid,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
        "created": "2026-03-01T10:00:00.000Z",
        "updated": "2026-03-01T10:00:00.000Z",
        "summary": "Busy",
        "start": {"dateTime": start},
        "end": {"dateTime": end},
        "iCalUID": f"{eid}@google.com",
        "sequence": 0,
        "eventType": "default",
        **extra,
    }


def _list(items: list[dict[str, Any]], next_page: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": '"p3"',
        "summary": "Maple Street Salon",
        "updated": "2026-03-01T10:00:00.000Z",
        "timeZone": "America/New_York",
        "accessRole": "owner",
        "defaultReminders": [],
        "items": items,
    }
    if next_page:
        body["nextPageToken"] = next_page
    return body


def _google_error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [
                {
                    "domain": "usageLimits" if "Limit" in reason else "global",
                    "reason": reason,
                    "message": message,
                }
            ],
        }
    }


def _events_route(calendar: str = "primary") -> respx.Route:
    return respx.get(host=HOST, path=f"/calendar/v3/calendars/{calendar}/events")


@respx.mock
async def test_busy_reads_events_list_with_transparency_all_day_and_pages(sleeps: Sleeps) -> None:
    route = _events_route().mock(
        side_effect=[
            httpx.Response(
                200,
                json=_list(
                    [
                        _event(
                            "a1",
                            "2026-03-03T15:00:00-05:00",
                            "2026-03-03T15:45:00-05:00",
                            extendedProperties={
                                "private": {"textdesk_booking_id": "bk_1", "textdesk_provider": "kim"}
                            },
                        ),
                        _event(
                            "free",
                            "2026-03-03T11:00:00-05:00",
                            "2026-03-03T12:00:00-05:00",
                            transparency="transparent",
                        ),
                        _event(
                            "wl",
                            "2026-03-03T09:00:00-05:00",
                            "2026-03-03T18:00:00-05:00",
                            eventType="workingLocation",
                        ),
                    ],
                    next_page="page-2",
                ),
            ),
            httpx.Response(
                200,
                json=_list(
                    [
                        {
                            **_event("day", "x", "y"),
                            "start": {"date": "2026-03-04"},
                            "end": {"date": "2026-03-05"},
                        },
                        {"id": "gone", "status": "cancelled"},
                    ]
                ),
            ),
        ]
    )
    cal = _calendar(sleeps)
    busy = await cal.busy(START - dt.timedelta(hours=12), START + dt.timedelta(days=2))
    assert [(b.start, b.end, b.provider, b.ref) for b in busy] == [
        (START, END, "Kim", "bk_1"),
        (dt.datetime(2026, 3, 4, 5, tzinfo=dt.UTC), dt.datetime(2026, 3, 5, 5, tzinfo=dt.UTC), None, None),
    ]
    first, second = (c.request for c in route.calls)
    q1 = parse_qs(first.url.query.decode())
    assert q1["singleEvents"] == ["true"] and q1["timeMin"] == ["2026-03-03T08:00:00Z"]
    assert "pageToken" not in q1 and parse_qs(second.url.query.decode())["pageToken"] == ["page-2"]
    assert first.headers["Authorization"] == "Bearer ya29.static"


@respx.mock
async def test_create_on_shared_calendar_checks_inserts_and_rechecks(sleeps: Sleeps) -> None:
    eid = event_id_for("bk_g1")
    mine = _event(
        eid,
        "2026-03-03T20:00:00Z",
        "2026-03-03T20:45:00Z",
        extendedProperties={"private": {"textdesk_booking_id": "bk_g1", "textdesk_provider": "Kim"}},
    )
    luis = _event(
        "l1",
        "2026-03-03T20:00:00Z",
        "2026-03-03T21:00:00Z",
        extendedProperties={"private": {"textdesk_provider": "Luis"}},
    )
    listing = _events_route().mock(
        side_effect=[httpx.Response(200, json=_list([luis])), httpx.Response(200, json=_list([luis, mine]))]
    )
    insert = respx.post(host=HOST, path="/calendar/v3/calendars/primary/events").mock(
        return_value=httpx.Response(200, json=mine)
    )
    cal = _calendar(sleeps)
    ext = await cal.create(_booking())
    assert ext == f"primary/{eid}"
    assert listing.call_count == 2 and insert.call_count == 1
    sent = json.loads(insert.calls[0].request.content)
    assert sent["id"] == eid and set(eid[2:]) <= set("0123456789abcdef")
    assert sent["extendedProperties"]["private"] == {
        "textdesk_booking_id": "bk_g1",
        "textdesk_service": "haircut",
        "textdesk_provider": "Kim",
    }
    assert sent["start"] == {"dateTime": "2026-03-03T20:00:00Z", "timeZone": "America/New_York"}
    assert sent["transparency"] == "opaque"
    assert insert.calls[0].request.url.params["sendUpdates"] == "none"


@respx.mock
async def test_create_on_provider_calendar_uses_freebusy_and_refuses_a_taken_slot(sleeps: Sleeps) -> None:
    fb = respx.post(f"{API}/freeBusy").mock(
        return_value=httpx.Response(
            200,
            json={
                "kind": "calendar#freeBusy",
                "timeMin": "2026-03-03T20:00:00.000Z",
                "timeMax": "2026-03-03T20:45:00.000Z",
                "calendars": {
                    KIM_CAL: {"busy": [{"start": "2026-03-03T20:30:00Z", "end": "2026-03-03T21:00:00Z"}]},
                    "primary": {"busy": []},
                },
            },
        )
    )
    insert = respx.post(host=HOST, path__regex=r"/calendar/v3/calendars/.*/events").mock(
        return_value=httpx.Response(200, json={})
    )
    cal = _calendar(sleeps, provider_calendars={"Kim": KIM_CAL})
    with pytest.raises(CalendarConflict) as err:
        await cal.create(_booking())
    assert err.value.provider == "Kim"
    assert not insert.called
    body = json.loads(fb.calls[0].request.content)
    assert body == {
        "timeMin": "2026-03-03T20:00:00Z",
        "timeMax": "2026-03-03T20:45:00Z",
        "timeZone": "UTC",
        "items": [{"id": KIM_CAL}, {"id": "primary"}],
    }


@respx.mock
async def test_create_on_provider_calendar_free_slot(sleeps: Sleeps) -> None:
    respx.post(f"{API}/freeBusy").mock(
        return_value=httpx.Response(
            200,
            json={"kind": "calendar#freeBusy", "calendars": {KIM_CAL: {"busy": []}, "primary": {"busy": []}}},
        )
    )
    eid = event_id_for("bk_g1")
    mine = _event(
        eid,
        "2026-03-03T20:00:00Z",
        "2026-03-03T20:45:00Z",
        extendedProperties={"private": {"textdesk_booking_id": "bk_g1"}},
    )
    kim_path = f"/calendar/v3/calendars/{KIM_CAL}/events"
    insert = respx.post(host=HOST, path=kim_path).mock(return_value=httpx.Response(200, json=mine))
    respx.get(host=HOST, path=kim_path).mock(return_value=httpx.Response(200, json=_list([mine])))
    _events_route().mock(return_value=httpx.Response(200, json=_list([])))
    cal = _calendar(sleeps, provider_calendars={"Kim": KIM_CAL})
    assert await cal.create(_booking()) == f"{KIM_CAL}/{eid}"
    assert insert.call_count == 1
    assert b"/calendars/kim.salon%40group.calendar.google.com/events" in insert.calls[0].request.url.raw_path


@respx.mock
async def test_create_that_loses_a_race_deletes_its_event(sleeps: Sleeps) -> None:
    eid = event_id_for("bk_g1")
    mine = _event(
        eid,
        "2026-03-03T20:00:00Z",
        "2026-03-03T20:45:00Z",
        extendedProperties={"private": {"textdesk_booking_id": "bk_g1", "textdesk_provider": "Kim"}},
    )
    rival = _event("rival", "2026-03-03T20:15:00Z", "2026-03-03T21:00:00Z")  # staff, no provider: everyone
    listing = _events_route().mock(
        side_effect=[
            httpx.Response(200, json=_list([])),  # before insert: free
            httpx.Response(200, json=_list([mine, rival])),  # after insert: a rival appeared
            httpx.Response(200, json=_list([rival])),  # after our undo and a pause: the rival stayed
        ]
    )
    respx.post(host=HOST, path="/calendar/v3/calendars/primary/events").mock(
        return_value=httpx.Response(200, json=mine)
    )
    delete = respx.delete(host=HOST, path=f"/calendar/v3/calendars/primary/events/{eid}").mock(
        return_value=httpx.Response(204)
    )
    with pytest.raises(CalendarConflict, match="already taken"):
        await _calendar(sleeps).create(_booking())
    assert delete.call_count == 1 and listing.call_count == 3


@respx.mock
async def test_401_refreshes_the_token_once_and_retries(sleeps: Sleeps) -> None:
    token = respx.post(GOOGLE_TOKEN_URI).mock(
        return_value=httpx.Response(
            200,
            json={
                "access_token": "ya29.fresh",
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/calendar",
                "token_type": "Bearer",
            },
        )
    )
    unauthorized = {
        "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials.",
            "errors": [
                {
                    "message": "Invalid Credentials",
                    "domain": "global",
                    "reason": "authError",
                    "location": "Authorization",
                    "locationType": "header",
                }
            ],
            "status": "UNAUTHENTICATED",
        }
    }
    route = _events_route().mock(
        side_effect=[httpx.Response(401, json=unauthorized), httpx.Response(200, json=_list([]))]
    )
    http = httpx.AsyncClient()
    tokens = RefreshingToken(
        http,
        client_id="123.apps.googleusercontent.com",
        client_secret="GOCSPX-secret",
        refresh_token="1//0refresh",
        access_token="ya29.old",
        clock=FrozenClock(NOW),
    )
    assert await _calendar(sleeps, tokens=tokens, http=http).busy(START, END) == []
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer ya29.old",
        "Bearer ya29.fresh",
    ]
    assert parse_qs(token.calls[0].request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["1//0refresh"],
        "client_id": ["123.apps.googleusercontent.com"],
        "client_secret": ["GOCSPX-secret"],
    }
    assert sleeps == []  # a refresh is not a backoff


@respx.mock
async def test_revoked_refresh_token_is_calendar_unavailable(sleeps: Sleeps) -> None:
    respx.post(GOOGLE_TOKEN_URI).mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        )
    )
    http = httpx.AsyncClient()
    tokens = RefreshingToken(
        http, client_id="c", client_secret="s", refresh_token="r", clock=FrozenClock(NOW)
    )
    with pytest.raises(CalendarUnavailable, match="expired or revoked"):
        await _calendar(sleeps, tokens=tokens, http=http).busy(START, END)


@respx.mock
async def test_static_token_rejected_is_unavailable(sleeps: Sleeps) -> None:
    _events_route().mock(return_value=httpx.Response(401, json={"error": {"code": 401, "message": "x"}}))
    with pytest.raises(CalendarUnavailable, match="no refresh token"):
        await _calendar(sleeps).busy(START, END)


@respx.mock
async def test_rate_limits_and_server_errors_are_retried_with_backoff(sleeps: Sleeps) -> None:
    route = _events_route().mock(
        side_effect=[
            httpx.Response(403, json=_google_error(403, "rateLimitExceeded", "Rate Limit Exceeded")),
            httpx.Response(
                429,
                headers={"Retry-After": "2"},
                json=_google_error(429, "rateLimitExceeded", "Rate Limit Exceeded"),
            ),
            httpx.Response(200, json=_list([])),
        ]
    )
    assert await _calendar(sleeps).busy(START, END) == []
    assert route.call_count == 3
    assert len(sleeps) == 2 and sleeps[1] == 2.0 and 0 <= sleeps[0] <= 5.0


@respx.mock
async def test_persistent_5xx_gives_up_as_unavailable(sleeps: Sleeps) -> None:
    route = _events_route().mock(
        return_value=httpx.Response(503, json=_google_error(503, "backendError", "Backend Error"))
    )
    with pytest.raises(CalendarUnavailable, match="after retries"):
        await _calendar(sleeps).busy(START, END)
    assert route.call_count == 3 and len(sleeps) == 2


@respx.mock
async def test_retry_after_longer_than_the_budget_is_not_waited_out(sleeps: Sleeps) -> None:
    route = _events_route().mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(CalendarUnavailable):
        await _calendar(sleeps).busy(START, END)
    assert route.call_count == 1 and sleeps == []


@respx.mock
async def test_forbidden_is_not_retried(sleeps: Sleeps) -> None:
    route = _events_route().mock(
        return_value=httpx.Response(
            403, json=_google_error(403, "forbidden", "The caller does not have permission")
        )
    )
    with pytest.raises(CalendarUnavailable, match="permission"):
        await _calendar(sleeps).busy(START, END)
    assert route.call_count == 1


@respx.mock
async def test_move_patches_start_and_end(sleeps: Sleeps) -> None:
    eid = event_id_for("bk_g1")
    event = _event(
        eid,
        "2026-03-03T20:00:00Z",
        "2026-03-03T20:45:00Z",
        extendedProperties={"private": {"textdesk_booking_id": "bk_g1", "textdesk_provider": "Kim"}},
    )
    respx.get(host=HOST, path=f"/calendar/v3/calendars/primary/events/{eid}").mock(
        return_value=httpx.Response(200, json=event)
    )
    moved = {
        **event,
        "start": {"dateTime": "2026-03-03T20:30:00Z"},
        "end": {"dateTime": "2026-03-03T21:15:00Z"},
    }
    _events_route().mock(
        side_effect=[httpx.Response(200, json=_list([event])), httpx.Response(200, json=_list([moved]))]
    )
    patch = respx.patch(host=HOST, path=f"/calendar/v3/calendars/primary/events/{eid}").mock(
        return_value=httpx.Response(200, json=moved)
    )
    new = START + dt.timedelta(minutes=30)
    await _calendar(sleeps).move(f"primary/{eid}", new, new + dt.timedelta(minutes=45))
    assert json.loads(patch.calls[0].request.content) == {
        "start": {"dateTime": "2026-03-03T20:30:00Z", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-03-03T21:15:00Z", "timeZone": "America/New_York"},
    }


@respx.mock
async def test_move_of_a_deleted_event_and_idempotent_cancel(sleeps: Sleeps) -> None:
    respx.get(host=HOST, path="/calendar/v3/calendars/primary/events/tdgone").mock(
        return_value=httpx.Response(404, json=_google_error(404, "notFound", "Not Found"))
    )
    delete = respx.delete(host=HOST, path="/calendar/v3/calendars/primary/events/tdgone").mock(
        side_effect=[
            httpx.Response(204),
            httpx.Response(410, json=_google_error(410, "deleted", "Resource has been deleted")),
        ]
    )
    cal = _calendar(sleeps)
    with pytest.raises(CalendarNotFound):
        await cal.move("primary/tdgone", START, END)
    await cal.cancel("primary/tdgone")
    await cal.cancel("primary/tdgone")
    assert delete.call_count == 2


def test_service_account_needs_cryptography_or_signs_an_rs256_assertion() -> None:
    from jwt.algorithms import has_crypto

    info = {
        "type": "service_account",
        "client_email": "textdesk@proj.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMII...\n-----END PRIVATE KEY-----\n",
        "private_key_id": "abc",
        "token_uri": GOOGLE_TOKEN_URI,
    }
    if not has_crypto:
        with pytest.raises(ConfigurationError, match="cryptography"):
            ServiceAccountToken(httpx.AsyncClient(), info)
        return
    pytest.importorskip("cryptography")  # pragma: no cover - covered where cryptography is installed


@respx.mock
async def test_a_retried_insert_that_finds_its_own_event_is_a_success(sleeps: Sleeps) -> None:
    eid = event_id_for("bk_g1")
    mine = _event(
        eid,
        "2026-03-03T20:00:00Z",
        "2026-03-03T20:45:00Z",
        extendedProperties={"private": {"textdesk_booking_id": "bk_g1"}},
    )
    _events_route().mock(
        side_effect=[httpx.Response(200, json=_list([])), httpx.Response(200, json=_list([mine]))]
    )
    respx.post(host=HOST, path="/calendar/v3/calendars/primary/events").mock(
        return_value=httpx.Response(
            409, json=_google_error(409, "duplicate", "The requested identifier already exists.")
        )
    )
    respx.get(host=HOST, path=f"/calendar/v3/calendars/primary/events/{eid}").mock(
        return_value=httpx.Response(200, json=mine)
    )
    assert await _calendar(sleeps).create(_booking()) == f"primary/{eid}"


@respx.mock
async def test_after_a_mutual_back_off_the_retry_uses_a_fresh_event_id(sleeps: Sleeps) -> None:
    """Two workers inserted at once, saw each other and both deleted. After a pause the slot is
    free again; Google keeps deleted ids, so the second insert needs a new one."""
    eid = event_id_for("bk_g1")
    private = {"private": {"textdesk_booking_id": "bk_g1", "textdesk_provider": "Kim"}}
    mine = _event(eid, "2026-03-03T20:00:00Z", "2026-03-03T20:45:00Z", extendedProperties=private)
    mine2 = {**mine, "id": f"{eid}v1"}
    other = _event(
        "tdother",
        "2026-03-03T20:00:00Z",
        "2026-03-03T20:45:00Z",
        extendedProperties={"private": {"textdesk_booking_id": "bk_other", "textdesk_provider": "Kim"}},
    )
    _events_route().mock(
        side_effect=[
            httpx.Response(200, json=_list([])),
            httpx.Response(200, json=_list([mine, other])),  # contested: undo, pause
            httpx.Response(200, json=_list([])),  # the other worker backed off too
            httpx.Response(200, json=_list([mine2])),  # after the second insert: only ours
        ]
    )
    insert = respx.post(host=HOST, path="/calendar/v3/calendars/primary/events").mock(
        side_effect=[
            httpx.Response(200, json=mine),
            httpx.Response(
                409, json=_google_error(409, "duplicate", "The requested identifier already exists.")
            ),
            httpx.Response(200, json=mine2),
        ]
    )
    respx.get(host=HOST, path=f"/calendar/v3/calendars/primary/events/{eid}").mock(
        return_value=httpx.Response(200, json={**mine, "status": "cancelled"})
    )
    respx.delete(host=HOST, path=f"/calendar/v3/calendars/primary/events/{eid}").mock(
        return_value=httpx.Response(204)
    )
    assert await _calendar(sleeps).create(_booking()) == f"primary/{eid}v1"
    assert [json.loads(c.request.content)["id"] for c in insert.calls] == [eid, eid, f"{eid}v1"]
