"""Plivo: V3-signed webhooks, the Message API on the wire, delivery reports, a whole booking."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import plivo
import pytest
import requests
import responses
from sqlmodel import col, select

from channels.plivo import PlivoChannel, build, error_for, status_update
from store.models import Booking, ConsentEvent, Contact, Message
from tests.conftest import PUBLIC_URL, make_settings, serve_in_loop
from textdesk import tasks
from textdesk.clock import FrozenClock
from textdesk.errors import SignatureError
from textdesk.services import Services, build_services

AUTH_ID = "MAODUXNTHJNJMTHJNTC1"  # Plivo main-account ids: "MA" + 18 characters
AUTH_TOKEN = "plivo-test-auth-token"
OURS = "+15005550008"
CUSTOMER = "12125550123"  # Plivo writes E.164 without the "+"
API = f"https://api.plivo.com/v1/Account/{AUTH_ID}/Message/"
NY = dt.timezone(dt.timedelta(hours=-5))


# Plivo's documented V3 scheme, written out here (not taken from channels.plivo or the SDK):
# the URL with its query sorted, the POST parameters sorted by name as name+value, the nonce;
# HMAC-SHA256 keyed with the auth token, base64.
def v3_signature(url: str, params: dict[str, str], nonce: str, token: str = AUTH_TOKEN) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    if params:
        signed = (
            base + "?" + query + ("." if query else "") + "".join(f"{k}{params[k]}" for k in sorted(params))
        )
    else:
        signed = base + (f"?{query}" if query else "")
    digest = hmac.new(token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_our_vector_is_the_one_plivos_sdk_accepts() -> None:
    """Cross-check of the test helper itself against the official SDK's validator."""
    url = "https://sms.example.com/plivo/status?m=12&a=b"
    params = {"MessageUUID": "u-1", "Status": "delivered", "ErrorCode": "", "To": CUSTOMER}
    sig = v3_signature(url, params, "98765")
    ok = plivo.utils.signature_v3.validate_v3_signature("POST", url, "98765", AUTH_TOKEN, sig, dict(params))
    assert ok


class PlivoWebhooks:
    """Signs and posts webhooks like Plivo does."""

    def __init__(self, client: httpx.AsyncClient, token: str = AUTH_TOKEN) -> None:
        self.client, self.token = client, token

    async def post(
        self,
        path: str,
        params: dict[str, str],
        query: str = "",
        signature: str | None = None,
        nonce: str | None = None,
        header: str = "X-Plivo-Signature-V3",
        signed_url: str | None = None,
    ) -> Any:
        nonce = nonce if nonce is not None else uuid.uuid4().hex[:20]
        url = signed_url or PUBLIC_URL + path + (f"?{query}" if query else "")
        sig = v3_signature(url, params, nonce, self.token) if signature is None else signature
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if sig:
            headers[header] = sig
        if nonce:
            headers["X-Plivo-Signature-V3-Nonce"] = nonce
        return await self.client.post(
            path + (f"?{query}" if query else ""), content=urlencode(params), headers=headers
        )

    async def text(
        self, body: str, sender: str = CUSTOMER, message_uuid: str | None = None, **kw: Any
    ) -> Any:
        params = {
            "From": sender,
            "To": OURS.removeprefix("+"),
            "Text": body,
            "Type": "sms",
            "MessageUUID": message_uuid or str(uuid.uuid4()),
            "Units": "1",
            "TotalRate": "0.00000",
            "TotalAmount": "0.00000",
            "MessageIntent": "",
            "PowerpackUUID": "",
        }
        return await self.post("/plivo/sms", params, **kw)

    async def report(self, message_id: int, message_uuid: str, status: str, error_code: str = "") -> Any:
        params = {
            "MessageUUID": message_uuid,
            "Status": status,
            "ErrorCode": error_code,
            "From": OURS.removeprefix("+"),
            "To": CUSTOMER,
            "Type": "sms",
            "Units": "1",
            "TotalRate": "0.0050",
            "TotalAmount": "0.0050",
            "MCC": "310",
            "MNC": "260",
            "Sequence": "2",
        }
        return await self.post("/plivo/status", params, query=f"m={message_id}")


@pytest.fixture
async def plivo_services(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Services]:
    settings = make_settings(sqlite_url, plivo_auth_id=AUTH_ID, plivo_auth_token=AUTH_TOKEN, plivo_from=OURS)
    svc = build_services(settings, clock=clock)
    yield svc
    await tasks.drain()
    await svc.engine.dispose()


@pytest.fixture
async def app_client(plivo_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_loop(plivo_services) as c:
        yield c


@pytest.fixture
def hooks(app_client: httpx.AsyncClient) -> PlivoWebhooks:
    return PlivoWebhooks(app_client)


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """Plivo's Message API: 202 with a fresh message_uuid per send."""

    def queued(_: Any) -> tuple[int, dict[str, str], str]:
        body = {
            "api_id": str(uuid.uuid4()),
            "message": "message(s) queued",
            "message_uuid": [str(uuid.uuid4())],
        }
        return 202, {"Content-Type": "application/json"}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, API, callback=queued, content_type="application/json")
        yield mock


def sent(mock: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(c.request.body or b"{}") for c in mock.calls if c.request.url == API]


async def messages(services: Services) -> list[Message]:
    async with services.sessions() as s:
        return list(await s.exec(select(Message).order_by(col(Message.id))))


async def contact(services: Services, phone: str = "+" + CUSTOMER) -> Contact | None:
    async with services.sessions() as s:
        return (await s.exec(select(Contact).where(Contact.phone == phone))).first()


# Signatures --------------------------------------------------------------------------------


async def test_signed_inbound_is_stored_and_answered_by_rest(
    hooks: PlivoWebhooks, plivo_services: Services, api: responses.RequestsMock
) -> None:
    resp = await hooks.text("where are you located?", message_uuid="1e2b8f4a-0000-4000-8000-00000000aaaa")
    assert resp.status_code == 200
    assert "<Message" not in resp.text  # replies never ride in the webhook answer
    await tasks.drain()
    inbound, out = await messages(plivo_services)
    assert (inbound.direction, inbound.provider, inbound.provider_message_id) == (
        "in",
        "plivo",
        "1e2b8f4a-0000-4000-8000-00000000aaaa",
    )
    c = await contact(plivo_services)
    assert c is not None and inbound.contact_id == c.id  # "+" added to Plivo's digits
    (body,) = sent(api)
    assert "12 Maple St" in body["text"] and body["dst"] == CUSTOMER and body["src"] == OURS.removeprefix("+")
    assert (out.provider, out.provider_message_id, out.status) == (
        "plivo",
        api.calls[0].response.json()["message_uuid"][0],
        "sent",
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"signature": "bm90IHRoZSByaWdodCBzaWduYXR1cmU="},  # wrong
        {"signature": ""},  # missing
        {"nonce": ""},  # no nonce header
        {"signed_url": "http://sms.example.com/plivo/sms"},  # signed for another URL (scheme)
        {"signed_url": "https://evil.example.com/plivo/sms"},  # ... another host
        {"header": "X-Plivo-Signature-V2"},  # V2 does not cover the parameters: not accepted
    ],
    ids=["wrong", "missing", "no-nonce", "other-scheme", "other-host", "v2-header"],
)
async def test_bad_signature_is_refused_and_nothing_stored(
    hooks: PlivoWebhooks, plivo_services: Services, api: responses.RequestsMock, kw: dict[str, str]
) -> None:
    resp = await hooks.text("book a haircut", **kw)
    assert resp.status_code == 403
    await tasks.drain()
    assert await messages(plivo_services) == []
    assert sent(api) == []


async def test_tampered_parameters_are_refused(hooks: PlivoWebhooks, plivo_services: Services) -> None:
    params = {
        "From": CUSTOMER,
        "To": "15005550008",
        "Text": "hi",
        "Type": "sms",
        "MessageUUID": str(uuid.uuid4()),
    }
    nonce = "12345678901234567890"
    sig = v3_signature(PUBLIC_URL + "/plivo/sms", params, nonce)
    resp = await hooks.post("/plivo/sms", {**params, "Text": "cancel everything"}, signature=sig, nonce=nonce)
    assert resp.status_code == 403
    assert await messages(plivo_services) == []


async def test_replayed_nonce_is_refused(hooks: PlivoWebhooks, plivo_services: Services, api: Any) -> None:
    params = {
        "From": CUSTOMER,
        "To": "15005550008",
        "Text": "hi",
        "Type": "sms",
        "MessageUUID": str(uuid.uuid4()),
    }
    first = await hooks.post("/plivo/sms", params, nonce="55555555555555555555")
    await tasks.drain()
    again = await hooks.post("/plivo/sms", params, nonce="55555555555555555555")
    assert (first.status_code, again.status_code) == (200, 403)
    await tasks.drain()
    assert sum(m.direction == "in" for m in await messages(plivo_services)) == 1


async def test_replay_of_a_status_report_is_refused(hooks: PlivoWebhooks, plivo_services: Services) -> None:
    params = {"MessageUUID": "x", "Status": "delivered", "ErrorCode": ""}
    first = await hooks.post("/plivo/status", params, query="m=1", nonce="66666666666666666666")
    again = await hooks.post("/plivo/status", params, query="m=1", nonce="66666666666666666666")
    assert (first.status_code, again.status_code) == (200, 403)


async def test_one_of_several_signatures_and_the_main_account_header(
    hooks: PlivoWebhooks, plivo_services: Services, api: Any
) -> None:
    params = {
        "From": CUSTOMER,
        "To": "15005550008",
        "Text": "hi",
        "Type": "sms",
        "MessageUUID": str(uuid.uuid4()),
    }
    nonce = "77777777777777777777"
    good = v3_signature(PUBLIC_URL + "/plivo/sms", params, nonce)
    resp = await hooks.post("/plivo/sms", params, signature=f"b3RoZXI=, {good}", nonce=nonce)
    assert resp.status_code == 200
    params2 = {**params, "MessageUUID": str(uuid.uuid4())}
    resp = await hooks.post("/plivo/sms", params2, header="X-Plivo-Signature-Ma-V3")
    assert resp.status_code == 200


async def test_missing_fields_are_400_after_the_signature(
    hooks: PlivoWebhooks, plivo_services: Services
) -> None:
    no_from = await hooks.post(
        "/plivo/sms", {"To": "15005550008", "Text": "hi", "MessageUUID": str(uuid.uuid4())}
    )
    no_uuid = await hooks.post("/plivo/sms", {"From": CUSTOMER, "To": "15005550008", "Text": "hi"})
    assert (no_from.status_code, no_uuid.status_code) == (400, 400)
    unsigned = await hooks.post("/plivo/sms", {"To": "15005550008", "Text": "hi"}, signature="")
    assert unsigned.status_code == 403  # the signature is checked first
    assert await messages(plivo_services) == []


def test_verify_uses_the_sorted_query_and_refuses_an_empty_token() -> None:
    ch = PlivoChannel(AUTH_ID, AUTH_TOKEN, OURS, PUBLIC_URL)
    url = PUBLIC_URL + "/plivo/status?z=1&m=5"
    params = {"Status": "sent", "MessageUUID": "abc"}
    ch.verify("POST", url, params, v3_signature(url, params, "n1"), "n1")
    with pytest.raises(SignatureError):
        ch.verify("POST", url, {**params, "Status": "delivered"}, v3_signature(url, params, "n1"), "n1")
    with pytest.raises(SignatureError):
        ch.verify("POST", url, params, "caf\u00e9,\u2603", "n1")  # non-ASCII header: refused, no crash
    blank = PlivoChannel(AUTH_ID, "", OURS, PUBLIC_URL)
    with pytest.raises(SignatureError):  # anyone can compute an HMAC with an empty key
        blank.verify("POST", url, params, v3_signature(url, params, "n1", token=""), "n1")


def test_url_for_keeps_a_path_prefix_of_the_public_url() -> None:
    ch = PlivoChannel(AUTH_ID, AUTH_TOKEN, OURS, "https://example.com/textdesk/")
    assert ch.status_url(42) == "https://example.com/textdesk/plivo/status?m=42"


# Sending on the wire ---------------------------------------------------------------------------


def _channel(**kw: Any) -> PlivoChannel:
    return PlivoChannel(AUTH_ID, AUTH_TOKEN, OURS, PUBLIC_URL, **kw)


@responses.activate
async def test_send_posts_the_message_api_format() -> None:
    responses.post(
        API,
        status=202,
        json={
            "api_id": "a1",
            "message": "message(s) queued",
            "message_uuid": ["db3ce55a-7f1d-11e1-8ea7-1231380bc196"],
        },
    )
    result = await _channel().send("+12125550123", "See you at 2", 7)
    assert result.ok and result.status == "sent"
    assert result.provider_message_id == "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
    (call,) = responses.calls
    body = json.loads(call.request.body or b"{}")
    assert {k: body[k] for k in ("src", "dst", "text", "url", "method")} == {
        "src": "15005550008",
        "dst": "12125550123",
        "text": "See you at 2",
        "url": "https://sms.example.com/plivo/status?m=7",
        "method": "POST",
    }
    assert body.get("type", "sms") == "sms"
    expected_auth = "Basic " + base64.b64encode(f"{AUTH_ID}:{AUTH_TOKEN}".encode()).decode()
    assert call.request.headers["Authorization"] == expected_auth


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (400, {"api_id": "a", "error": "invalid dst parameter"}, "invalid_number", False),
        (400, {"api_id": "a", "error": "text parameter not found"}, "rejected", False),
        (401, {"api_id": "a", "error": "Authentication failed"}, "auth", False),
        (403, {"api_id": "a", "error": "Geo permission not enabled"}, "rejected", False),
        (404, {"api_id": "a", "error": "not found"}, "auth", False),
        (429, {"api_id": "a", "error": "Too many requests"}, "rate_limited", True),
        (500, {"api_id": "a", "error": "Internal server error"}, "unreachable", True),
        (503, None, "unreachable", True),
    ],
)
@responses.activate
async def test_send_errors_are_classified(status: int, body: Any, error: str, retryable: bool) -> None:
    if body is None:
        responses.post(API, status=status, body="<html>Service Unavailable</html>")
    else:
        responses.post(API, status=status, json=body)
    result = await _channel().send("+12125550123", "hello", 1)
    assert (result.ok, result.error, result.retryable) == (False, error, retryable)
    assert len(responses.calls) == 1  # the SDK never retries a send by itself; the outbox does


@responses.activate
async def test_connection_error_is_retryable() -> None:
    responses.post(API, body=requests.ConnectionError("connection refused"))
    result = await _channel().send("+12125550123", "hello", 1)
    assert (result.ok, result.error, result.retryable) == (False, "unreachable", True)


@responses.activate
async def test_api_base_points_the_sdk_elsewhere() -> None:
    fake = f"http://127.0.0.1:9999/v1/Account/{AUTH_ID}/Message/"
    responses.post(
        fake, status=202, json={"api_id": "a", "message": "message(s) queued", "message_uuid": ["u-9"]}
    )
    result = await _channel(api_base="http://127.0.0.1:9999").send("+12125550123", "hi", 3)
    assert result.ok and result.provider_message_id == "u-9"


@responses.activate
async def test_unconfigured_or_odd_destinations_never_reach_the_api() -> None:
    assert (await PlivoChannel("", "", "", PUBLIC_URL).send("+12125550123", "hi", 1)).error == "auth"
    assert (
        await PlivoChannel("not-an-id", "t", OURS, PUBLIC_URL).send("+12125550123", "hi", 1)
    ).error == "auth"
    several = await _channel().send("+12125550123<12125550124", "hi", 1)  # "<" means several numbers
    assert several.error == "invalid_number"
    assert len(responses.calls) == 0


def test_build_reads_the_settings(sqlite_url: str) -> None:
    ch = build(make_settings(sqlite_url, plivo_auth_id=AUTH_ID, plivo_auth_token=AUTH_TOKEN, plivo_from=OURS))
    assert (ch.provider, ch.channel, ch.from_number, ch.client is not None) == ("plivo", "sms", OURS, True)
    assert 0 < ch.webhook_budget_s <= 3.0


# Delivery reports --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("delivered", "", ("delivered", None)),
        ("delivered", "000", ("delivered", None)),
        ("queued", "", ("queued", None)),
        ("sent", "", ("sent", None)),
        ("undelivered", "200", ("undelivered", "opted_out")),
        ("failed", "200", ("failed", "opted_out")),
        ("undelivered", "50", ("undelivered", "invalid_number")),
        ("undelivered", "70", ("undelivered", "invalid_number")),
        ("undelivered", "30", ("undelivered", "carrier_filtered")),
        ("undelivered", "100", ("undelivered", "carrier_filtered")),
        ("undelivered", "80", ("undelivered", "unreachable")),
        ("failed", "20", ("failed", "unreachable")),
        ("failed", "900", ("failed", "rejected")),
        ("failed", "910", ("failed", "auth")),
        ("rejected", "40", ("failed", "rejected")),
        ("failed", "4242", ("failed", "unknown")),
    ],
)
def test_status_mapping(status: str, code: str, expected: tuple[str, str | None]) -> None:
    update = status_update({"MessageUUID": "u", "Status": status, "ErrorCode": code}, 5)
    assert update is not None
    assert (update.status, update.error) == expected
    assert update.message_id == 5 and update.provider == "plivo"
    if expected[1]:
        assert update.error_code == int(code) and update.detail


def test_inbound_states_are_not_tracked() -> None:
    assert status_update({"MessageUUID": "u", "Status": "received"}, None) is None
    assert error_for(None) == (None, None) and error_for(200)[0] == "opted_out"


# Whole conversations through the app ----------------------------------------------------------------


async def test_full_booking_conversation_over_plivo(
    hooks: PlivoWebhooks, plivo_services: Services, api: responses.RequestsMock
) -> None:
    async def say(text: str) -> str:
        before = len(sent(api))
        resp = await hooks.text(text)
        assert resp.status_code == 200
        await tasks.drain()
        return "\n".join(b["text"] for b in sent(api)[before:])

    r1 = await say("hi can i get a haircut tmrw?")
    assert "1)" in r1 and "Tue Mar 3" in r1  # numbered times offered
    r2 = await say("2")
    assert "Reply YES" in r2
    async with plivo_services.sessions() as s:
        assert list(await s.exec(select(Booking))) == []  # nothing before an explicit yes
    r3 = await say("yes please")
    assert "booked" in r3
    async with plivo_services.sessions() as s:
        (b,) = list(await s.exec(select(Booking)))
    assert b.service == "haircut" and b.status == "active"
    assert b.start.astimezone(NY).date() == dt.date(2026, 3, 3)
    assert all(
        body["dst"] == CUSTOMER and body["url"].startswith(PUBLIC_URL + "/plivo/status?m=")
        for body in sent(api)
    )

    # Plivo's delivery report for the confirmation moves it to delivered.
    out = [m for m in await messages(plivo_services) if m.direction == "out"]
    assert len(out) == len(sent(api)) and all(m.provider == "plivo" and m.provider_message_id for m in out)
    last = out[-1]
    assert last.id is not None and last.provider_message_id is not None
    resp = await hooks.report(last.id, last.provider_message_id, "sent")
    resp = await hooks.report(last.id, last.provider_message_id, "delivered")
    assert resp.status_code == 200
    late = await hooks.report(last.id, last.provider_message_id, "queued")  # out of order: ignored
    assert late.status_code == 200
    (m,) = [m for m in await messages(plivo_services) if m.id == last.id]
    assert (m.status, m.provider, m.provider_message_id) == ("delivered", "plivo", last.provider_message_id)


async def test_duplicate_webhook_sends_no_second_reply(
    hooks: PlivoWebhooks, plivo_services: Services, api: responses.RequestsMock
) -> None:
    same = str(uuid.uuid4())
    first = await hooks.text("where are you located?", message_uuid=same)
    await tasks.drain()
    again = await hooks.text("where are you located?", message_uuid=same)  # Plivo's retry, new nonce
    await tasks.drain()
    assert first.status_code == again.status_code == 200
    assert len(sent(api)) == 1
    assert [m.direction for m in await messages(plivo_services)] == ["in", "out"]


async def test_error_200_report_opts_the_contact_out(
    hooks: PlivoWebhooks, plivo_services: Services, api: responses.RequestsMock
) -> None:
    await hooks.text("where are you located?")
    await tasks.drain()
    out = next(m for m in await messages(plivo_services) if m.direction == "out")
    assert out.id is not None and out.provider_message_id is not None
    resp = await hooks.report(out.id, out.provider_message_id, "failed", error_code="200")
    assert resp.status_code == 200
    c = await contact(plivo_services)
    assert c is not None and c.consent == "opted_out"
    async with plivo_services.sessions() as s:
        events = list(await s.exec(select(ConsentEvent)))
    assert [(e.new, e.source) for e in events] == [("opted_out", "carrier_opt_out")]
    (m,) = [m for m in await messages(plivo_services) if m.id == out.id]
    assert (m.status, m.error, m.error_code) == ("failed", "opted_out", 200)
    # And nothing more goes out to them.
    before = len(sent(api))
    await hooks.text("hello again")
    await tasks.drain()
    assert len(sent(api)) == before
