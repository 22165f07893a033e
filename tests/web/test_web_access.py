"""Who may use which route: every route of the app is listed here, and checked for anonymous
visitors (pages -> redirect to /login, /api -> 401) and for each role (wrong role -> 403)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from sqlmodel import select

from store.models import CannedReply, Contact, Message, Trace
from tests.web.conftest import Web, login, make_web, post_form
from textdesk.clock import FrozenClock
from web.auth import add_user

ANY = {"admin", "agent", "reviewer"}
INBOX = {"agent", "admin"}
REVIEW = {"reviewer", "admin"}
ADMIN = {"admin"}

# (method, path, roles allowed, form data). {cid}, {tid}, {uid}, {rid} are filled in from seeded data.
MATRIX: list[tuple[str, str, set[str], dict[str, str] | None]] = [
    ("GET", "/", ANY, None),
    ("GET", "/inbox", INBOX, None),
    ("GET", "/inbox/rows", INBOX, None),
    ("GET", "/inbox/{cid}", INBOX, None),
    ("GET", "/inbox/{cid}/transcript", INBOX, None),
    ("POST", "/inbox/{cid}/claim", INBOX, {}),
    ("POST", "/inbox/{cid}/reply", INBOX, {"body": "Hello from the team"}),
    ("POST", "/inbox/{cid}/tags", INBOX, {"tag": "vip"}),
    ("POST", "/inbox/{cid}/tags/remove", INBOX, {"tag": "vip"}),
    ("POST", "/inbox/{cid}/notes", INBOX, {"text": "called back"}),
    ("POST", "/inbox/{cid}/messages/{mid}/retry", INBOX, {}),
    ("POST", "/inbox/{cid}/messages/{mid}/cancel", INBOX, {}),
    ("POST", "/inbox/{cid}/contact", INBOX, {"name": "Dana"}),
    ("POST", "/inbox/{cid}/assign", INBOX, {"user_id": "{uid}"}),
    ("POST", "/inbox/{cid}/handback", INBOX, {}),
    ("POST", "/inbox/bulk/resolve", INBOX, {"ids": "{cid}"}),
    ("POST", "/inbox/{cid}/resolve", INBOX, {}),
    ("GET", "/inbox/{cid}/canned", INBOX, None),
    ("POST", "/inbox/{cid}/canned", INBOX, {"canned": "1", "body": "Hi"}),  # the reply _ids adds
    ("POST", "/inbox/segments", INBOX, {"body": "Hello from the team"}),
    ("GET", "/inbox/escalations.json", INBOX, None),
    ("GET", "/traces", REVIEW, None),
    ("GET", "/traces/{tid}", REVIEW, None),
    ("POST", "/traces/{tid}/label", REVIEW, {"label": "correct", "comment": "fine"}),
    ("POST", "/traces/{tid}/case", REVIEW, {"route": "rule", "tools_mode": "ignore"}),
    ("GET", "/traces/{tid}/case.yaml", REVIEW, None),
    ("GET", "/traces/labels", REVIEW, None),
    ("GET", "/traces/conversations/{cid}", REVIEW, None),
    ("GET", "/traces/compare", REVIEW, None),
    ("POST", "/traces/compare", REVIEW, {"conversation": "1", "a": "understand@v1", "b": "understand@v2"}),
    ("GET", "/reports", REVIEW, None),
    ("GET", "/rules", ANY, None),
    ("POST", "/rules/auto-replies", ADMIN, {"keyword": "HOURS", "reply": "Open 9-6 Mon-Fri."}),
    ("POST", "/rules/auto-replies/delete", ADMIN, {"keyword": "HOURS"}),
    ("GET", "/admin", ADMIN, None),
    ("GET", "/admin/users", ADMIN, None),
    (
        "POST",
        "/admin/users",
        ADMIN,
        {"email": "new@example.com", "role": "agent", "password": "long enough pw"},
    ),
    ("POST", "/admin/users/{uid}/role", ADMIN, {"role": "reviewer"}),
    ("POST", "/admin/users/{uid}/active", ADMIN, {"active": "false"}),
    ("POST", "/admin/users/{uid}/sessions/revoke", ADMIN, {}),
    ("GET", "/admin/settings", ADMIN, None),
    ("GET", "/admin/deliverability", ADMIN, None),
    ("GET", "/admin/canned", ADMIN, None),
    ("POST", "/admin/canned", ADMIN, {"title": "Parking", "body": "Parking is behind the building."}),
    ("POST", "/admin/canned/{rid}", ADMIN, {"title": "Hours", "body": "Open 9-6, {first_name}."}),
    ("POST", "/admin/canned/{rid}/delete", ADMIN, {}),
    ("GET", "/api/me", ANY, None),
    ("GET", "/api/conversations", INBOX, None),
    ("GET", "/api/conversations/{cid}", INBOX, None),
    ("GET", "/api/traces", REVIEW, None),
    ("GET", "/api/traces/{tid}", REVIEW, None),
]
# The status a permitted role gets: a page or an API read 200, a form post its 303 back to a page,
# unless listed here: a status for whoever is allowed, or per role (other roles follow the rule).
# Rows run in MATRIX order on one seeded conversation, so a later row can meet an earlier one's state.
EXPECTED: dict[tuple[str, str], int | dict[str, int]] = {
    ("GET", "/"): 303,  # to the role's home page
    ("GET", "/admin"): 303,  # to /admin/users
    ("POST", "/inbox/{cid}/canned"): 200,  # htmx: the reply box with the canned text in it
    ("POST", "/inbox/segments"): 200,  # htmx: the live segment count
    ("POST", "/traces/compare"): 200,  # the side-by-side result
    # The seeded reply was sent, not failed: nothing to retry (state conflict).
    ("POST", "/inbox/{cid}/messages/{mid}/retry"): 409,
    # The assign row gave the conversation to a colleague: an agent no longer holds it, an admin may.
    ("POST", "/inbox/{cid}/handback"): {"agent": 409},
    ("POST", "/inbox/{cid}/resolve"): {"agent": 409},
}


def expected_status(method: str, path: str, role: str) -> int:
    rule = 200 if method == "GET" else 303
    listed = EXPECTED.get((method, path), rule)
    return listed.get(role, rule) if isinstance(listed, dict) else listed


def test_expected_statuses_name_matrix_rows() -> None:
    rows = {(m, p): allowed for m, p, allowed, _ in MATRIX}
    for route, status in EXPECTED.items():
        assert route in rows, f"{route} is not in MATRIX"
        if isinstance(status, dict):
            assert set(status) <= rows[route], f"{route}: a status for a role the route refuses"


# Reachable without logging in (signed webhooks, health, assets, login itself, the API schema).
PUBLIC = {
    ("POST", "/twilio/sms"),
    ("POST", "/twilio/status"),
    ("POST", "/whatsapp/sms"),
    ("GET", "/vonage/inbound"),  # Vonage can be set to deliver webhooks by GET
    ("POST", "/vonage/inbound"),
    ("GET", "/vonage/status"),
    ("POST", "/vonage/status"),
    ("POST", "/plivo/sms"),
    ("POST", "/plivo/status"),
    ("GET", "/messagebird/sms"),  # Bird's flow URLs may call by GET
    ("POST", "/messagebird/sms"),
    ("GET", "/messagebird/status"),
    ("POST", "/messagebird/status"),
    ("GET", "/webchat/widget.js"),
    ("POST", "/webchat/session"),  # a visitor token for a new web chat
    ("POST", "/webchat/messages"),  # these need that visitor token
    ("GET", "/webchat/messages"),
    ("GET", "/webchat/stream"),
    ("POST", "/webchat/phone"),
    ("POST", "/stripe/webhook"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/static/{file_path}"),
}


def _normal(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def app_routes(app: Litestar) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        for method in getattr(route, "methods", set()):
            if method not in {"OPTIONS", "HEAD"}:
                out.add((method, _normal(route.path)))
    return out


def test_every_route_is_in_the_matrix(web: Web) -> None:
    listed = {(m, p.replace("{cid}", "{cid}")) for m, p, _, _ in MATRIX} | PUBLIC
    normalised = {
        (m, p.replace("{conversation_id}", "{cid}").replace("{trace_id}", "{tid}"))
        for m, p in app_routes(web.app)
        if not p.startswith("/schema")
    }
    assert normalised == listed, f"untested: {normalised - listed}; stale: {listed - normalised}"


async def _ids(web: Web) -> dict[str, int]:
    cid = await web.escalated()
    async with web.services.sessions() as s:
        from sqlmodel import select

        trace = (await s.exec(select(Trace).where(Trace.conversation_id == cid))).first()
        assert trace is not None
        spare = await add_user(s, "spare@example.com", "agent", "long enough password")
        canned = CannedReply(title="Hello", body="Hi {first_name}!")
        s.add(canned)
        outbound = select(Message).where(Message.conversation_id == cid, Message.direction == "out")
        reply = (await s.exec(outbound)).first()
        assert reply is not None
        await s.commit()
    assert canned.id == 1  # the canned reply the matrix's insert form names
    return {"cid": cid, "tid": trace.id or 0, "uid": spare.id or 0, "rid": canned.id, "mid": reply.id or 0}


def _fill(path: str, ids: dict[str, int]) -> str:
    """``{cid}`` and the other seeded ids filled in; any other braces (a canned reply's
    ``{first_name}``) are left as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), m.group(0))), path)


async def test_anonymous_visitors_are_sent_to_login_or_get_401(web: Web) -> None:
    ids = await _ids(web)
    await web.client.get("/login")  # a CSRF cookie, so the check we see is the login check
    for method, path, _, form in MATRIX:
        url = _fill(path, ids)
        if method == "GET":
            resp = await web.client.get(url, follow_redirects=False)
        else:
            resp = await post_form(web.client, url, {k: _fill(v, ids) for k, v in (form or {}).items()})
        if path.startswith("/api"):
            assert resp.status_code == 401, (method, url, resp.status_code)
            assert resp.json()["status_code"] == 401
        else:
            assert resp.status_code == 303, (method, url, resp.status_code)
            assert resp.headers["location"].startswith("/login"), (method, url)
    page = await web.client.get(f"/inbox/{ids['cid']}", follow_redirects=False)
    assert page.headers["location"] == f"/login?next=%2Finbox%2F{ids['cid']}"


async def test_htmx_requests_without_a_session_redirect_the_whole_page(web: Web) -> None:
    resp = await web.client.get("/inbox/rows", headers={"HX-Request": "true"}, follow_redirects=False)
    assert resp.status_code == 401
    assert resp.headers["hx-redirect"].startswith("/login")


@pytest.mark.parametrize("role", ["agent", "reviewer", "admin"])
async def test_each_role_reaches_exactly_its_routes(web: Web, role: str) -> None:
    ids = await _ids(web)
    assert (await login(web.client, role)).status_code == 303
    wrong = []  # every permitted route that answered otherwise than expected, reported together
    for method, path, allowed, form in MATRIX:
        url = _fill(path, ids)
        if method == "GET":
            resp = await web.client.get(url, follow_redirects=False)
        else:
            resp = await post_form(web.client, url, {k: _fill(v, ids) for k, v in (form or {}).items()})
        if role in allowed:
            if resp.status_code != (want := expected_status(method, path, role)):
                alert = re.search(r'role="alert">([^<]*)<', resp.text)  # the page's error, if it shows one
                why = alert.group(1) if alert else resp.text[:200]
                wrong.append((method, url, resp.status_code, want, why))
            assert not resp.headers.get("location", "").startswith("/login"), (role, method, url)
        else:
            assert resp.status_code == 403, (role, method, url, resp.status_code)
            if path.startswith("/api"):
                assert resp.json()["status_code"] == 403
            else:
                assert "Not allowed" in resp.text
    assert not wrong, f"{role}: (method, url, got, expected, body) {wrong}"


async def test_reviewer_cannot_see_admin_or_inbox_links(web: Web) -> None:
    await login(web.client, "reviewer")
    html = (await web.client.get("/traces")).text
    assert 'href="/traces"' in html and 'href="/admin/users"' not in html and 'href="/inbox"' not in html


async def test_public_routes_need_no_session(web: Web) -> None:
    assert (await web.client.get("/healthz")).json() == {"status": "ok"}
    assert (await web.client.get("/readyz")).json() == {"status": "ready"}
    js = await web.client.get("/static/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text[:200]
    assert (await web.client.get("/static/app.css")).status_code == 200
    schema = await web.client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/conversations" in paths and "/api/traces/{trace_id}" in paths
    assert not any(p.startswith(("/inbox", "/admin", "/login")) for p in paths)  # only the API is documented


async def test_security_headers_on_pages_and_errors(web: Web) -> None:
    for resp in (await web.client.get("/login"), await web.client.get("/nope")):
        assert resp.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        assert resp.headers["x-content-type-options"] == "nosniff"


CONFIGURED: dict[str, Any] = {
    "vonage_api_key": "abcd1234",
    "vonage_api_secret": "api-secret",
    "vonage_signature_secret": "sig-secret-0123456789",
    "vonage_from": "15005550007",
    "plivo_auth_id": "MAXXXXXXXXXXXXXXXXXX",
    "plivo_auth_token": "plivo-token",
    "plivo_from": "15005550008",
    "messagebird_access_key": "live_key",
    "messagebird_signing_key": "signing-key",
    "messagebird_from": "15005550009",
}
# Every route that takes a message or a receipt from outside, with a plausible unsigned body.
INBOUND = [
    ("/twilio/sms", {"MessageSid": "SM" + "a" * 32, "From": "+12125550123", "Body": "book me in"}),
    ("/twilio/status", {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}),
    ("/whatsapp/sms", {"MessageSid": "SM" + "b" * 32, "From": "whatsapp:+12125550123", "Body": "hi"}),
    ("/vonage/inbound", {"msisdn": "12125550123", "to": "15005550007", "messageId": "0A01", "text": "hi"}),
    ("/vonage/status", {"messageId": "0A0000001", "status": "delivered", "client-ref": "1"}),
    ("/plivo/sms", {"From": "12125550123", "To": "15005550008", "MessageUUID": "u-1", "Text": "hi"}),
    ("/plivo/status", {"MessageUUID": "u-1", "Status": "delivered"}),
    ("/messagebird/sms", {"originator": "12125550123", "recipient": "15005550009", "id": "m1", "body": "hi"}),
    ("/messagebird/status", {"id": "m1", "status": "delivered", "reference": "1"}),
    ("/webchat/messages", {"text": "hi", "client_id": "c" * 16}),
]


@pytest.mark.parametrize(("path", "params"), INBOUND, ids=[p for p, _ in INBOUND])
async def test_unsigned_requests_to_inbound_routes_are_refused_and_store_nothing(
    sqlite_url: str, tmp_path: Path, clock: FrozenClock, path: str, params: dict[str, str]
) -> None:
    """Every provider configured (an unconfigured one refuses everything anyway), then requests
    with no signature, form-encoded and JSON alike."""
    async for web in make_web(sqlite_url, tmp_path, clock, **CONFIGURED):
        client = web.new_client()
        for resp in (await client.post(path, data=params), await client.post(path, json=params)):
            assert resp.status_code in (401, 403), (path, resp.status_code, resp.text)
        async with web.services.sessions() as s:
            assert list(await s.exec(select(Message))) == [] and list(await s.exec(select(Contact))) == []
