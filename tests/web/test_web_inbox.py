"""The inbox: ordering, filters, search, the conversation page, claim (atomic), reply through the
outbox and the dispatcher, tags, notes, hand back, resolve, and live transcript polling."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from store.models import Contact, Conversation, Message
from tests.web.conftest import Web, login, make_web, post_form
from textdesk.clock import FrozenClock


async def conv(web: Web, cid: int) -> Conversation:
    async with web.services.sessions() as s:
        c = await s.get(Conversation, cid)
        assert c is not None
        return c


async def messages(web: Web, cid: int) -> list[Message]:
    async with web.services.sessions() as s:
        return list(
            await s.exec(select(Message).where(Message.conversation_id == cid).order_by(col(Message.id)))
        )


async def name_contact(web: Web, phone: str, name: str) -> None:
    async with web.services.sessions() as s:
        c = (await s.exec(select(Contact).where(Contact.phone == phone))).one()
        c.name = name
        s.add(c)
        await s.commit()


async def test_people_first_ordering_and_filters(web: Web) -> None:
    bot = (await web.text("where are you located?", "+12125550101")).conversation_id
    web.clock.advance(minutes=1)
    waiting_old = await web.escalated("+12125550102")
    web.clock.advance(minutes=5)
    waiting_new = await web.escalated("+12125550103", "you charged my card twice for the manicure")
    held = await web.escalated("+12125550104")
    await login(web.client, "agent")
    assert (await post_form(web.client, f"/inbox/{held}/claim")).status_code == 303
    ids = [c["id"] for c in (await web.client.get("/api/conversations")).json()]
    assert ids == [waiting_old, waiting_new, held, bot]  # longest wait first, then held, then bot

    html = (await web.client.get("/inbox")).text
    order = [int(m) for m in re.findall(r'href="/inbox/(\d+)"', html)]
    assert order == [waiting_old, waiting_new, held, bot]
    assert "Needs a person" in html and "Billing" in html and "6 min" in html  # status, reason, wait time

    only_billing = (await web.client.get("/inbox?reason=billing")).text
    assert re.findall(r'href="/inbox/(\d+)"', only_billing) == [str(waiting_new)]
    only_held = (await web.client.get("/inbox?status=with_person")).text
    assert re.findall(r'href="/inbox/(\d+)"', only_held) == [str(held)]
    assert (
        await web.client.get("/inbox?status=bogus")
    ).status_code == 200  # unknown filter values are ignored


async def test_search_by_phone_name_and_message_text_and_tag_filter(web: Web) -> None:
    a = await web.escalated("+12125550111", "HUMAN")
    b = (await web.text("where are you located?", "+13105550122")).conversation_id
    await name_contact(web, "+13105550122", "Priya Patel")
    await login(web.client, "agent")

    def found(html: str) -> set[int]:
        return {int(x) for x in re.findall(r'href="/inbox/(\d+)"', html)}

    assert found((await web.client.get("/inbox?q=550111")).text) == {a}
    assert found((await web.client.get("/inbox?q=priya")).text) == {b}
    assert found((await web.client.get("/inbox?q=LOCATED")).text) == {b}
    assert found((await web.client.get("/inbox?q=100%25")).text) == set()  # LIKE wildcards are literal
    await post_form(web.client, f"/inbox/{a}/tags", {"tag": "VIP"})
    assert found((await web.client.get("/inbox?tag=vip")).text) == {a}


async def test_conversation_page_shows_what_an_agent_needs(web: Web) -> None:
    await web.text("can i get a haircut with kim on wednesday", "+12125550123")
    cid = await web.escalated("+12125550123", "HUMAN")
    await login(web.client, "agent")
    html = (await web.client.get(f"/inbox/{cid}")).text
    assert "can i get a haircut" in html and "HUMAN" in html  # transcript
    assert 'class="dl dl-' in html  # each outbound message's delivery status
    assert "Service</dt><dd>haircut" in html.replace("\n", "")  # collected fields
    assert "Suggested next step" in html and "asked for a person" in html.lower()
    assert "Claim" in html


async def test_claim_is_atomic_two_agents_cannot_both_claim(web: Web) -> None:
    cid = await web.escalated()
    one, two = web.new_client(), web.new_client()
    await login(one, "agent")
    await login(two, "agent2")
    results = await asyncio.gather(
        post_form(one, f"/inbox/{cid}/claim"), post_form(two, f"/inbox/{cid}/claim")
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [303, 409], codes
    winner = "agent" if results[0].status_code == 303 else "agent2"
    c = await conv(web, cid)
    assert c.status == "with_person" and c.assigned_to == web.users[winner]
    loser = two if winner == "agent" else one
    again = await post_form(loser, f"/inbox/{cid}/reply", {"body": "me too"})
    assert again.status_code == 409 and "Another agent holds" in again.text


@pytest.fixture
async def pg_web(pg_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    async for w in make_web(pg_url, tmp_path, clock):
        yield w


@pytest.mark.postgres
async def test_claim_is_atomic_on_postgres(pg_web: Web) -> None:
    cid = await pg_web.escalated()
    clients = [pg_web.new_client() for _ in range(2)]
    await login(clients[0], "agent")
    await login(clients[1], "agent2")
    for _ in range(3):  # several rounds: the race must never produce two winners
        results = await asyncio.gather(*(post_form(c, f"/inbox/{cid}/claim") for c in clients))
        assert sorted(r.status_code for r in results).count(303) <= 1
    assert (await conv(pg_web, cid)).assigned_to in {pg_web.users["agent"], pg_web.users["agent2"]}


async def test_reply_goes_through_the_outbox_and_twilio_and_shows_its_status(web: Web) -> None:
    cid = await web.escalated("+12125550123")
    await login(web.client, "agent")
    resp = await post_form(web.client, f"/inbox/{cid}/reply", {"body": "Hi, this is Sam from the salon."})
    assert resp.status_code == 303  # replying to an unclaimed conversation claims it
    c = await conv(web, cid)
    assert c.assigned_to == web.users["agent"] and c.status == "with_person"
    sent = [m for m in await messages(web, cid) if m.kind == "agent"]
    assert len(sent) == 1
    msg = sent[0]
    assert msg.author == f"agent:{web.users['agent']}" and msg.delivery == "rest" and msg.provider_message_id
    assert web.twilio.sent[-1]["To"] == "+12125550123"
    assert web.twilio.sent[-1]["Body"] == "Hi, this is Sam from the salon."
    # Twilio calls back: the page shows the new delivery status.
    cb = await web.sms.post(
        "/twilio/status",
        {
            "MessageSid": msg.provider_message_id or "",
            "MessageStatus": "delivered",
            "AccountSid": web.services.settings.twilio_account_sid,
        },
        query=f"m={msg.id}",
    )
    assert cb.status_code in (200, 204)
    html = (await web.client.get(f"/inbox/{cid}")).text
    assert (
        "Hi, this is Sam from the salon." in html and "dl-delivered" in html and "agent@example.com" in html
    )


async def test_a_failed_send_is_shown_with_its_error_code(web: Web) -> None:
    cid = await web.escalated()
    web.twilio.fail_status, web.twilio.fail_code = 400, 21211
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/reply", {"body": "Hello?"})
    msg = next(m for m in await messages(web, cid) if m.kind == "agent")
    assert msg.status == "failed" and msg.error_code == 21211
    assert "error 21211" in (await web.client.get(f"/inbox/{cid}")).text


async def test_reply_to_an_opted_out_customer_is_blocked_not_sent(web: Web) -> None:
    cid = await web.escalated("+12125550123")
    await web.text("STOP", "+12125550123")
    await login(web.client, "agent")
    before = len(web.twilio.sent)
    await post_form(web.client, f"/inbox/{cid}/reply", {"body": "Please come back!"})
    msg = next(m for m in await messages(web, cid) if m.kind == "agent")
    assert msg.status == "blocked" and len(web.twilio.sent) == before
    page = (await web.client.get(f"/inbox/{cid}")).text
    assert "dl-blocked" in page and "opted out of texts" in page


async def test_empty_or_too_long_replies_are_refused(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    assert (await post_form(web.client, f"/inbox/{cid}/reply", {"body": "   "})).status_code == 400
    too_long = await post_form(web.client, f"/inbox/{cid}/reply", {"body": "x" * 1601})
    assert too_long.status_code == 400 and "x" * 1601 in too_long.text  # the draft is kept
    assert not [m for m in await messages(web, cid) if m.kind == "agent"]


async def test_bot_stays_silent_while_a_person_holds_the_conversation(web: Web) -> None:
    cid = await web.escalated("+12125550123")
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    result = await web.text("are you there?", "+12125550123")
    assert result.route == "handoff" and not result.replies
    assert "are you there?" in (await web.client.get(f"/inbox/{cid}")).text


async def test_hand_back_lets_the_bot_answer_again(web: Web) -> None:
    cid = await web.escalated("+12125550123")
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    assert (await post_form(web.client, f"/inbox/{cid}/handback")).status_code == 303
    c = await conv(web, cid)
    assert c.status == "bot" and c.assigned_to is None
    result = await web.text("where are you located?", "+12125550123")
    assert result.route == "agent" and "12 Maple St" in (result.reply or "")


async def test_resolve_closes_and_the_next_message_opens_a_new_conversation(web: Web) -> None:
    cid = await web.escalated("+12125550123")
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    resp = await post_form(web.client, f"/inbox/{cid}/resolve")
    assert resp.status_code == 303 and resp.headers["location"] == "/inbox"
    c = await conv(web, cid)
    assert c.status == "resolved" and c.resolved_at is not None
    nxt = await web.text("hi again", "+12125550123")
    assert nxt.conversation_id != cid
    refused = await post_form(web.client, f"/inbox/{cid}/reply", {"body": "late"})
    assert refused.status_code == 409


async def test_only_the_holder_or_an_admin_can_hand_back_or_resolve(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    await post_form(web.client, f"/inbox/{cid}/claim")
    other = web.new_client()
    await login(other, "agent2")
    assert (await post_form(other, f"/inbox/{cid}/resolve")).status_code == 409
    assert (await post_form(other, f"/inbox/{cid}/handback")).status_code == 409
    admin = web.new_client()
    await login(admin, "admin")
    assert (await post_form(admin, f"/inbox/{cid}/resolve")).status_code == 303


async def test_tags_and_notes(web: Web) -> None:
    cid = await web.escalated()
    await login(web.client, "agent")
    assert (await post_form(web.client, f"/inbox/{cid}/tags", {"tag": "VIP"})).status_code == 303
    assert (
        await post_form(web.client, f"/inbox/{cid}/tags", {"tag": "vip"})
    ).status_code == 303  # no duplicate
    assert (await post_form(web.client, f"/inbox/{cid}/tags", {"tag": "<script>"})).status_code == 400
    assert (
        await post_form(web.client, f"/inbox/{cid}/notes", {"text": "Called her back at 3pm"})
    ).status_code == 303
    c = await conv(web, cid)
    assert c.tags == ["vip"]
    assert c.notes[0]["text"] == "Called her back at 3pm" and c.notes[0]["by"] == "agent@example.com"
    html = (await web.client.get(f"/inbox/{cid}")).text
    assert "Called her back at 3pm" in html and '<span class="tag">vip</span>' in html
    await post_form(web.client, f"/inbox/{cid}/tags/remove", {"tag": "vip"})
    assert (await conv(web, cid)).tags == []


async def test_transcript_polling_returns_204_until_something_changes(web: Web) -> None:
    cid = await web.escalated("+12125550123")
    await login(web.client, "agent")
    page = (await web.client.get(f"/inbox/{cid}")).text
    sig = re.search(rf"/inbox/{cid}/transcript\?v=(\w+)", page)
    assert sig
    poll = f"/inbox/{cid}/transcript?v={sig.group(1)}"
    hx = {"HX-Request": "true"}
    assert (await web.client.get(poll, headers=hx)).status_code == 204
    await web.text("I'm still waiting", "+12125550123")
    fresh = await web.client.get(poll, headers=hx)
    assert fresh.status_code == 200 and "still waiting" in fresh.text
    assert 'id="transcript"' in fresh.text and "<html" not in fresh.text  # a fragment, not a page


async def test_inbox_rows_polling(web: Web) -> None:
    await login(web.client, "agent")
    page = (await web.client.get("/inbox")).text
    sig = re.search(r'/inbox/rows\?[^"]*v=(\w+)', page)
    assert sig
    assert (await web.client.get(f"/inbox/rows?v={sig.group(1)}")).status_code == 204
    await web.escalated("+12125550199")
    fresh = await web.client.get(f"/inbox/rows?v={sig.group(1)}")
    assert fresh.status_code == 200 and "+12125550199" in fresh.text


async def test_unknown_conversation_is_404(web: Web) -> None:
    await login(web.client, "agent")
    resp = await web.client.get("/inbox/999999")
    assert resp.status_code == 404 and "Not found" in resp.text
