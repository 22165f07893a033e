"""HubSpot CRM (v3 objects API) as an event destination.

Every event first finds the contact by phone (``POST /crm/v3/objects/contacts/search``, ``EQ`` on
``phone`` or ``mobilephone``), creating it (``POST /crm/v3/objects/contacts``) or updating name
and email (``PATCH /crm/v3/objects/contacts/{id}``). Bookings, tags and escalations then become a
note on the contact's timeline (``POST /crm/v3/objects/notes`` associated with
``associationTypeId`` 202, note-to-contact). Auth is a private-app token (``crm.objects.contacts``
read/write scopes).

429 (``Retry-After`` honoured when sent) and 5xx are retried; 401/403 and other 4xx are
permanent failures. A 409 on create ("Contact already exists. Existing ID: N", when the email
belongs to another record) adopts that record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from integrations._http import RetryableStatus, RetryPolicy, make_client, parse_retry_after
from integrations.crm.events import BookingData, ContactData, CrmEvent
from integrations.errors import DeliveryFailed

__all__ = ["API", "HubSpotDestination", "contact_properties", "note_for"]

API = "https://api.hubapi.com"
NOTE_TO_CONTACT = 202
_EXISTING = re.compile(r"Existing ID:\s*(\d+)")


def contact_properties(contact: ContactData) -> dict[str, str]:
    props = {"phone": contact.phone}
    if contact.name:
        first, _, last = contact.name.strip().partition(" ")
        props["firstname"] = first
        if last.strip():
            props["lastname"] = last.strip()
    if contact.email:
        props["email"] = contact.email
    return props


def _when(b: BookingData, value: dt.datetime) -> str:
    try:
        tz = ZoneInfo(b.timezone) if b.timezone else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    local = value.astimezone(tz)
    return local.strftime("%a %b %d %Y, %H:%M") + f" ({b.timezone or 'UTC'})"


def note_for(event: CrmEvent) -> str | None:
    """The timeline note an event leaves; None for plain contact changes."""
    b = event.booking
    if b is not None:
        who = f" with {b.provider}" if b.provider else ""
        what = {
            "booking.created": "Booked",
            "booking.rescheduled": "Rescheduled",
            "booking.cancelled": "Cancelled",
        }.get(event.type, event.type)
        text = f"{what} by text: {b.service}{who}, {_when(b, b.start)}."
        if event.type == "booking.rescheduled" and b.previous_start is not None:
            text += f" Was {_when(b, b.previous_start)}."
        return text + f" [textdesk {b.id}]"
    if event.type == "tag.added" and event.tag:
        return f"Tagged by textdesk: {event.tag}"
    if event.escalation is not None:
        e = event.escalation
        return f"Conversation handed to staff ({e.reason}). {e.summary}".strip()
    return None


class HubSpotDestination:
    name = "hubspot"

    def __init__(
        self,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        cache_size: int = 1024,
    ) -> None:
        self._token = token
        self.http = http or make_client(10.0)
        self.retry = retry or RetryPolicy(attempts=5, base=0.5, max_wait=30.0)
        self._ids: OrderedDict[str, str] = OrderedDict()  # phone -> contact id, small LRU
        self._cache_size = cache_size

    # -- HTTP -------------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, json: Any) -> httpx.Response:
        resp = await self.http.request(
            method, API + path, json=json, headers={"Authorization": f"Bearer {self._token}"}
        )
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableStatus(resp.status_code, parse_retry_after(resp.headers.get("Retry-After")))
        if resp.status_code in (401, 403):
            raise DeliveryFailed(
                f"HubSpot refused the token (HTTP {resp.status_code})",
                permanent=True,
                status=resp.status_code,
            )
        return resp

    async def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    return await self._send(method, path, json)
        except RetryableStatus as exc:
            raise DeliveryFailed(f"HubSpot {method} {path} gave up: {exc}", status=exc.status) from exc
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"HubSpot unreachable: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _fail(resp: httpx.Response, what: str) -> DeliveryFailed:
        try:
            message = str(resp.json().get("message", ""))
        except ValueError:
            message = resp.text[:200]
        return DeliveryFailed(
            f"HubSpot {what}: HTTP {resp.status_code} {message}".strip(),
            permanent=True,
            status=resp.status_code,
        )

    # -- objects ----------------------------------------------------------------------------------

    async def find_contact(self, phone: str) -> str | None:
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "phone", "operator": "EQ", "value": phone}]},
                {"filters": [{"propertyName": "mobilephone", "operator": "EQ", "value": phone}]},
            ],
            "properties": ["phone", "mobilephone", "firstname", "lastname", "email"],
            "limit": 1,
        }
        resp = await self._request("POST", "/crm/v3/objects/contacts/search", body)
        if resp.status_code != 200:
            raise self._fail(resp, "contact search")
        results = resp.json().get("results", [])
        return str(results[0]["id"]) if results else None

    async def create_contact(self, props: dict[str, str]) -> str:
        resp = await self._request("POST", "/crm/v3/objects/contacts", {"properties": props})
        if resp.status_code == 409:
            m = _EXISTING.search(str(resp.json().get("message", "")))
            if m:
                await self.update_contact(m.group(1), props)
                return m.group(1)
        if resp.status_code not in (200, 201):
            raise self._fail(resp, "contact create")
        return str(resp.json()["id"])

    async def update_contact(self, contact_id: str, props: dict[str, str]) -> None:
        resp = await self._request("PATCH", f"/crm/v3/objects/contacts/{contact_id}", {"properties": props})
        if resp.status_code == 404:
            raise DeliveryFailed(f"HubSpot contact {contact_id} is gone", status=404)
        if resp.status_code != 200:
            raise self._fail(resp, "contact update")

    async def add_note(self, contact_id: str, body: str, at: dt.datetime) -> str:
        payload = {
            "properties": {
                "hs_timestamp": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "hs_note_body": body,
            },
            "associations": [
                {
                    "to": {"id": contact_id},
                    "types": [
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}
                    ],
                }
            ],
        }
        resp = await self._request("POST", "/crm/v3/objects/notes", payload)
        if resp.status_code not in (200, 201):
            raise self._fail(resp, "note create")
        return str(resp.json()["id"])

    async def upsert_contact(self, contact: ContactData) -> str:
        props = contact_properties(contact)
        known = self._ids.get(contact.phone)
        if known is not None:
            if len(props) > 1:
                try:
                    await self.update_contact(known, props)
                    return known
                except DeliveryFailed as exc:
                    if exc.status != 404:
                        raise
                    self._ids.pop(contact.phone, None)
            else:
                return known
        found = await self.find_contact(contact.phone)
        if found is None:
            found = await self.create_contact(props)
        elif len(props) > 1:
            await self.update_contact(found, props)
        self._ids[contact.phone] = found
        self._ids.move_to_end(contact.phone)
        while len(self._ids) > self._cache_size:
            self._ids.popitem(last=False)
        return found

    async def deliver(self, event: CrmEvent) -> None:
        contact_id = await self.upsert_contact(event.contact)
        note = note_for(event)
        if note:
            await self.add_note(contact_id, note, event.occurred_at)

    async def aclose(self) -> None:
        await self.http.aclose()
