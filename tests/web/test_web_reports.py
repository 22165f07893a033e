"""Reports (numbers and server-side SVG charts) and the rules page (hit counts, auto-replies)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlmodel import select

from store.models import ConsentEvent, Message
from tests.web.conftest import Web, login, post_form
from textdesk.autoreplies import JsonAutoReplyStore, effective, match_auto_reply, normalize_keyword
from web.charts import Series, bar_chart, hbar_chart
from web.reporting import build_report


async def seed_month(web: Web) -> None:
    """Five conversations: two contained, one opt-out, one answered escalation, one unanswered one,
    one booking left at the time question, and a failed delivery."""
    await web.text("where are you located?", "+12125550101")  # contained, answered: no drop-off
    await web.text("can i get a haircut tomorrow", "+12125550102")  # the bot asks for a time...
    await web.text("STOP", "+12125550103")  # opt-out
    answered = await web.escalated("+12125550104")  # requested
    await web.escalated("+12125550105", "you charged my card twice for the manicure")  # billing, unanswered
    await login(web.client, "agent")
    web.clock.advance(seconds=90)
    await post_form(web.client, f"/inbox/{answered}/reply", {"body": "Hi! Sam here."})
    async with web.services.sessions() as s:
        msg = (await s.exec(select(Message).where(Message.kind == "agent"))).one()
    await web.sms.post(
        "/twilio/status",
        {"MessageSid": msg.provider_message_id or "", "MessageStatus": "undelivered", "ErrorCode": "30007"},
        query=f"m={msg.id}",
    )
    # The undelivered reply reached nobody: the first human reply is this one, a minute later.
    web.clock.advance(seconds=60)
    await post_form(web.client, f"/inbox/{answered}/reply", {"body": "Sam again, did this arrive?"})
    async with web.services.sessions() as s:
        again = (await s.exec(select(Message).where(Message.body == "Sam again, did this arrive?"))).one()
    await web.sms.post(
        "/twilio/status",
        {"MessageSid": again.provider_message_id or "", "MessageStatus": "delivered"},
        query=f"m={again.id}",
    )
    async with web.services.sessions() as s:
        # store.repo.set_consent stamps ConsentEvent.at with the wall clock, not the injected one
        # (reported to the lead); move it onto the frozen test clock.
        for event in await s.exec(select(ConsentEvent)):
            event.at = web.clock.now()
            s.add(event)
        await s.commit()
    web.clock.advance(hours=25)  # ...and never answers: a drop-off


async def test_report_numbers(web: Web) -> None:
    await seed_month(web)
    now = web.clock.now()
    async with web.services.sessions() as s:
        rep = await build_report(
            s, now - dt.timedelta(days=30), now + dt.timedelta(seconds=1), now, web.services.business.tz
        )
    assert rep.conversations == 5 and rep.escalated == 2
    assert rep.containment == 0.6
    assert dict(rep.escalations) == {"requested": 1, "billing": 1}
    assert rep.first_response_s == [150.0] and rep.unanswered == 1  # the undelivered one does not count
    assert rep.opt_outs == 1 and dict(rep.opt_out_sources) == {"keyword": 1}
    assert dict(rep.delivery)["undelivered"] == 1 and dict(rep.error_codes) == {("twilio", 30007): 1}
    assert [k for k, _, _ in rep.dropoffs] == ["book_appointment: waiting for time"]
    assert sum(d.inbound for d in rep.days) == 5
    assert sum(d.segments for d in rep.days) >= sum(d.outbound for d in rep.days) > 0


async def test_reports_page_renders_inline_svg_charts(web: Web) -> None:
    await seed_month(web)
    await login(web.client, "reviewer")
    html = (await web.client.get("/reports")).text
    assert html.count('<svg class="chart"') == 5 and 'role="img"' in html and "<title id=" in html
    assert "60%" in html  # containment
    assert "2 min" in html  # median time to first delivered human reply
    assert "No failed or undelivered messages" not in html
    assert "30007" in html and "book_appointment: waiting for time" in html
    assert "<script" not in html.split("</head>")[1]  # no chart library
    assert (await web.client.get("/reports?days=7")).status_code == 200
    assert (await web.client.get("/reports?days=9999")).status_code == 200  # falls back to 30


def test_charts_escape_labels_and_handle_empty_data() -> None:
    svg = bar_chart(["<b>", "x"], [Series("in", [1, 2])], title="A & B")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "A &amp; B" in svg
    assert "No data" in hbar_chart([], title="empty")
    assert str(bar_chart([], [Series("in", [])], title="none")).startswith("<svg")


async def test_rules_page_counts_keyword_hits(web: Web) -> None:
    await web.text("STOP", "+12125550101")
    await web.text("stop", "+12125550102")
    await web.text("please stop texting me", "+12125550103")
    await web.text("HELP", "+12125550104")
    await login(web.client, "agent")
    html = (await web.client.get("/rules")).text
    assert '<code>STOP</code> <span class="muted">(2)</span>' in html
    assert '<code>HELP</code> <span class="muted">(1)</span>' in html
    assert "“please stop texting me”: 1" in html
    assert "Maple Street Salon" in html and "12 Maple St" in html  # business facts, read-only
    assert 'action="/rules/auto-replies"' not in html  # agents cannot edit


async def test_admin_edits_auto_replies(web: Web, tmp_path: Path) -> None:
    await login(web.client, "admin")
    ok = await post_form(
        web.client, "/rules/auto-replies", {"keyword": "hours", "reply": "Mon-Fri 9-6, Sat 10-4."}
    )
    assert ok.status_code == 303
    assert json.loads((tmp_path / "autoreplies.json").read_text()) == {"HOURS": "Mon-Fri 9-6, Sat 10-4."}
    html = (await web.client.get("/rules")).text
    assert "<code>HOURS</code>" in html and "Mon-Fri 9-6, Sat 10-4." in html
    reserved = await post_form(web.client, "/rules/auto-replies", {"keyword": "STOP", "reply": "nope"})
    assert reserved.status_code == 400 and "hard-rule keyword" in reserved.text
    link = await post_form(
        web.client, "/rules/auto-replies", {"keyword": "DEALS", "reply": "See evil.example.com"}
    )
    assert link.status_code == 400 and "output guard" in link.text
    long = await post_form(web.client, "/rules/auto-replies", {"keyword": "LONG", "reply": "x" * 400})
    assert long.status_code == 400
    await post_form(web.client, "/rules/auto-replies/delete", {"keyword": "HOURS"})
    assert json.loads((tmp_path / "autoreplies.json").read_text()) == {}


async def test_auto_reply_store_and_matching(tmp_path: Path, web: Web) -> None:
    store = JsonAutoReplyStore(tmp_path / "ar" / "replies.json")
    assert await store.all() == {}
    await store.put("HOURS", "9-6")
    assert await store.all() == {"HOURS": "9-6"}
    replies = effective(web.services.business, await store.all())
    assert match_auto_reply(" hours! ", replies) == "9-6"
    assert match_auto_reply("what are your hours", replies) is None
    assert match_auto_reply("STOP", {"STOP": "x"}) is None  # a hard rule can never be shadowed
    assert await store.remove("HOURS") and not await store.remove("HOURS")
    assert normalize_keyword(" Hours ") == "HOURS"
