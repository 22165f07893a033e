"""The JSON API under /api: shapes, filters, validation, redaction, and the OpenAPI schema."""

from __future__ import annotations

from tests.web.conftest import Web, login


async def test_me(web: Web) -> None:
    await login(web.client, "reviewer")
    assert (await web.client.get("/api/me")).json() == {
        "id": web.users["reviewer"],
        "email": "reviewer@example.com",
        "role": "reviewer",
    }


async def test_conversations_list_and_detail(web: Web) -> None:
    await web.text("where are you located?", "+12125550101")
    cid = await web.escalated("+12125550102")
    await login(web.client, "agent")
    items = (await web.client.get("/api/conversations")).json()
    assert items[0]["id"] == cid
    assert items[0]["status"] == "waiting" and items[0]["escalation_reason"] == "requested"
    assert items[0]["phone"] == "+12125550102"  # agents see the number they work with
    waiting = (await web.client.get("/api/conversations", params={"status": "waiting"})).json()
    assert [i["id"] for i in waiting] == [cid]
    assert len((await web.client.get("/api/conversations", params={"limit": 1})).json()) == 1
    detail = (await web.client.get(f"/api/conversations/{cid}")).json()
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    assert detail["next_step"] and detail["summary"]
    assert (await web.client.get("/api/conversations/424242")).status_code == 404


async def test_bad_query_values_are_400(web: Web) -> None:
    await login(web.client, "admin")
    assert (await web.client.get("/api/conversations", params={"status": "bogus"})).status_code == 400
    assert (await web.client.get("/api/conversations", params={"limit": 0})).status_code == 400
    assert (await web.client.get("/api/traces", params={"route": "nowhere"})).status_code == 400
    body = (await web.client.get("/api/conversations", params={"limit": "x"})).json()
    assert body["status_code"] == 400


async def test_traces_are_redacted(web: Web) -> None:
    result = await web.text("my email is ana@example.com, cell 917-555-0188", "+12125550123")
    await login(web.client, "reviewer")
    items = (await web.client.get("/api/traces")).json()
    assert items[0]["text"] == "my email is [email], cell [phone …88]"
    tid = items[0]["id"]
    detail = await web.client.get(f"/api/traces/{tid}")
    assert detail.status_code == 200
    text = detail.text
    assert "ana@example.com" not in text and "917-555-0188" not in text and "2125550123" not in text
    data = detail.json()
    assert data["message_id"] == result.message_id and data["steps"] and data["route"] == "agent"
    assert (await web.client.get("/api/traces/999999")).status_code == 404


async def test_openapi_schema_describes_the_api(web: Web) -> None:
    schema = (await web.client.get("/schema/openapi.json")).json()
    assert schema["info"]["title"] == "textdesk staff API"
    ops = {(p, m) for p, item in schema["paths"].items() for m in item}
    assert ("/api/conversations", "get") in ops and ("/api/conversations/{conversation_id}", "get") in ops
    assert ("/api/traces/{trace_id}", "get") in ops and ("/api/me", "get") in ops
    params = {p["name"]: p for p in schema["paths"]["/api/conversations"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 500


async def test_ids_beyond_the_database_range_are_404_not_500(web: Web) -> None:
    await login(web.client, "admin")
    huge = 2**63
    for path in (
        f"/api/conversations/{huge}",
        f"/api/traces/{2**31}",
        f"/inbox/{huge}",
        f"/traces/{huge}",
        f"/inbox/{huge}/transcript",
        f"/traces/{huge}/case.yaml",
    ):
        assert (await web.client.get(path)).status_code == 404, path
    assert (await web.client.get(f"/traces?conversation={huge}")).status_code == 200
