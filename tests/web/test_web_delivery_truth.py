"""What the inbox tells staff about a reply is true, and nothing is dropped between person and bot:
retrying is not failed, staff can retry now or cancel, reports count only delivered replies; a
hand-back with an unanswered message gets it answered (or the agent chooses); an idle claim alerts
the team and, after hours, tells the customer."""

from __future__ import annotations

import datetime as dt

from sqlmodel import col, select

from store.models import AuditEvent, Job, Message
from tests.web.conftest import Web, inbox_row, login, post_form
from web.reporting import build_report


async def agent_reply(web: Web, cid: int, body: str) -> Message:
    assert (await post_form(web.client, f"/inbox/{cid}/reply", {"body": body})).status_code == 303
    async with web.services.sessions() as s:
        return (await s.exec(select(Message).where(Message.body == body))).one()


async def row(web: Web, mid: int) -> Message:
    async with web.services.sessions() as s:
        m = await s.get(Message, mid)
        assert m is not None
        return m


async def test_a_reply_the_provider_keeps_refusing_reads_retrying_with_attempts_then_can_be_sent(
    web: Web,
) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    web.twilio.fail_status = 503
    msg = await agent_reply(web, cid, "Hi, Sam here.")
    msg = await row(web, msg.id or 0)
    assert msg.status == "retrying" and msg.next_attempt_at is not None
    page = (await web.client.get(f"/inbox/{cid}")).text
    limit = web.services.dispatcher.attempt_limit
    assert f"attempt {msg.attempts} of {limit}" in page and "next try" in page
    assert "the provider could not be reached" in page or "rate limiting" in page or "rejected" in page
    assert ">failed<" not in page
    assert f"/inbox/{cid}/messages/{msg.id}/retry" in page
    assert f"/inbox/{cid}/messages/{msg.id}/cancel" in page

    # Reports: a reply that has not arrived is not a first response.
    now = web.clock.now()
    async with web.services.sessions() as s:
        rep = await build_report(s, now - dt.timedelta(days=1), now + dt.timedelta(seconds=1), now,
                                 web.services.business.tz)
    assert rep.first_response_s == [] and rep.unanswered == 1

    web.twilio.fail_status = None  # the provider is back: staff retry now instead of waiting
    resp = await post_form(web.client, f"/inbox/{cid}/messages/{msg.id}/retry")
    assert resp.status_code == 303
    sent = await row(web, msg.id or 0)
    assert sent.status == "sent" and sent.provider_message_id
    # The retry job planned earlier finds it sent and sends nothing more.
    before = len(web.twilio.sent)
    web.clock.advance(minutes=10)
    await web.services.scheduler.run_due()
    assert len(web.twilio.sent) == before
    # A second "retry now" is refused: it already left.
    again = await post_form(web.client, f"/inbox/{cid}/messages/{msg.id}/retry")
    assert again.status_code == 409 and "no longer waiting" in again.text


async def test_cancel_stops_a_pending_retry_for_good(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    web.twilio.fail_status = 500
    msg = await agent_reply(web, cid, "Sorry for the wait!")
    assert (await row(web, msg.id or 0)).status == "retrying"
    assert (await post_form(web.client, f"/inbox/{cid}/messages/{msg.id}/cancel")).status_code == 303
    assert (await row(web, msg.id or 0)).status == "cancelled"
    web.twilio.fail_status = None
    calls = len(web.twilio.sent)
    web.clock.advance(minutes=10)
    await web.services.scheduler.run_due()
    assert len(web.twilio.sent) == calls  # the planned retry found it cancelled
    page = (await web.client.get(f"/inbox/{cid}")).text
    assert "cancelled" in page and f"/messages/{msg.id}/retry" not in page
    async with web.services.sessions() as s:
        kinds = [e.kind for e in await s.exec(select(AuditEvent).where(AuditEvent.conversation_id == cid))]
    assert "message.cancelled" in kinds
    # Another conversation's message id is a 404, not someone else's message.
    other = await web.escalated("+12125550177")
    assert (await post_form(web.client, f"/inbox/{other}/messages/{msg.id}/cancel")).status_code == 404


async def test_a_permanent_failure_says_why_and_reports_list_it(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    web.twilio.fail_status, web.twilio.fail_code = 400, 21211  # invalid 'To' number
    msg = await agent_reply(web, cid, "Hello?")
    assert (await row(web, msg.id or 0)).status == "failed"
    page = (await web.client.get(f"/inbox/{cid}")).text
    assert "the number is not a valid mobile number" in page and "error 21211" in page
    await login(web.client, "reviewer")
    reports = (await web.client.get("/reports")).text
    assert "21211" in reports and "No failed or undelivered messages" not in reports


async def test_hand_back_with_an_unanswered_message_makes_the_agent_choose_and_the_bot_answers(
    web: Web,
) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    held = await web.text("where are you located?")
    assert held.route == "handoff" and not held.replies
    page = (await web.client.get(f"/inbox/{cid}")).text
    assert "has no answer yet" in page and 'value="answer"' in page and 'value="leave"' in page
    refused = await post_form(web.client, f"/inbox/{cid}/handback")  # no choice made
    assert refused.status_code == 409 and "has no answer yet" in refused.text
    assert (await post_form(web.client, f"/inbox/{cid}/handback", {"then": "answer"})).status_code == 303
    async with web.services.sessions() as s:
        replies = list(await s.exec(select(Message).where(Message.in_reply_to == held.message_id)))
    assert len(replies) == 1 and "12 Maple St" in replies[0].body
    assert replies[0].status == "sent"  # left by REST, not waiting for a webhook that is long gone
    assert any("12 Maple St" in f["Body"] for f in web.twilio.sent)
    html = (await web.client.get("/inbox")).text
    row_html = inbox_row(html, cid)
    assert "st-bot" in row_html and "Asked for a person" not in row_html  # no stale reason on a bot row


async def test_hand_back_without_answering_sends_nothing(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    held = await web.text("ok thanks")
    sent = len(web.twilio.sent)
    assert (await post_form(web.client, f"/inbox/{cid}/handback", {"then": "leave"})).status_code == 303
    async with web.services.sessions() as s:
        assert not list(await s.exec(select(Message).where(Message.in_reply_to == held.message_id)))
        audit = (await s.exec(select(AuditEvent).where(AuditEvent.kind == "conversation.handed_back"))).one()
    assert audit.data["then"] == "leave" and audit.data["unanswered_message"] == held.message_id
    assert len(web.twilio.sent) == sent


async def test_an_idle_claim_alerts_the_team_once_during_open_hours(web: Web) -> None:
    alerts: list[tuple[int, str]] = []

    async def record(cid: int, reason: str, summary: str) -> None:
        alerts.append((cid, reason))

    web.services.scheduler.alert_hooks.append(record)
    cid = await web.escalated()  # Monday 9:00: open
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    await web.text("hello? anyone?")
    web.clock.advance(minutes=10)
    await web.services.scheduler.run_due()
    assert alerts == []  # not idle yet
    web.clock.advance(minutes=6)
    await web.services.scheduler.run_due()
    await web.services.scheduler.run_due()  # a second poll does not alert again
    assert alerts == [(cid, "idle_claim")]
    async with web.services.sessions() as s:
        replies = select(Message).where(Message.kind == "reply", Message.conversation_id == cid)
        out = list(await s.exec(replies))
        jobs = list(await s.exec(select(Job).where(Job.kind == "idle_claim")))
    assert len(jobs) == 1 and all("away" not in m.body for m in out)  # open: no holding message


async def test_after_hours_the_customer_of_an_idle_claim_gets_a_holding_message(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    web.clock.advance(hours=9, minutes=30)  # Monday 18:30: closed
    await web.text("are you still there?")
    web.clock.advance(minutes=20)
    await web.services.scheduler.run_due()
    async with web.services.sessions() as s:
        held = list(
            await s.exec(
                select(Message)
                .where(Message.conversation_id == cid, col(Message.dedupe_key).like("hold:%"))
            )
        )
    assert len(held) == 1 and "away right now" in held[0].body and "Tue" in held[0].body
    assert held[0].status == "sent" and any("away right now" in f["Body"] for f in web.twilio.sent)
    # The customer now has an answer: the conversation is no longer idle, nothing more goes out.
    web.clock.advance(minutes=30)
    await web.services.scheduler.run_due()
    async with web.services.sessions() as s:
        assert len(list(await s.exec(select(Job).where(Job.kind == "idle_claim")))) == 1
