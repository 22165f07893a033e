"""A stateful Google Calendar v3 behind respx: events.list / insert / get / patch / delete and
freeBusy over one in-memory store, with Google's URL and JSON shapes (enough for the adapter)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import unquote

import httpx
import respx

HOST = "www.googleapis.com"
_EVENTS = re.compile(r"^/calendar/v3/calendars/(?P<cal>[^/]+)/events(?:/(?P<eid>[^/]+))?$")


def _t(value: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))


class FakeGoogleCalendar:
    def __init__(self) -> None:
        self.events: dict[str, dict[str, dict[str, Any]]] = {}

    def live(self, cal: str) -> list[dict[str, Any]]:
        return [e for e in self.events.get(cal, {}).values() if e.get("status") != "cancelled"]

    def install(self, router: respx.MockRouter) -> None:
        router.route(host=HOST, path__regex=_EVENTS.pattern).mock(side_effect=self._events)
        router.post(host=HOST, path="/calendar/v3/freeBusy").mock(side_effect=self._freebusy)

    def _events(self, request: httpx.Request, **_: str) -> httpx.Response:
        m = _EVENTS.match(request.url.path)
        assert m is not None
        cal, eid = unquote(m["cal"]), unquote(m["eid"]) if m["eid"] else None
        store = self.events.setdefault(cal, {})
        if request.method == "GET" and eid is None:
            lo = dt.datetime.fromisoformat(request.url.params["timeMin"].replace("Z", "+00:00"))
            hi = dt.datetime.fromisoformat(request.url.params["timeMax"].replace("Z", "+00:00"))
            items = [e for e in self.live(cal) if _t(e["start"]) < hi and lo < _t(e["end"])]
            return httpx.Response(200, json={"kind": "calendar#events", "timeZone": "America/New_York",
                                             "items": items})
        if request.method == "POST":
            body = json.loads(request.content)
            if body["id"] in store:
                return httpx.Response(409, json={"error": {"code": 409, "message": "duplicate"}})
            store[body["id"]] = {**body, "kind": "calendar#event"}
            return httpx.Response(200, json=store[body["id"]])
        event = store.get(eid or "")
        if event is None:
            return httpx.Response(404, json={"error": {"code": 404, "message": "Not Found"}})
        if request.method == "GET":
            return httpx.Response(200, json=event)
        if request.method == "PATCH":
            event.update(json.loads(request.content))
            return httpx.Response(200, json=event)
        if request.method == "DELETE":
            if event.get("status") == "cancelled":
                return httpx.Response(410, json={"error": {"code": 410, "message": "Deleted"}})
            event["status"] = "cancelled"  # Google keeps the id of a deleted event
            return httpx.Response(204)
        return httpx.Response(405)

    def _freebusy(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        lo = dt.datetime.fromisoformat(body["timeMin"].replace("Z", "+00:00"))
        hi = dt.datetime.fromisoformat(body["timeMax"].replace("Z", "+00:00"))
        cals = {}
        for item in body["items"]:
            spans = [e for e in self.live(item["id"]) if _t(e["start"]) < hi and lo < _t(e["end"])]
            cals[item["id"]] = {"busy": [{"start": e["start"]["dateTime"], "end": e["end"]["dateTime"]}
                                         for e in spans]}
        return httpx.Response(200, json={"kind": "calendar#freeBusy", "calendars": cals})
