"""Canned replies (admin CRUD, inserted with variables filled for the conversation), the reply
box's live SMS segment counter, and the feed of new escalations behind desktop notifications."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlmodel import col, select

from store.models import AuditEvent, Booking, CannedReply, Contact
from tests.web.conftest import Web, login, post_form

CUSTOMER = "+12125550123"


async def replies(web: Web) -> list[CannedReply]:
    async with web.services.sessions() as s:
        return list(await s.exec(select(CannedReply).order_by(col(CannedReply.id))))


async def add_reply(web: Web, title: str, body: str) -> int:
    await login(web.client, "admin")
    resp = await post_form(web.client, "/admin/canned", {"title": title, "body": body})
    assert resp.status_code == 303, resp.text[:500]
    return next(r.id or 0 for r in await replies(web) if r.title == title)


def reply_box(page: str) -> str:
    m = re.search(r'<textarea id="reply-body"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, page[:500]
    return html.unescape(m.group(1))


# -- admin ----------------------------------------------------------------------------------------


async def test_admin_creates_edits_and_deletes_canned_replies(web: Web) -> None:
    rid = await add_reply(web, "Running late", "Hi {first_name}, we're running 10 minutes late.")
    page = (await web.client.get("/admin/canned")).text
    assert "Running late" in page and "{first_name}" in page
    assert "{next_booking}" in page  # the variables are listed

    resp = await post_form(
        web.client, f"/admin/canned/{rid}", {"title": "Late", "body": "Sorry, {first_name}!"}
    )
    assert resp.status_code == 303
    [row] = await replies(web)
    assert (row.title, row.body, row.created_by) == ("Late", "Sorry, {first_name}!", "admin@example.com")

    assert (await post_form(web.client, f"/admin/canned/{rid}/delete")).status_code == 303
    assert await replies(web) == []
    assert (await post_form(web.client, f"/admin/canned/{rid}/delete")).status_code == 404
    async with web.services.sessions() as s:
        kinds = [e.kind for e in await s.exec(select(AuditEvent).where(col(AuditEvent.kind).like("canned%")))]
    assert kinds == ["canned_reply.created", "canned_reply.updated", "canned_reply.deleted"]


async def test_admin_form_refuses_bad_replies_and_keeps_what_was_typed(web: Web) -> None:
    rid = await add_reply(web, "Hours", "We open at 9.")
    typo = await post_form(web.client, "/admin/canned", {"title": "Hello", "body": "Hi {firstname}!"})
    assert typo.status_code == 400
    assert "Unknown variable {firstname}" in typo.text and "Hi {firstname}!" in typo.text
    empty = await post_form(web.client, "/admin/canned", {"title": "  ", "body": "x"})
    assert empty.status_code == 400 and "A title is 1-80 characters" in empty.text
    dup = await post_form(web.client, "/admin/canned", {"title": "Hours", "body": "again"})
    assert dup.status_code == 409 and "Another canned reply has this title" in dup.text
    edit = await post_form(web.client, f"/admin/canned/{rid}", {"title": "Hours", "body": "{oops} <b>"})
    assert edit.status_code == 400 and "{oops} &lt;b&gt;" in edit.text  # refilled, escaped
    assert [(r.title, r.body) for r in await replies(web)] == [("Hours", "We open at 9.")]
    no_csrf = await web.client.post("/admin/canned", data={"title": "X", "body": "y"})
    assert no_csrf.status_code == 403 and len(await replies(web)) == 1


async def test_agents_cannot_manage_canned_replies_but_can_use_them(web: Web) -> None:
    rid = await add_reply(web, "Hours", "We open at 9.")
    cid = await web.escalated()
    await login(web.client, "agent")
    assert (await web.client.get("/admin/canned")).status_code == 403
    form = {"title": "Mine", "body": "x"}
    for url in ("/admin/canned", f"/admin/canned/{rid}", f"/admin/canned/{rid}/delete"):
        assert (await post_form(web.client, url, form)).status_code == 403, url
    assert [r.title for r in await replies(web)] == ["Hours"]

    picker = await web.client.get(f"/inbox/{cid}/canned")
    assert picker.status_code == 200 and f'<option value="{rid}">Hours</option>' in picker.text
    inserted = await post_form(web.client, f"/inbox/{cid}/canned", {"canned": str(rid), "body": ""})
    assert inserted.status_code == 200 and reply_box(inserted.text) == "We open at 9."
    page = (await web.client.get(f"/inbox/{cid}")).text
    assert f'hx-get="/inbox/{cid}/canned"' in page  # the conversation page loads the picker

    await login(web.client, "reviewer")
    assert (await web.client.get(f"/inbox/{cid}/canned")).status_code == 403


async def test_inserted_reply_has_the_conversations_values_filled_in(web: Web) -> None:
    rid = await add_reply(
        web,
        "Confirm",
        "Hi {first_name}, this is {agent_name} at {business_name}: see you for {next_booking}. {unknown?}",
    )
    cid = await web.escalated()
    async with web.services.sessions() as s:
        contact = (await s.exec(select(Contact).where(Contact.phone == CUSTOMER))).one()
        contact.name = "Ana <b>Lima</b>"
        s.add(contact)
        now = web.clock.now()
        for days, status in ((-1, "active"), (3, "cancelled"), (2, "active"), (5, "active")):
            start = now.replace(hour=19) + dt.timedelta(days=days)  # 2 PM in New York
            s.add(
                Booking(
                    id=f"b{days}",
                    contact_id=contact.id or 0,
                    service="Haircut",
                    provider="Kim",
                    start=start,
                    end=start + dt.timedelta(minutes=30),
                    status=status,
                )
            )
        await s.commit()
    await login(web.client, "agent2")
    resp = await post_form(web.client, f"/inbox/{cid}/canned", {"canned": str(rid), "body": "Hello!"})
    assert resp.status_code == 200
    business = web.services.business.name
    assert reply_box(resp.text) == (
        f"Hello! Hi Ana, this is Agent2 at {business}: see you for Haircut on Wed Mar 4 at 2:00 PM with Kim."
        " {unknown?}"
    )
    assert "<b>" not in resp.text  # the contact's name is escaped
    assert "autofocus" in resp.text and 'hx-post="/inbox/segments"' in resp.text  # the box stays live


async def test_a_variable_without_a_value_stays_for_the_agent_to_edit(web: Web) -> None:
    rid = await add_reply(web, "Booking", "Hi {first_name}, about {next_booking}:")
    cid = await web.escalated()  # the contact has no name and no booking
    await login(web.client, "agent")
    resp = await post_form(web.client, f"/inbox/{cid}/canned", {"canned": str(rid), "body": "Line one\n"})
    assert reply_box(resp.text) == "Line one\nHi {first_name}, about {next_booking}:"
    assert re.search(r'id="canned-note"[^>]*hx-swap-oob="true"[^>]*>No value here for \{first_name\}, '
                     r"\{next_booking\}: edit it before sending", resp.text)
    here = f"/inbox/{cid}/canned"
    for url, which in ((here, "999"), (here, "x"), ("/inbox/999/canned", str(rid))):
        resp = await post_form(web.client, url, {"canned": which, "body": ""})
        assert resp.status_code == 404, (url, which)


# -- the segment counter ----------------------------------------------------------------------------


async def segments(web: Web, body: str) -> str:
    resp = await post_form(web.client, "/inbox/segments", {"body": body})
    assert resp.status_code == 200, resp.text[:300]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", resp.text)).split())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "0 characters · 0 segments · GSM-7"),
        ("a" * 160, "160 characters · 1 segment · GSM-7"),
        ("a" * 161, "161 characters · 2 segments · GSM-7 · Sent as 2 texts"),
        ("a" * 306, "306 characters · 2 segments · GSM-7"),
        ("a" * 307, "307 characters · 3 segments · GSM-7"),
        ("€" * 80, "80 characters · 1 segment · GSM-7"),  # two septets each
        ("€" * 81, "81 characters · 2 segments · GSM-7"),
        ("  hi  ", "2 characters · 1 segment · GSM-7"),  # sent stripped
        ("Café? " + "ê" * 64, "70 characters · 1 segment · UCS-2 (because of 'ê')"),
        ("ê" * 71, "71 characters · 2 segments · UCS-2 (because of 'ê')"),
        ("ok 👍", "4 characters · 1 segment · UCS-2 (because of '👍')"),
        ("a\u00a0b\u201cc\u201d", "6 characters · 1 segment · UCS-2 (because of 'U+00A0', '“', '”')"),
        ("āēīōūǖ", "6 characters · 1 segment · UCS-2 (because of 'ā', 'ē', 'ī', 'ō', 'ū'…)"),
    ],
)
async def test_segment_counter_uses_the_servers_rules(web: Web, body: str, expected: str) -> None:
    await login(web.client, "agent")
    text = await segments(web, body)
    assert text.startswith(expected), text
    assert ("Sent as" in text) == (expected.split(" · ")[1] not in ("0 segments", "1 segment"))
    assert ("a text holds 160 characters instead of 70" in text) == ("UCS-2" in expected)


async def test_segment_counter_needs_csrf_and_an_inbox_role(web: Web) -> None:
    await login(web.client, "agent")
    assert (await web.client.post("/inbox/segments", data={"body": "hi"})).status_code == 403  # no token
    token = {"x-csrftoken": web.client.cookies["csrftoken"]}  # how htmx sends it (base.html)
    ok = await web.client.post("/inbox/segments", data={"body": "<script>x</script>"}, headers=token)
    assert ok.status_code == 200 and "<script>" not in ok.text
    await login(web.client, "reviewer")
    assert (await post_form(web.client, "/inbox/segments", {"body": "hi"})).status_code == 403


async def test_conversation_page_wires_the_counter_to_the_reply_box(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    page = (await web.client.get(f"/inbox/{cid}")).text
    box = re.search(r'<textarea id="reply-body"[^>]*>', page)
    assert box and 'hx-post="/inbox/segments"' in box.group(0)
    assert 'hx-trigger="load, input changed delay:150ms"' in box.group(0)
    assert 'id="reply-count"' in page
    assert '<script src="/static/shortcuts.js" defer></script>' in page
    assert '<script src="/static/notify.js" defer></script>' in page
    assert 'data-feed="/inbox/escalations.json"' in page


# -- new escalations ------------------------------------------------------------------------------


async def feed(web: Web, since: int | None = None) -> dict[str, object]:
    url = "/inbox/escalations.json" + ("" if since is None else f"?since={since}")
    resp = await web.client.get(url, follow_redirects=False)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["cache-control"] == "no-store"
    data: dict[str, object] = resp.json()
    return data


async def test_escalation_feed_returns_only_new_ones_still_needing_a_person(web: Web) -> None:
    earlier = await web.escalated("+12125550101")
    await login(web.client, "agent")
    start = await feed(web)
    assert start["escalations"] == [] and isinstance(start["cursor"], int) and start["cursor"] > 0

    first = await web.escalated("+12125550102")
    second = await web.escalated("+12125550103", "you charged my card twice for the manicure")
    claimed = await web.escalated("+12125550104")
    async with web.services.sessions() as s:
        c = (await s.exec(select(Contact).where(Contact.phone == "+12125550103"))).one()
        c.name = "Ana"
        s.add(c)
        await s.commit()
    assert (await post_form(web.client, f"/inbox/{claimed}/claim")).status_code == 303
    got = await feed(web, int(str(start["cursor"])))
    items = got["escalations"]
    assert isinstance(items, list)
    assert [(e["conversation_id"], e["title"], e["body"], e["url"]) for e in items] == [
        (first, "Needs a person: +12125550102", "Asked for a person", f"/inbox/{first}"),
        (second, "Needs a person: Ana", "Billing", f"/inbox/{second}"),
    ]
    assert earlier not in [e["conversation_id"] for e in items]
    cursor = int(str(got["cursor"]))
    assert cursor > int(str(start["cursor"]))
    assert (await feed(web, cursor)) == {"cursor": cursor, "escalations": []}  # nothing new since

    later = await web.escalated("+12125550105")
    newest = (await feed(web, cursor))["escalations"]
    assert isinstance(newest, list) and [e["conversation_id"] for e in newest] == [later]


async def test_escalation_feed_is_for_inbox_roles_only(web: Web) -> None:
    await web.escalated()
    anonymous = await web.client.get("/inbox/escalations.json?since=0", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    await login(web.client, "reviewer")
    assert (await web.client.get("/inbox/escalations.json?since=0")).status_code == 403
    await login(web.client, "admin")
    everything = (await feed(web, 0))["escalations"]
    assert isinstance(everything, list) and len(everything) == 1
    assert (await web.client.get("/inbox/escalations.json?since=abc")).status_code == 400
