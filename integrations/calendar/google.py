"""Google Calendar (REST API v3) over httpx.

* busy: ``events.list`` with ``singleEvents=true`` on every configured calendar, so recurrences
  come expanded and each event says whose it is (``extendedProperties.private``) and whether it
  blocks time (``transparency``); cancelled and transparent events, and working-location
  entries, are skipped; all-day events block whole days in the calendar's time zone.
* create: ``freeBusy`` on the provider's own calendar (or an ``events.list`` check on a shared
  calendar, where only events for the same provider count), then ``events.insert`` with an event
  id derived from the booking id (a retried insert answers 409 instead of duplicating), then an
  ``events.list`` re-check; a clash deletes our event and raises ``CalendarConflict``.
* move: ``events.get`` + re-check + ``events.patch`` of start/end; cancel: ``events.delete``.

External ids are ``"<calendarId>/<eventId>"`` (event ids never contain a slash).
Errors: a 401 refreshes the token once; 429, 5xx and 403 ``rateLimitExceeded`` /
``userRateLimitExceeded`` are retried with bounded backoff (``Retry-After`` honoured); anything
left becomes ``CalendarUnavailable``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from integrations._http import RetryableStatus, RetryPolicy, make_client, parse_retry_after
from integrations.calendar.base import BookingInfo, conflicting, guarded_write
from integrations.calendar.google_auth import TokenSource
from integrations.errors import CalendarNotFound, CalendarUnavailable
from tools.availability import Busy

__all__ = ["API", "GoogleCalendar", "GoogleCalendarConfig", "event_id_for"]

log = logging.getLogger("textdesk.integrations.google")
API = "https://www.googleapis.com/calendar/v3"
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_SKIP_TYPES = frozenset({"workingLocation"})


def event_id_for(booking_id: str) -> str:
    """A valid Google event id (base32hex alphabet, 5-1024 chars) that is a function of the booking id."""
    return "td" + booking_id.encode("utf-8").hex()


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Mapping[str, Any], tz: ZoneInfo) -> dt.datetime | None:
    if "dateTime" in value:
        parsed = dt.datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(dt.UTC)
    if "date" in value:
        return dt.datetime.combine(dt.date.fromisoformat(str(value["date"])), dt.time(0), tz).astimezone(
            dt.UTC
        )
    return None


def _zone(name: object, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else fallback
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


@dataclass(frozen=True)
class GoogleCalendarConfig:
    """``calendar_id``: the main calendar ("primary" for the token's user, or an id such as
    ``abc@group.calendar.google.com``). ``provider_calendars``: provider -> their own calendar."""

    calendar_id: str = "primary"
    provider_calendars: Mapping[str, str] = field(default_factory=dict)
    send_updates: str = "none"


class GoogleCalendar:
    name = "google"

    def __init__(
        self,
        config: GoogleCalendarConfig,
        tokens: TokenSource,
        tz: ZoneInfo,
        *,
        providers: Sequence[str] = (),
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config, self.tokens, self.tz, self.providers = config, tokens, tz, tuple(providers)
        self.http = http or make_client(10.0)
        self.retry = retry or RetryPolicy()
        self._write = asyncio.Lock()
        cals: dict[str | None, str] = {None: config.calendar_id}
        cals.update(config.provider_calendars)
        self._cals = cals

    # -- HTTP -------------------------------------------------------------------------------------

    async def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        token = await self.tokens.token()
        resp = await self.http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw)
        if resp.status_code == 401:
            token = await self.tokens.refresh(token)
            resp = await self.http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw)
            if resp.status_code == 401:
                raise CalendarUnavailable("Google Calendar: unauthorized after a token refresh")
        status = resp.status_code
        if status == 429 or status >= 500 or (status == 403 and _reasons(resp) & _RATE_REASONS):
            raise RetryableStatus(
                status, parse_retry_after(resp.headers.get("Retry-After")), ",".join(sorted(_reasons(resp)))
            )
        return resp

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    return await self._send(method, url, **kw)
        except RetryableStatus as exc:
            raise CalendarUnavailable(f"Google Calendar {method} failed after retries: {exc}") from exc
        except httpx.TransportError as exc:
            raise CalendarUnavailable(f"Google Calendar unreachable: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _fail(resp: httpx.Response, what: str) -> CalendarUnavailable:
        err = _error(resp)
        return CalendarUnavailable(
            f"Google Calendar {what}: HTTP {resp.status_code} {err.get('message', '')}".strip()
        )

    def _events_url(self, calendar_id: str, event_id: str | None = None) -> str:
        url = f"{API}/calendars/{quote(calendar_id, safe='')}/events"
        return f"{url}/{quote(event_id, safe='')}" if event_id else url

    # -- reads ------------------------------------------------------------------------------------

    async def _list(self, key: str | None, start: dt.datetime, end: dt.datetime) -> list[tuple[str, Busy]]:
        """(event id, busy) for every blocking event in one calendar."""
        params: dict[str, str] = {
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
            "singleEvents": "true",
            "showDeleted": "false",
            "maxResults": "250",
        }
        out: list[tuple[str, Busy]] = []
        for _ in range(40):  # 10k events in a day range is far past any small business
            resp = await self._request("GET", self._events_url(self._cals[key]), params=params)
            if resp.status_code != 200:
                raise self._fail(resp, "events.list")
            body = resp.json()
            tz = _zone(body.get("timeZone"), self.tz)
            for item in body.get("items", []):
                busy = self._busy_of(item, key, tz)
                if busy is not None:
                    out.append((str(item.get("id")), busy))
            token = body.get("nextPageToken")
            if not token:
                break
            params["pageToken"] = str(token)
        return out

    def _busy_of(self, item: Mapping[str, Any], key: str | None, tz: ZoneInfo) -> Busy | None:
        if item.get("status") == "cancelled" or item.get("transparency") == "transparent":
            return None
        if item.get("eventType") in _SKIP_TYPES:
            return None
        start, end = _parse_time(item.get("start", {}), tz), _parse_time(item.get("end", {}), tz)
        if start is None or end is None or end <= start:
            return None
        private = (item.get("extendedProperties") or {}).get("private") or {}
        provider = key
        if provider is None and private.get("textdesk_provider"):
            named = str(private["textdesk_provider"])
            provider = next((p for p in self.providers if p.lower() == named.lower()), named)
        ref = private.get("textdesk_booking_id")
        return Busy(start, end, provider, str(ref) if ref else None)

    async def busy(self, start: dt.datetime, end: dt.datetime) -> list[Busy]:
        lists = await asyncio.gather(*(self._list(key, start, end) for key in self._cals))
        return [b for found in lists for _, b in found]

    async def _freebusy(self, keys: Sequence[str | None], start: dt.datetime, end: dt.datetime) -> list[Busy]:
        body = {
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
            "timeZone": "UTC",
            "items": [{"id": c} for c in dict.fromkeys(self._cals[k] for k in keys)],
        }
        resp = await self._request("POST", f"{API}/freeBusy", json=body)
        if resp.status_code != 200:
            raise self._fail(resp, "freeBusy")
        calendars = resp.json().get("calendars", {})
        out: list[Busy] = []
        for key in keys:
            entry = calendars.get(self._cals[key], {})
            if entry.get("errors"):
                reasons = ",".join(str(e.get("reason")) for e in entry["errors"])
                raise CalendarUnavailable(f"Google freeBusy for {self._cals[key]}: {reasons}")
            for span in entry.get("busy", []):
                s, e = (
                    _parse_time({"dateTime": span["start"]}, self.tz),
                    _parse_time({"dateTime": span["end"]}, self.tz),
                )
                if s is not None and e is not None:
                    out.append(Busy(s, e, key))
        return out

    # -- writes -----------------------------------------------------------------------------------

    def _split(self, external_id: str) -> tuple[str, str]:
        calendar_id, sep, event_id = external_id.rpartition("/")
        if not sep or not calendar_id or not event_id:
            raise CalendarNotFound(f"not a Google external id: {external_id!r}")
        return calendar_id, event_id

    def _key_of(self, calendar_id: str) -> str | None:
        return next((k for k, c in self._cals.items() if k is not None and c == calendar_id), None)

    async def create(self, booking: BookingInfo) -> str:
        key = booking.provider if booking.provider in self._cals else None
        calendar_id = self._cals[key]
        event_id = event_id_for(booking.booking_id)
        span = (booking.start, booking.end, booking.provider, booking.booking_id)

        async def taken() -> bool:
            if key is not None:  # a provider's own calendar: anything busy there is a clash
                found = await self._freebusy([key, None], booking.start, booking.end)
                return bool(conflicting(found, *span))
            return await contested(event_id)

        async def contested(_: str) -> bool:
            keys = [key, None] if key is not None else list(self._cals)
            found = [
                b for k in dict.fromkeys(keys) for _, b in await self._list(k, booking.start, booking.end)
            ]
            return bool(conflicting(found, *span))

        def body(eid: str) -> dict[str, Any]:
            private = {"textdesk_booking_id": booking.booking_id, "textdesk_service": booking.service}
            if booking.provider:
                private["textdesk_provider"] = booking.provider
            return {
                "id": eid,
                "summary": booking.summary,
                "description": booking.description,
                "start": {"dateTime": _rfc3339(booking.start), "timeZone": self.tz.key},
                "end": {"dateTime": _rfc3339(booking.end), "timeZone": self.tz.key},
                "transparency": "opaque",
                "status": "confirmed",
                "extendedProperties": {"private": private},
            }

        async def ours(eid: str) -> bool:
            """After a 409: is the existing event this booking's, still live (a retried insert)?"""
            got = await self._request("GET", self._events_url(calendar_id, eid))
            if got.status_code != 200:
                return False
            event = got.json()
            private = (event.get("extendedProperties") or {}).get("private") or {}
            return (
                event.get("status") != "cancelled"
                and private.get("textdesk_booking_id") == booking.booking_id
            )

        async def write() -> str:
            # A deleted Google event keeps its id, so after an undo the next try needs a new one.
            for n in range(5):
                eid = event_id if n == 0 else f"{event_id}v{n}"
                resp = await self._request(
                    "POST",
                    self._events_url(calendar_id),
                    params={"sendUpdates": self.config.send_updates},
                    json=body(eid),
                )
                if resp.status_code in (200, 201) or (resp.status_code == 409 and await ours(eid)):
                    return eid
                if resp.status_code != 409:
                    raise self._fail(resp, "events.insert")
            raise CalendarUnavailable(f"Google events.insert: no free event id for {booking.booking_id}")

        async def undo(written: str) -> None:
            await self.cancel(f"{calendar_id}/{written}")

        written = await guarded_write(
            self._write,
            taken=taken,
            write=write,
            contested=contested,
            undo=undo,
            what=f"booking {booking.booking_id}",
            provider=booking.provider,
        )
        return f"{calendar_id}/{written}"

    async def move(self, external_id: str, start: dt.datetime, end: dt.datetime) -> None:
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise ValueError("start and end must be aware, with end after start")
        calendar_id, event_id = self._split(external_id)
        resp = await self._request("GET", self._events_url(calendar_id, event_id))
        if resp.status_code in (404, 410) or (
            resp.status_code == 200 and resp.json().get("status") == "cancelled"
        ):
            raise CalendarNotFound(f"Google event {external_id} is gone")
        if resp.status_code != 200:
            raise self._fail(resp, "events.get")
        event = resp.json()
        key = self._key_of(calendar_id)
        private = (event.get("extendedProperties") or {}).get("private") or {}
        provider = key or private.get("textdesk_provider")
        ref = private.get("textdesk_booking_id")
        old = {"start": event.get("start"), "end": event.get("end")}

        async def taken() -> bool:
            keys = [key, None] if key is not None else list(self._cals)
            found = [(eid, b) for k in dict.fromkeys(keys) for eid, b in await self._list(k, start, end)]
            return bool(conflicting([b for eid, b in found if eid != event_id], start, end, provider, ref))

        async def patch(times: Mapping[str, Any]) -> None:
            r = await self._request(
                "PATCH",
                self._events_url(calendar_id, event_id),
                params={"sendUpdates": self.config.send_updates},
                json=dict(times),
            )
            if r.status_code in (404, 410):
                raise CalendarNotFound(f"Google event {external_id} is gone")
            if r.status_code != 200:
                raise self._fail(r, "events.patch")

        async def write() -> None:
            await patch(
                {
                    "start": {"dateTime": _rfc3339(start), "timeZone": self.tz.key},
                    "end": {"dateTime": _rfc3339(end), "timeZone": self.tz.key},
                }
            )

        async def undo(_: None) -> None:
            await patch(old)

        await guarded_write(
            self._write,
            taken=taken,
            write=write,
            contested=lambda _: taken(),
            undo=undo,
            what=f"move {external_id}",
            provider=provider,
        )

    async def cancel(self, external_id: str) -> None:
        calendar_id, event_id = self._split(external_id)
        resp = await self._request(
            "DELETE",
            self._events_url(calendar_id, event_id),
            params={"sendUpdates": self.config.send_updates},
        )
        if resp.status_code not in (200, 204, 404, 410):  # already gone is fine
            raise self._fail(resp, "events.delete")

    async def aclose(self) -> None:
        await self.http.aclose()


def _error(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def _reasons(resp: httpx.Response) -> set[str]:
    return {str(e.get("reason")) for e in _error(resp).get("errors", []) if isinstance(e, dict)}
