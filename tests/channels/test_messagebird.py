"""MessageBird (Bird): JWT-signed webhooks, REST sends on the real wire format, status reports,
and a whole booking conversation through the HTTP app.

Tokens are minted here from MessageBird's documented scheme (jwt.encode + hashlib), never by
the module under test; MessageBird's own reference vectors are checked too.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
import respx
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from channels.messagebird import MessageBirdChannel, send_result, status_update
from store.models import Booking, ConsentEvent, Contact, Message
from tests.conftest import PUBLIC_URL, make_settings
from textdesk import tasks
from textdesk.clock import FrozenClock
from textdesk.errors import SignatureError
from textdesk.services import Services, build_services
from web.app import create_app

SIGNING_KEY = "5f1c0a4be3d2a9c87e6f0b1d2c3a4958e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2"
ACCESS_KEY = "live_test_0123456789abcdefghij"
FROM = "+15005550009"
API = "https://rest.messagebird.com/messages"
HEADER = "MessageBird-Signature-JWT"  # as MessageBird names it
CUSTOMER = "+12125550123"
NY = dt.timezone(dt.timedelta(hours=-5))
_SIGNED = object()  # "sign it properly" (the default for every request)


def mint(
    url: str,
    body: bytes,
    *,
    key: str = SIGNING_KEY,
    now: float | None = None,
    life: int = 60,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A MessageBird-Signature-JWT as MessageBird makes one. ``claims`` override the defaults;
    an override of None drops that claim."""
    t = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": "MessageBird",
        "nbf": t,
        "exp": t + life,
        "jti": str(uuid.uuid4()),
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
    }
    if body:
        payload["payload_hash"] = hashlib.sha256(body).hexdigest()
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


async def settle(limit_s: float = 10.0) -> None:
    """Wait for the background REST sends. The test client runs the app on its own event loop in
    a thread, so ``tasks.drain()`` (this loop's tasks only) would not see them: poll instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while tasks.pending():
        if loop.time() > deadline:
            raise TimeoutError("background sends did not finish")
        await asyncio.sleep(0.01)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def empty_key_token(url: str, body: bytes) -> str:
    t = int(time.time())
    claims = {
        "iss": "MessageBird",
        "nbf": t,
        "exp": t + 60,
        "jti": str(uuid.uuid4()),
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(b"", signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def unsigned(url: str, body: bytes) -> str:
    """An alg "none" token with otherwise right claims."""
    t = int(time.time())
    claims = {
        "iss": "MessageBird",
        "nbf": t,
        "exp": t + 60,
        "jti": str(uuid.uuid4()),
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    return b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(json.dumps(claims).encode()) + "."


class Bird:
    """Calls textdesk's webhooks the way MessageBird does."""

    def __init__(self, client: AsyncTestClient[Any]) -> None:
        self.client = client

    async def post(
        self,
        path: str,
        params: dict[str, Any],
        *,
        form: bool = False,
        query: str = "",
        token: Any = _SIGNED,
        body: bytes | None = None,
    ) -> Any:
        raw = body if body is not None else (urlencode(params) if form else json.dumps(params)).encode()
        target = path + (f"?{query}" if query else "")
        tok = mint(PUBLIC_URL + target, raw) if token is _SIGNED else token
        ctype = "application/x-www-form-urlencoded" if form else "application/json"
        headers = {"Content-Type": ctype, **({HEADER: tok} if tok is not None else {})}
        return await self.client.post(target, content=raw, headers=headers)

    async def get(self, path: str, params: dict[str, Any], *, token: Any = _SIGNED) -> Any:
        target = f"{path}?{urlencode(params)}"
        tok = mint(PUBLIC_URL + target, b"") if token is _SIGNED else token
        return await self.client.get(target, headers={HEADER: tok} if tok is not None else {})

    @staticmethod
    def sms(body: str, sender: str = CUSTOMER, mid: str | None = None) -> dict[str, Any]:
        """An inbound SMS as the number's flow forwards it (msisdns without "+")."""
        return {
            "id": mid or uuid.uuid4().hex,
            "originator": sender.lstrip("+"),
            "recipient": FROM.lstrip("+"),
            "body": body,
            "createdDatetime": "2026-03-02T14:00:00+00:00",
        }

    async def text(self, body: str, sender: str = CUSTOMER, mid: str | None = None) -> Any:
        resp = await self.post("/messagebird/sms", self.sms(body, sender, mid))
        await settle()  # the replies leave by REST in the background
        return resp

    async def report(self, **params: Any) -> Any:
        """A status report: MessageBird sends these as GET requests to the reportUrl."""
        return await self.get("/messagebird/status", params)


class FakeApi:
    """MessageBird's POST /messages: records each request and answers 201 like the API does."""

    def __init__(self) -> None:
        self.calls: list[tuple[httpx.Request, dict[str, Any], str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        mid = f"{len(self.calls) + 1:032x}"
        self.calls.append((request, sent, mid))
        return httpx.Response(201, json=created(mid, sent))

    def bodies(self, since: int = 0) -> str:
        return "\n".join(sent["body"] for _, sent, _ in self.calls[since:])


def created(mid: str, sent: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": mid,
        "href": f"{API}/{mid}",
        "direction": "mt",
        "type": "sms",
        "originator": sent["originator"],
        "body": sent["body"],
        "reference": sent.get("reference"),
        "validity": None,
        "gateway": 10,
        "typeDetails": {},
        "datacoding": sent.get("datacoding", "plain"),
        "mclass": 1,
        "scheduledDatetime": None,
        "createdDatetime": "2026-03-02T14:00:00+00:00",
        "recipients": {
            "totalCount": 1,
            "totalSentCount": 1,
            "totalDeliveredCount": 0,
            "totalDeliveryFailedCount": 0,
            "items": [
                {
                    "recipient": sent["recipients"][0],
                    "status": "sent",
                    "statusDatetime": "2026-03-02T14:00:00+00:00",
                }
            ],
        },
    }


@pytest.fixture
async def mb_services(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Services]:
    settings = make_settings(
        sqlite_url,
        messagebird_access_key=ACCESS_KEY,
        messagebird_signing_key=SIGNING_KEY,
        messagebird_from=FROM,
    )
    svc = build_services(settings, clock=clock)
    yield svc
    await svc.channels["messagebird"].aclose()
    await svc.engine.dispose()


@pytest.fixture
async def bird(mb_services: Services) -> AsyncIterator[Bird]:
    async with AsyncTestClient(app=create_app(mb_services)) as c:
        yield Bird(c)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    with respx.mock(assert_all_called=False) as mock:
        mock.post(API).mock(side_effect=fake)
        yield fake


async def messages(services: Services) -> list[Message]:
    async with services.sessions() as s:
        return list(await s.exec(select(Message).order_by(col(Message.id))))


async def bookings(services: Services) -> list[Booking]:
    async with services.sessions() as s:
        return list(await s.exec(select(Booking)))


async def contact(services: Services, phone: str = CUSTOMER) -> Contact | None:
    async with services.sessions() as s:
        return (await s.exec(select(Contact).where(Contact.phone == phone))).first()


# --- signatures --------------------------------------------------------------------------------

# MessageBird's reference vectors (messagebird-nodejs lib/testdata/webhook-signature-jwt-reference.json),
# all issued for 2021-07-05T12:00:00+02:00 with this secret.
REF_SECRET = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb"
REF_TIME = 1625479200
_REF_URL_PARAMS = "https://example.com/path?bar=1&foo=2"
REF_VECTORS = [
    (  # valid: URL parameters and a payload
        _REF_URL_PARAMS,
        b"Hello, World!",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNj"
        "I1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBk"
        "ZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJk"
        "ZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0."
        "_H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I",
        True,
    ),
    (  # valid: percent-encoded query, hashed exactly as sent
        "https://example.com/?obj%5Bfield1%5D=val1&obj%5Bfield2%5D=val2&param=value+with+spaces",
        b"",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNj"
        "I1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjhhZmYzNzQ4"
        "ZDc4OWM0MzMzNTczZTFjMzFmZTViMDA0OTQwY2I1ZmM0NzQ2MGVkM2QwZTY1NGY3ZmM0ZTVmYWUifQ."
        "mJBCMfEjKmN3IMuzqPXPHktWETrcu0iNdF3agE8PDyI",
        True,
    ),
    (  # valid: HS512
        "https://example.com/",
        b"",
        "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNj"
        "I1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIw"
        "NjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ."
        "rd6r0iMyNGnVPCwurETphE3Y8rpAyvvnUK0S8WvGUkt2E1QSRAZ7NZJZBHw1Y_Wb5W-sK9HJr_PRL2vz4jRT3Q",
        True,
    ),
    (  # invalid: parameters reordered, so url_hash differs
        "https://example.com/path?foo=1&bar=2",
        b"",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNj"
        "I1NDc5MjYwLCJqdGkiOiJhNzVjOTA5Ni1lODIzLTQ0MmItODVmMi03ZDNjOWQ5YjcyNmIiLCJ1cmxfaGFzaCI6IjZhMDIyZDgz"
        "NGMxODMzMGJhYWQ4YTJiZDYxMzUxNzNlZDIxNjEwYTQ1NDUxNmJlMGRmM2YxY2MwMTUxNjEwZWEifQ."
        "z6Sw1XQIM0wuEQGBhXBdawDIIrtMg2XnmA_bpDq53pE",
        False,
    ),
    (  # invalid: expired an hour before
        "https://example.com/",
        b"",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3NTYwMCwiZXhwIjoxNj"
        "I1NDc1NjYwLCJqdGkiOiI1ZjAyZjUyMi02MDMwLTQ2YzgtYjVhMy0wMTI0NjQ3OGQ4YmMiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIw"
        "NjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ."
        "45MSST3B_2PsjNUeiuW54_vUQgVw4rBXrdWrOUEz3lM",
        False,
    ),
    (  # invalid: a payload added in transit (no payload_hash in the token)
        "https://example.com/",
        b"Hello, World!",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNj"
        "I1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIw"
        "NjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ."
        "6Fp0rVOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E",
        False,
    ),
    (  # invalid: alg none
        "https://example.com/",
        b"",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1"
        "NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJi"
        "N2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.",
        False,
    ),
]


@pytest.mark.parametrize(("url", "body", "token", "valid"), REF_VECTORS)
async def test_messagebird_reference_vectors(url: str, body: bytes, token: str, valid: bool) -> None:
    channel = MessageBirdChannel("", REF_SECRET, "", "https://example.com", now=lambda: REF_TIME + 1)
    try:
        if valid:
            assert channel.verify(url, body, token)["iss"] == "MessageBird"
        else:
            with pytest.raises(SignatureError):
                channel.verify(url, body, token)
    finally:
        await channel.aclose()


def _sms_body() -> bytes:
    return json.dumps(Bird.sms("where are you located?")).encode()


def _bad_tokens() -> list[tuple[str, Any, bytes | None, int]]:
    """(case, token, body sent instead of the signed one, expected status)."""
    url = PUBLIC_URL + "/messagebird/sms"
    body = _sms_body()
    hour_ago = time.time() - 3600
    return [
        ("missing header", None, None, 401),
        ("wrong key", mint(url, body, key="0" * 64), body, 403),
        ("expired", mint(url, body, now=hour_ago), body, 403),
        ("not valid yet", mint(url, body, now=time.time() + 3600), body, 403),
        ("wrong url_hash (another host)", mint("https://evil.example.com/messagebird/sms", body), body, 403),
        ("wrong url_hash (another path)", mint(PUBLIC_URL + "/messagebird/status", body), body, 403),
        ("tampered body", mint(url, body), body.replace(b"located", b"LOCATED"), 403),
        ("no payload_hash for a body", mint(url, body, payload_hash=None), body, 403),
        ("no jti", mint(url, body, jti=None), body, 403),
        ("wrong issuer", mint(url, body, iss="Mallory"), body, 403),
        ("alg none", unsigned(url, body), body, 403),
        ("garbage", "not-a-jwt", body, 403),
    ]


@pytest.mark.parametrize(("case", "token", "body", "expected"), _bad_tokens(), ids=lambda v: str(v)[:30])
async def test_bad_signatures_are_refused_and_nothing_is_stored(
    bird: Bird, mb_services: Services, api: FakeApi, case: str, token: Any, body: bytes | None, expected: int
) -> None:
    resp = await bird.post("/messagebird/sms", {}, token=token, body=body or _sms_body())
    await settle()
    assert resp.status_code == expected, case
    assert await messages(mb_services) == []
    assert api.calls == []


async def test_refused_before_the_body_is_parsed(bird: Bird, mb_services: Services) -> None:
    resp = await bird.post("/messagebird/sms", {}, token="x.y.z", body=b"{not json")
    assert resp.status_code == 403  # not 400: nothing is read from an unauthenticated body
    assert await messages(mb_services) == []


async def test_replayed_token_is_refused(bird: Bird, mb_services: Services, api: FakeApi) -> None:
    body = _sms_body()
    token = mint(PUBLIC_URL + "/messagebird/sms", body)
    first = await bird.post("/messagebird/sms", {}, token=token, body=body)
    await settle()
    again = await bird.post("/messagebird/sms", {}, token=token, body=body)
    await settle()
    assert (first.status_code, again.status_code) == (200, 403)
    assert [m.direction for m in await messages(mb_services)] == ["in", "out"]
    assert len(api.calls) == 1


async def test_status_report_needs_a_signature(bird: Bird, mb_services: Services) -> None:
    params = {"id": "a" * 32, "reference": "1", "status": "delivered"}
    assert (await bird.get("/messagebird/status", params, token=None)).status_code == 401
    forged = mint(PUBLIC_URL + "/messagebird/status?" + urlencode(params), b"", key="1" * 64)
    assert (await bird.get("/messagebird/status", params, token=forged)).status_code == 403
    # Signed for other parameters: the query is part of url_hash.
    other = mint(PUBLIC_URL + "/messagebird/status?" + urlencode({**params, "status": "sent"}), b"")
    assert (await bird.get("/messagebird/status", params, token=other)).status_code == 403


async def test_no_signing_key_refuses_everything(sqlite_url: str, clock: FrozenClock) -> None:
    svc = build_services(make_settings(sqlite_url), clock=clock)  # MessageBird not configured
    try:
        async with AsyncTestClient(app=create_app(svc)) as c:
            body = _sms_body()
            # HS256 with an empty key (PyJWT refuses to make one): anyone could; it must not pass.
            token = empty_key_token(PUBLIC_URL + "/messagebird/sms", body)
            resp = await Bird(c).post("/messagebird/sms", {}, token=token, body=body)
            assert resp.status_code == 403
            assert await messages(svc) == []
    finally:
        await svc.channels["messagebird"].aclose()
        await svc.engine.dispose()


async def test_missing_fields_after_a_valid_signature_are_400(bird: Bird, mb_services: Services) -> None:
    no_originator = {k: v for k, v in Bird.sms("hi").items() if k != "originator"}
    no_id = {k: v for k, v in Bird.sms("hi").items() if k != "id"}
    assert (await bird.post("/messagebird/sms", no_originator)).status_code == 400
    assert (await bird.post("/messagebird/sms", no_id)).status_code == 400
    assert (await bird.post("/messagebird/status", {"reference": "1"})).status_code == 400
    assert await messages(mb_services) == []


async def test_form_payload_and_get_are_accepted(bird: Bird, mb_services: Services, api: FakeApi) -> None:
    """The form-encoded flow calls the text ``payload``; the number's legacy forward uses GET."""
    params = {k: v for k, v in Bird.sms("where are you located?").items() if k != "body"}
    resp = await bird.post("/messagebird/sms", {**params, "payload": "where are you located?"}, form=True)
    await settle()
    assert resp.status_code == 200
    resp = await bird.get("/messagebird/sms", Bird.sms("hours?", sender="+12125550177"))
    await settle()
    assert resp.status_code == 200
    inbound = [m for m in await messages(mb_services) if m.direction == "in"]
    assert [m.body for m in inbound] == ["where are you located?", "hours?"]
    assert {m.provider for m in inbound} == {"messagebird"}
    assert "12 Maple St" in api.bodies()


async def test_alphanumeric_originator_is_not_answered(
    bird: Bird, mb_services: Services, api: FakeApi
) -> None:
    resp = await bird.text("hi", sender="BirdPromo")
    assert resp.status_code == 200  # accepted (MessageBird would retry anything else), not stored
    assert await messages(mb_services) == []
    assert api.calls == []


# --- sending -----------------------------------------------------------------------------------


@pytest.fixture
async def channel() -> AsyncIterator[MessageBirdChannel]:
    ch = MessageBirdChannel(ACCESS_KEY, SIGNING_KEY, FROM, PUBLIC_URL)
    yield ch
    await ch.aclose()


async def test_send_posts_the_documented_request(channel: MessageBirdChannel) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API).mock(
            side_effect=lambda req: httpx.Response(201, json=created("m1" * 16, json.loads(req.content)))
        )
        result = await channel.send("+12125550123", "See you at 2 PM ✂️", 42)
    req = route.calls.last.request
    assert req.headers["Authorization"] == f"AccessKey {ACCESS_KEY}"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {
        "originator": FROM,
        "recipients": [12125550123],
        "body": "See you at 2 PM ✂️",
        "reference": "42",
        "reportUrl": "https://sms.example.com/messagebird/status",
        "datacoding": "auto",
    }
    assert (result.ok, result.provider_message_id, result.status) == (True, "m1" * 16, "sent")


def _err(code: int, description: str, parameter: str | None = None) -> dict[str, Any]:
    return {"code": code, "description": description, "parameter": parameter}


@pytest.mark.parametrize(
    ("http_status", "errors", "error", "code", "retryable"),
    [
        (401, [_err(2, "Request not allowed (incorrect access_key)", "access_key")], "auth", 2, False),
        (422, [_err(9, "no (correct) recipients found", "recipients")], "invalid_number", 9, False),
        (422, [_err(10, "originator is invalid", "originator")], "rejected", 10, False),
        (422, [_err(25, "Not enough balance")], "rejected", 25, False),
        (429, [_err(99, "Too many requests")], "rate_limited", 99, True),
        (500, [_err(99, "Internal error")], "unreachable", 99, True),
        (503, None, "unreachable", None, True),
    ],
)
async def test_send_failures_are_classified(
    channel: MessageBirdChannel,
    http_status: int,
    errors: list[dict[str, Any]] | None,
    error: str,
    code: int | None,
    retryable: bool,
) -> None:
    reply = httpx.Response(http_status, json={"errors": errors}) if errors else httpx.Response(http_status)
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API).mock(return_value=reply)
        result = await channel.send("+12125550123", "hello", 7)
    assert (result.ok, result.error, result.error_code, result.retryable) == (False, error, code, retryable)
    assert result.detail


async def test_network_timeout_is_retryable(channel: MessageBirdChannel) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(API).mock(side_effect=httpx.ConnectTimeout("timed out"))
        result = await channel.send("+12125550123", "hello", 7)
    assert (result.ok, result.error, result.retryable) == (False, "unreachable", True)
    assert "timeout" in (result.detail or "")


async def test_unconfigured_channel_never_calls_the_api() -> None:
    ch = MessageBirdChannel("", "", "", PUBLIC_URL)
    try:
        with respx.mock(assert_all_called=False) as mock:
            route = mock.post(API)
            result = await ch.send("+12125550123", "hello", 1)
        assert (result.ok, result.error, route.call_count) == (False, "auth", 0)
    finally:
        await ch.aclose()


def test_created_without_an_id_still_counts_as_sent() -> None:
    result = send_result(201, {"recipients": {"items": [{"status": "sent"}]}})
    assert (result.ok, result.provider_message_id, result.status) == (True, None, "sent")


# --- status reports ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "delivered"}, ("delivered", None, None)),
        ({"status": "buffered"}, ("sent", None, None)),
        ({"status": "scheduled"}, ("queued", None, None)),
        (
            {"status": "delivery_failed", "statusReason": "unknown subscriber", "statusErrorCode": "1"},
            ("undelivered", "invalid_number", 1),
        ),
        (
            {"status": "delivery_failed", "statusReason": "unavailable subscriber", "statusErrorCode": "27"},
            ("undelivered", "unreachable", 27),
        ),
        (
            {"status": "delivery_failed", "statusReason": "unknown subscriber"},
            ("undelivered", "invalid_number", None),
        ),
        ({"status": "delivery_failed", "statusErrorCode": "777"}, ("undelivered", "unknown", 777)),
        ({"status": "expired", "statusReason": "DLR not received"}, ("undelivered", "unreachable", None)),
    ],
)
def test_status_mapping(params: dict[str, str], expected: tuple[str, str | None, int | None]) -> None:
    update = status_update({"id": "b" * 32, "reference": "9", "recipient": "12125550123", **params})
    assert update is not None
    assert (update.status, update.error, update.error_code) == expected
    assert (update.provider, update.provider_message_id, update.message_id) == ("messagebird", "b" * 32, 9)
    assert (update.detail is None) == (expected[1] is None)


def test_unknown_status_is_ignored() -> None:
    assert status_update({"id": "c" * 32, "status": "answered"}) is None


# --- a whole conversation over the HTTP app --------------------------------------------------------


async def test_booking_conversation_over_messagebird(bird: Bird, mb_services: Services, api: FakeApi) -> None:
    r1 = await bird.text("hi can i get a haircut tmrw?")
    assert (r1.status_code, r1.text) == (200, "")
    assert "1)" in api.bodies() and "Tue Mar 3" in api.bodies()  # numbered times offered
    assert await bookings(mb_services) == []
    n = len(api.calls)
    await bird.text("2")
    assert "Reply YES" in api.bodies(n)
    assert await bookings(mb_services) == []  # nothing before an explicit yes
    n = len(api.calls)
    last = Bird.sms("yes please")
    await bird.post("/messagebird/sms", last)
    await settle()
    assert "booked" in api.bodies(n)
    (b,) = await bookings(mb_services)
    assert b.service == "haircut" and b.status == "active"
    assert b.start.astimezone(NY).date() == dt.date(2026, 3, 3)

    # Every reply went out through MessageBird's API, to the customer, from our number.
    for request, sent, _ in api.calls:
        assert request.headers["Authorization"] == f"AccessKey {ACCESS_KEY}"
        assert (sent["originator"], sent["recipients"], sent["datacoding"]) == (FROM, [12125550123], "auto")
        assert sent["reportUrl"] == f"{PUBLIC_URL}/messagebird/status"
    out = [m for m in await messages(mb_services) if m.direction == "out"]
    assert [m.body for m in out] == [sent["body"] for _, sent, _ in api.calls]
    assert [str(m.id) for m in out] == [sent["reference"] for _, sent, _ in api.calls]
    assert all(m.provider == "messagebird" and m.delivery == "rest" for m in out)

    # A status report (GET to the reportUrl) moves the last reply to delivered.
    _, sent, mb_id = api.calls[-1]
    resp = await bird.report(
        id=mb_id,
        reference=sent["reference"],
        recipient="12125550123",
        status="delivered",
        statusReason="successfully delivered",
        statusDatetime="2026-03-02T14:01:00+00:00",
    )
    assert (resp.status_code, resp.text) == (200, "")
    async with mb_services.sessions() as s:
        msg = await s.get(Message, int(sent["reference"]))
    assert msg is not None
    assert (msg.status, msg.provider, msg.provider_message_id) == ("delivered", "messagebird", mb_id)
    # A late "sent" never moves it back.
    await bird.report(id=mb_id, reference=sent["reference"], status="sent")
    async with mb_services.sessions() as s:
        again_msg = await s.get(Message, msg.id)
    assert again_msg is not None and again_msg.status == "delivered"

    # MessageBird retries the last webhook (same id, freshly signed): no second reply.
    n, stored = len(api.calls), len(await messages(mb_services))
    again = await bird.post("/messagebird/sms", last)
    await settle()
    assert again.status_code == 200
    assert len(api.calls) == n
    assert len(await messages(mb_services)) == stored
    assert len(await bookings(mb_services)) == 1


async def test_stop_opts_out_over_messagebird(bird: Bird, mb_services: Services, api: FakeApi) -> None:
    await bird.text("where are you located?")
    n = len(api.calls)
    resp = await bird.text("STOP")
    assert resp.status_code == 200
    c = await contact(mb_services)
    assert c is not None and c.consent == "opted_out"
    async with mb_services.sessions() as s:
        events = list(await s.exec(select(ConsentEvent).where(ConsentEvent.contact_id == c.id)))
    assert [e.new for e in events][-1] == "opted_out"
    # The one confirmation goes out; after it, nothing more is sent to this number.
    assert len(api.calls) == n + 1
    confirmation = next(m for m in await messages(mb_services) if m.kind == "opt_out_confirmation")
    assert api.calls[-1][1]["reference"] == str(confirmation.id)
    await bird.text("where are you located?")
    assert len(api.calls) == n + 1


async def test_failed_delivery_report_is_recorded(bird: Bird, mb_services: Services, api: FakeApi) -> None:
    await bird.text("where are you located?")
    _, sent, mb_id = api.calls[-1]
    await bird.report(
        id=mb_id,
        reference=sent["reference"],
        recipient="12125550123",
        status="delivery_failed",
        statusReason="unknown subscriber",
        statusErrorCode="1",
    )
    async with mb_services.sessions() as s:
        msg = await s.get(Message, int(sent["reference"]))
    assert msg is not None
    assert (msg.status, msg.error, msg.error_code) == ("undelivered", "invalid_number", 1)
