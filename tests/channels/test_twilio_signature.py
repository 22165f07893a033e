"""Signature validation: the documented vector, 403 paths, proxy and port variants."""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from twilio.request_validator import RequestValidator

from channels.twilio import TwilioChannel
from store.models import Message
from tests.conftest import ACCOUNT_SID, Sms
from textdesk.errors import SignatureError

VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def test_design_md_signature_vector() -> None:
    sig = RequestValidator("12345").compute_signature(
        "https://mycompany.com/myapp.php?foo=1&bar=2", VECTOR_PARAMS
    )
    assert sig == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_channel_verifies_the_vector_against_public_url_behind_a_proxy() -> None:
    # The app may sit behind a proxy on another host/port: the public URL is what Twilio signed.
    ch = TwilioChannel("AC1", "12345", "+1", "https://mycompany.com")
    ch.verify("/myapp.php", "foo=1&bar=2", VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_port_variants_are_accepted() -> None:
    ch = TwilioChannel("AC1", "12345", "+1", "https://mycompany.com:443")
    ch.verify("/myapp.php", "foo=1&bar=2", VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_tampered_params_fail() -> None:
    ch = TwilioChannel("AC1", "12345", "+1", "https://mycompany.com")
    bad = dict(VECTOR_PARAMS, Digits="9999")
    try:
        ch.verify("/myapp.php", "foo=1&bar=2", bad, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    except SignatureError:
        return
    raise AssertionError("tampered request was accepted")


async def _stored(services: Any) -> list[Message]:
    async with services.sessions() as s:
        return list(await s.exec(select(Message)))


async def test_invalid_signature_is_403_and_stores_nothing(sms: Sms, services: Any) -> None:
    params = {"MessageSid": "SMbad", "AccountSid": ACCOUNT_SID, "From": "+12125550123", "Body": "hi"}
    resp = await sms.post("/twilio/sms", params, signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert resp.status_code == 403
    assert await _stored(services) == []


async def test_missing_signature_is_403(sms: Sms, services: Any) -> None:
    params = {"MessageSid": "SMnone", "AccountSid": ACCOUNT_SID, "From": "+12125550123", "Body": "hi"}
    resp = await sms.post("/twilio/sms", params, signature="")
    assert resp.status_code == 403
    assert await _stored(services) == []


async def test_signature_for_another_token_is_403(client: Any, services: Any) -> None:
    other = Sms(client, token="not-the-token")
    resp = await other.text("hello")
    assert resp.status_code == 403
    assert await _stored(services) == []


async def test_wrong_account_sid_is_403(sms: Sms, services: Any) -> None:
    resp = await sms.text("hello", AccountSid="AC" + "9" * 32)
    assert resp.status_code == 403
    assert await _stored(services) == []


async def test_status_callback_requires_signature(sms: Sms) -> None:
    resp = await sms.post(
        "/twilio/status", {"MessageSid": "SM1", "MessageStatus": "delivered"}, signature="nope"
    )
    assert resp.status_code == 403
