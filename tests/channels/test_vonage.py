"""Vonage SMS API channel: signed webhooks, the SMS API's wire format, receipts, whole conversations.

Signatures are computed here from Vonage's documented scheme with hashlib/hmac, never with the
channel or the SDK; sends are checked against the real HTTP exchange (``responses`` patches
``requests``, which the SDK uses, in every thread).

The app is served over ASGI in the test's own event loop (httpx's ASGITransport), not through
litestar's AsyncTestClient: that one runs the app on a portal thread with a loop of its own, so
``tasks.drain()`` here would not see the replies the webhook left to the background, and requests
sent together would not overlap (concatenated parts must). The app's lifespan only starts and
closes the services (the job loop is off in tests): the fixtures close them instead.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import requests
import responses
from sqlmodel import col, select

from channels.vonage import PROVIDER, VonageChannel, status_update
from store.models import Booking, Contact, Message
from tests.conftest import PUBLIC_URL, make_settings, serve_in_loop
from textdesk import tasks
from textdesk.clock import FrozenClock
from textdesk.errors import SignatureError
from textdesk.services import Services, build_services

API_KEY, API_SECRET, SIG_SECRET = "abcd1234", "api-secret-xyz", "sig-secret-0123456789"
OUR_NUMBER, CUSTOMER = "15005550007", "12125550123"
SMS_URL = "https://rest.nexmo.com/sms/json"
NY = dt.timezone(dt.timedelta(hours=-5))


# -- Vonage's documented signature, computed independently -----------------------------------------


def vonage_sig(params: dict[str, str], secret: str, method: str) -> str:
    """Sort every parameter but ``sig``; ``&key=value`` with ``&`` and ``=`` in values as ``_``;
    md5hash = md5(string + secret), the others HMAC-<method>(secret, string), hex."""
    signed = "".join(
        "&" + k + "=" + params[k].replace("&", "_").replace("=", "_") for k in sorted(params) if k != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((signed + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), signed.encode(), getattr(hashlib, method)).hexdigest()


def signed(
    params: dict[str, str], at: dt.datetime, secret: str = SIG_SECRET, method: str = "sha256"
) -> dict[str, str]:
    out = {**params, "timestamp": str(int(at.timestamp())), "nonce": uuid.uuid4().hex}
    out["sig"] = vonage_sig(out, secret, method)
    return out


class VonageWebhooks:
    """Posts inbound SMS and delivery receipts the way Vonage does, signed."""

    def __init__(self, client: httpx.AsyncClient, clock: FrozenClock, method: str = "sha256") -> None:
        self.client, self.clock, self.method = client, clock, method

    def sign(self, params: dict[str, str], **over: Any) -> dict[str, str]:
        return signed(params, over.pop("at", self.clock.now()), method=self.method, **over)

    async def post(self, path: str, params: dict[str, str], as_json: bool = False) -> Any:
        if as_json:
            content, ctype = json.dumps(params), "application/json"
        else:
            content, ctype = urlencode(params), "application/x-www-form-urlencoded"
        return await self.client.post(path, content=content, headers={"Content-Type": ctype})

    def inbound_params(self, text: str, message_id: str | None = None) -> dict[str, str]:
        return {
            "msisdn": CUSTOMER,
            "to": OUR_NUMBER,
            "messageId": message_id or uuid.uuid4().hex[:16].upper(),
            "text": text,
            "type": "text",
            "keyword": (text.split() or [""])[0].upper(),
            "api-key": API_KEY,
            "message-timestamp": self.clock.now().strftime("%Y-%m-%d %H:%M:%S"),
        }

    async def text(self, text: str, message_id: str | None = None, **extra: str) -> Any:
        params = {**self.inbound_params(text, message_id), **extra}
        return await self.post("/vonage/inbound", self.sign(params))

    async def receipt(
        self, message_id: str, client_ref: str, status: str = "delivered", err: str = "0"
    ) -> Any:
        params = {
            "msisdn": CUSTOMER,
            "to": OUR_NUMBER,
            "network-code": "310090",
            "messageId": message_id,
            "price": "0.00790000",
            "status": status,
            "scts": "2603021401",
            "err-code": err,
            "api-key": API_KEY,
            "client-ref": client_ref,
            "message-timestamp": self.clock.now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        return await self.post("/vonage/status", self.sign(params))


class FakeSmsApi:
    """The SMS API's answers: message ids in order, and the form of every request."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.ids = (f"0A0000000{n:07X}" for n in itertools.count(1))
        self.requests: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        mock.add_callback(responses.POST, SMS_URL, callback=self._answer)

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        form = dict(parse_qsl(request.body))
        self.requests.append(form)
        self.headers.append(dict(request.headers))
        answer = {
            "message-count": "1",
            "messages": [
                {
                    "to": form["to"],
                    "message-id": next(self.ids),
                    "status": "0",
                    "remaining-balance": "3.14159265",
                    "message-price": "0.00790000",
                    "network": "310090",
                    "client-ref": form.get("client-ref", ""),
                }
            ],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(answer)

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.requests]


# -- fixtures ---------------------------------------------------------------------------------------


def vonage_settings(sqlite_url: str, **over: Any) -> Any:
    base: dict[str, Any] = dict(
        vonage_api_key=API_KEY,
        vonage_api_secret=API_SECRET,
        vonage_signature_secret=SIG_SECRET,
        vonage_signature_method="sha256",
        vonage_from="+" + OUR_NUMBER,
    )
    return make_settings(sqlite_url, **{**base, **over})


@pytest.fixture
async def vservices(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Services]:
    svc = build_services(vonage_settings(sqlite_url), clock=clock)
    yield svc
    await svc.close()  # drains background sends, closes the channels and the engine


@pytest.fixture
async def vclient(vservices: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_loop(vservices) as c:
        yield c


@pytest.fixture
def vonage(vclient: httpx.AsyncClient, clock: FrozenClock) -> VonageWebhooks:
    return VonageWebhooks(vclient, clock)


@pytest.fixture
def sms_api() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeSmsApi(mock)


async def messages(services: Services) -> list[Message]:
    async with services.sessions() as s:
        return list(await s.exec(select(Message).order_by(col(Message.id))))


async def contact(services: Services) -> Contact | None:
    async with services.sessions() as s:
        return (await s.exec(select(Contact).where(Contact.phone == "+" + CUSTOMER))).first()


def channel(services: Services) -> VonageChannel:
    ch: VonageChannel = services.channels[PROVIDER]
    return ch


# -- signatures, on the channel -----------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


def make_channel(method: str = "sha256", secret: str = SIG_SECRET, **kw: Any) -> VonageChannel:
    return VonageChannel(
        API_KEY,
        API_SECRET,
        secret,
        method,
        "+" + OUR_NUMBER,
        PUBLIC_URL,
        clock=FrozenClock(NOW),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("method", ["md5hash", "md5", "sha1", "sha256", "sha512"])
def test_documented_signature_is_accepted_for_every_method(method: str) -> None:
    params = signed({"msisdn": CUSTOMER, "text": "a&b=c d", "messageId": "X1"}, NOW, method=method)
    make_channel(method).verify(params)
    make_channel(method).verify({**params, "sig": params["sig"].upper()})  # hex in either case


def test_sha256_vector_by_hand() -> None:
    # The string Vonage signs, written out: sorted keys, '&' and '=' in values turned into '_'.
    params = {"text": "a&b=c", "msisdn": "447700900001", "timestamp": str(int(NOW.timestamp())), "nonce": "n"}
    string = f"&msisdn=447700900001&nonce=n&text=a_b_c&timestamp={int(NOW.timestamp())}"
    sig = hmac.new(SIG_SECRET.encode(), string.encode(), hashlib.sha256).hexdigest()
    make_channel("sha256").verify({**params, "sig": sig})
    md5 = hashlib.md5((string + SIG_SECRET).encode()).hexdigest()
    make_channel("md5hash").verify({**params, "sig": md5})
    with pytest.raises(SignatureError):  # md5hash is not HMAC-MD5
        make_channel("md5").verify({**params, "sig": md5})


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p.pop("sig"), "missing sig"),
        (lambda p: p.update(sig="0" * 64), "invalid sig"),
        (lambda p: p.update(sig="é" * 64), "invalid sig"),
        (lambda p: p.update(text="tampered"), "invalid sig"),
        (lambda p: p.pop("timestamp"), "timestamp"),
        (lambda p: p.update(timestamp="soon"), "timestamp"),
    ],
)
def test_bad_signatures_are_refused(mutate: Callable[[dict[str, str]], Any], reason: str) -> None:
    params = signed({"msisdn": CUSTOMER, "text": "hi", "messageId": "X1"}, NOW)
    mutate(params)
    with pytest.raises(SignatureError, match=reason):
        make_channel().verify(params)


@pytest.mark.parametrize("skew", [dt.timedelta(minutes=-6), dt.timedelta(minutes=6)])
def test_timestamp_outside_five_minutes_is_refused(skew: dt.timedelta) -> None:
    params = signed({"msisdn": CUSTOMER, "text": "hi"}, NOW + skew)
    with pytest.raises(SignatureError, match="5 minutes"):
        make_channel().verify(params)
    make_channel().verify(signed({"msisdn": CUSTOMER, "text": "hi"}, NOW + skew / 2))


def test_no_signature_secret_refuses_everything() -> None:
    params = signed({"msisdn": CUSTOMER, "text": "hi"}, NOW, secret="")
    with pytest.raises(SignatureError, match="no Vonage signature secret"):
        make_channel(secret="").verify(params)


# -- webhooks over HTTP: refused requests store nothing ----------------------------------------------


async def test_unsigned_wrong_and_expired_webhooks_are_403_and_store_nothing(
    vonage: VonageWebhooks, vservices: Services, clock: FrozenClock
) -> None:
    plain = vonage.inbound_params("hi")
    wrong = {**vonage.sign(plain), "sig": vonage_sig(plain, "not-the-secret", "sha256")}
    expired = vonage.sign(plain, at=clock.now() - dt.timedelta(minutes=6))
    other_method = signed(plain, clock.now(), method="sha512")
    for params in (plain, wrong, expired, other_method):
        resp = await vonage.post("/vonage/inbound", params)
        assert resp.status_code == 403
    bad_receipt = {**vonage.sign({"messageId": "X", "status": "delivered"}), "sig": "deadbeef"}
    assert (await vonage.post("/vonage/status", bad_receipt)).status_code == 403
    assert await messages(vservices) == []


async def test_replayed_nonce_is_refused(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    params = vonage.sign(vonage.inbound_params("where are you located?"))
    assert (await vonage.post("/vonage/inbound", params)).status_code == 200
    await tasks.drain()  # the replies leave over REST, in the background
    before = await messages(vservices)
    assert (await vonage.post("/vonage/inbound", params)).status_code == 403
    await tasks.drain()
    assert [m.id for m in await messages(vservices)] == [m.id for m in before]
    assert len(sms_api.requests) == 1


async def test_missing_msisdn_or_message_id_is_400_after_the_signature(
    vonage: VonageWebhooks, vservices: Services
) -> None:
    no_sender = {k: v for k, v in vonage.inbound_params("hi").items() if k != "msisdn"}
    no_id = {k: v for k, v in vonage.inbound_params("hi").items() if k != "messageId"}
    for params in (no_sender, no_id):
        assert (await vonage.post("/vonage/inbound", vonage.sign(params))).status_code == 400
    assert (await vonage.post("/vonage/inbound", no_sender)).status_code == 403  # unsigned: refused first
    assert await messages(vservices) == []


async def test_md5hash_signed_webhooks(sqlite_url: str, clock: FrozenClock, sms_api: FakeSmsApi) -> None:
    svc = build_services(vonage_settings(sqlite_url, vonage_signature_method="md5hash"), clock=clock)
    async with serve_in_loop(svc) as client:
        hooks = VonageWebhooks(client, clock, method="md5hash")
        assert (await hooks.text("where are you located?")).status_code == 200
        await tasks.drain()
        forged = VonageWebhooks(client, clock, method="sha256")
        assert (await forged.text("where are you located?")).status_code == 403
    assert sum(m.direction == "in" for m in await messages(svc)) == 1
    assert "12 Maple St" in sms_api.texts[0]
    await svc.close()


async def test_json_and_get_webhooks_are_accepted(
    vonage: VonageWebhooks, vclient: httpx.AsyncClient, vservices: Services, sms_api: FakeSmsApi
) -> None:
    resp = await vonage.post("/vonage/inbound", vonage.sign(vonage.inbound_params("hours?")), as_json=True)
    assert resp.status_code == 200
    resp = await vclient.get("/vonage/inbound", params=vonage.sign(vonage.inbound_params("address?")))
    assert resp.status_code == 200
    await tasks.drain()
    assert sum(m.direction == "in" for m in await messages(vservices)) == 2


# -- sending: the SMS API's wire format ---------------------------------------------------------------


async def test_send_posts_the_sms_api_form() -> None:
    ch = make_channel()
    with responses.RequestsMock() as mock:
        api = FakeSmsApi(mock)
        result = await ch.send("+" + CUSTOMER, "See you at 3:00 PM", 42)
        emoji = await ch.send("+" + CUSTOMER, "See you 😀", 43)
    assert result.ok and result.status == "sent" and result.provider_message_id == "0A00000000000001"
    assert emoji.ok and emoji.provider_message_id == "0A00000000000002"
    first, second = api.requests
    assert first == {
        "to": CUSTOMER,
        "from": OUR_NUMBER,
        "text": "See you at 3:00 PM",
        "client-ref": "42",
        "callback": f"{PUBLIC_URL}/vonage/status",
    }
    assert second["type"] == "unicode" and second["text"] == "See you 😀" and second["client-ref"] == "43"
    # SDK v4 authenticates the SMS API with HTTP Basic (key:secret), not api_key/api_secret fields.
    expected = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert api.headers[0]["Authorization"] == expected
    assert "api_secret" not in first and "sig" not in first
    await ch.aclose()


async def test_send_uses_the_number_the_customer_wrote_to() -> None:
    ch = make_channel()
    with responses.RequestsMock() as mock:
        api = FakeSmsApi(mock)
        assert (await ch.send("+" + CUSTOMER, "hi", 1, "+15005550099")).ok
        assert (await ch.send("+" + CUSTOMER, "hi", 2, None)).ok
    assert [r["from"] for r in api.requests] == ["15005550099", OUR_NUMBER]


def _answer(status: str, text: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        ("1", "rate_limited", True),
        ("2", "rejected", False),
        ("4", "auth", False),
        ("5", "unreachable", True),
        ("7", "carrier_filtered", False),
        ("9", "auth", False),
        ("15", "rejected", False),
        ("29", "rejected", False),
        ("33", "invalid_number", False),
        ("98", "unknown", False),
    ],
)
async def test_sms_api_status_codes_are_mapped(status: str, error: str, retryable: bool) -> None:
    ch = make_channel()
    with responses.RequestsMock() as mock:
        mock.post(SMS_URL, json=_answer(status, "Vonage says no"))
        result = await ch.send("+" + CUSTOMER, "hello", 7)
    assert (result.ok, result.error, result.retryable) == (False, error, retryable)
    assert result.error_code == int(status)
    assert result.detail and result.detail.endswith("Vonage says no")


@pytest.mark.parametrize(
    ("http_status", "error", "retryable"),
    [
        (500, "unreachable", True),
        (502, "unreachable", True),
        (429, "rate_limited", True),
        (401, "auth", False),
        (400, "rejected", False),
    ],
)
async def test_http_errors_are_mapped(http_status: int, error: str, retryable: bool) -> None:
    ch = make_channel()
    with responses.RequestsMock() as mock:
        mock.post(SMS_URL, status=http_status, body="error")
        result = await ch.send("+" + CUSTOMER, "hello", 7)
    assert (result.ok, result.error, result.retryable) == (False, error, retryable)


async def test_connection_errors_are_retryable() -> None:
    ch = make_channel()
    with responses.RequestsMock() as mock:
        mock.post(SMS_URL, body=requests.ConnectionError("connection refused"))
        result = await ch.send("+" + CUSTOMER, "hello", 7)
    assert (result.ok, result.error, result.retryable) == (False, "unreachable", True)


async def test_a_partly_refused_long_text_is_not_retried() -> None:
    ch = make_channel()
    answer = {
        "message-count": "2",
        "messages": [{"status": "0", "message-id": "P1"}, {"status": "1", "error-text": "Throttled"}],
    }
    with responses.RequestsMock() as mock:
        mock.post(SMS_URL, json=answer)
        result = await ch.send("+" + CUSTOMER, "x" * 300, 7)
    # Part 1 left: a retry would send it twice.
    assert (result.ok, result.error, result.error_code, result.retryable) == (False, "rate_limited", 1, False)


async def test_unconfigured_channel_fails_without_calling_vonage() -> None:
    ch = VonageChannel("", "", "", "sha256", "", PUBLIC_URL)
    with responses.RequestsMock():  # any request would fail the test
        result = await ch.send("+" + CUSTOMER, "hello", 1)
    assert (result.ok, result.error) == (False, "auth")


async def test_callback_longer_than_the_api_allows_is_left_out() -> None:
    long_url = "https://" + "x" * 100 + ".example"
    ch = VonageChannel(API_KEY, API_SECRET, SIG_SECRET, "sha256", OUR_NUMBER, long_url)
    with responses.RequestsMock() as mock:
        api = FakeSmsApi(mock)
        assert (await ch.send("+" + CUSTOMER, "hello", 1)).ok
    assert "callback" not in api.requests[0] and api.requests[0]["from"] == OUR_NUMBER


# -- delivery receipts (pure mapping) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "err", "expected", "error"),
    [
        ("delivered", "0", "delivered", None),
        ("accepted", "0", "sent", None),
        ("buffered", "0", "sent", None),
        ("expired", "2", "undelivered", "unreachable"),
        ("failed", "9", "undelivered", "opted_out"),  # Opt-Out Assist's STOP
        ("failed", "3", "undelivered", "invalid_number"),
        ("failed", "4", "undelivered", "carrier_filtered"),  # the user's own bar: consent stays
        ("rejected", "6", "failed", "carrier_filtered"),
        ("rejected", "14", "failed", "carrier_filtered"),
        ("failed", "50", "undelivered", "carrier_filtered"),
        ("failed", "77", "undelivered", "unknown"),
        ("unknown", "0", "sent", None),
        ("unknown", "1", "undelivered", "unknown"),
    ],
)
def test_receipt_statuses_and_error_codes(status: str, err: str, expected: str, error: str | None) -> None:
    update = status_update({"messageId": "M1", "status": status, "err-code": err, "client-ref": "17"})
    assert update is not None
    assert (update.provider, update.provider_message_id, update.message_id) == ("vonage", "M1", 17)
    assert (update.status, update.error, update.error_code) == (expected, error, int(err))
    assert (update.detail is None) == (error is None)


def test_receipt_without_our_reference_or_with_an_undocumented_status() -> None:
    update = status_update({"messageId": "M1", "status": "delivered", "err-code": "0", "client-ref": "abc"})
    assert update is not None and update.message_id is None
    assert status_update({"messageId": "M1", "status": "teleported"}) is None


# -- whole conversations through the app -----------------------------------------------------------------


async def bookings(services: Services) -> list[Booking]:
    async with services.sessions() as s:
        return list(await s.exec(select(Booking)))


async def test_full_booking_conversation_over_vonage(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    r1 = await vonage.text("hi can i get a haircut tmrw?")
    assert r1.status_code == 200 and r1.text == ""  # no inline answer: the reply leaves over REST
    await tasks.drain()
    assert "1)" in sms_api.texts[-1] and "Tue Mar 3" in sms_api.texts[-1]
    assert await bookings(vservices) == []
    await vonage.text("2")
    await tasks.drain()
    assert "Reply YES" in sms_api.texts[-1]
    assert await bookings(vservices) == []
    await vonage.text("yes please")
    await tasks.drain()
    assert "booked" in sms_api.texts[-1]
    (b,) = await bookings(vservices)
    assert b.service == "haircut" and b.status == "active"
    assert b.start.astimezone(NY).date() == dt.date(2026, 3, 3)
    assert len(sms_api.requests) == 3
    assert all(r["to"] == CUSTOMER and r["from"] == OUR_NUMBER for r in sms_api.requests)

    out = [m for m in await messages(vservices) if m.direction == "out"]
    assert [m.body for m in out] == sms_api.texts
    assert [r["client-ref"] for r in sms_api.requests] == [str(m.id) for m in out]
    assert all(m.provider == "vonage" and m.status == "sent" and m.provider_message_id for m in out)
    assert all(m.provider == "vonage" for m in await messages(vservices) if m.direction == "in")

    # The receipt for the confirmation moves it to delivered; a late "accepted" never moves it back.
    last = out[-1]
    assert last.provider_message_id is not None
    resp = await vonage.receipt(last.provider_message_id, str(last.id))
    assert resp.status_code == 204
    await vonage.receipt(last.provider_message_id, str(last.id), status="accepted")
    (now_last,) = [m for m in await messages(vservices) if m.id == last.id]
    assert (now_last.status, now_last.provider, now_last.provider_message_id) == (
        "delivered",
        "vonage",
        last.provider_message_id,
    )
    # A receipt for a message textdesk never sent is acknowledged and changes nothing.
    assert (await vonage.receipt("0A00000000FFFFFF", "")).status_code == 200


async def test_duplicate_inbound_webhook_sends_no_second_reply(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    first = await vonage.text("where are you located?", message_id="0B000000DUP00001")
    await tasks.drain()
    # Vonage resends (freshly signed) when it missed our 200: same messageId.
    again = await vonage.text("where are you located?", message_id="0B000000DUP00001")
    await tasks.drain()
    assert first.status_code == again.status_code == 200
    assert len(sms_api.requests) == 1 and "12 Maple St" in sms_api.texts[0]
    assert [m.direction for m in await messages(vservices)] == ["in", "out"]


async def test_stop_over_vonage_opts_the_contact_out(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    await vonage.text("where are you located?")
    await tasks.drain()
    assert (await vonage.text("STOP")).status_code == 200
    await tasks.drain()
    c = await contact(vservices)
    assert c is not None and c.consent == "opted_out"
    sent = len(sms_api.requests)
    await vonage.text("where are you located?")
    await tasks.drain()
    assert len(sms_api.requests) == sent  # nothing more goes to them


async def test_receipt_error_9_opts_the_contact_out(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    await vonage.text("where are you located?")
    await tasks.drain()
    (out,) = [m for m in await messages(vservices) if m.direction == "out"]
    assert out.provider_message_id is not None
    resp = await vonage.receipt(out.provider_message_id, str(out.id), status="failed", err="9")
    assert resp.status_code == 204
    c = await contact(vservices)
    assert c is not None and c.consent == "opted_out"
    (failed,) = [m for m in await messages(vservices) if m.direction == "out"]
    assert (failed.status, failed.error, failed.error_code) == ("undelivered", "opted_out", 9)


async def test_concatenated_parts_are_answered_as_one_message(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    parts = ["hi can i get a hai", "rcut tmrw?"]

    def part(n: int) -> dict[str, str]:
        return {"concat": "true", "concat-ref": "108", "concat-total": "2", "concat-part": str(n)}

    # Part 2 first, as carriers sometimes deliver them; both requests wait for the whole text.
    r2, r1 = await asyncio.gather(
        vonage.text(parts[1], message_id="0C0000000000PRT2", **part(2)),
        vonage.text(parts[0], message_id="0C0000000000PRT1", **part(1)),
    )
    assert r1.status_code == r2.status_code == 200
    await tasks.drain()
    inbound = [m for m in await messages(vservices) if m.direction == "in"]
    assert [(m.body, m.provider_message_id) for m in inbound] == [("".join(parts), "0C0000000000PRT1")]
    assert len(sms_api.requests) == 1 and "Tue Mar 3" in sms_api.texts[0]
    # A resent part of a text already answered is acknowledged and not answered again.
    assert (await vonage.text(parts[1], message_id="0C0000000000PRT2", **part(2))).status_code == 200
    await tasks.drain()
    assert len(sms_api.requests) == 1


async def test_a_part_whose_siblings_never_come_is_answered_alone(
    vonage: VonageWebhooks, vservices: Services, sms_api: FakeSmsApi
) -> None:
    channel(vservices).concat_wait_s = 0.2
    part_1 = {"concat": "true", "concat-ref": "7", "concat-total": "2", "concat-part": "1"}
    resp = await vonage.text("where are you located?", **part_1)
    assert resp.status_code == 200
    await tasks.drain()
    assert "12 Maple St" in sms_api.texts[0]
    assert channel(vservices).parts.pending == {}
