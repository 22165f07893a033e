"""Hard rules through signed webhooks: opt-out/in, HELP, HUMAN and the consent gate."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from store.models import ConsentEvent, Contact, Conversation, Message, Trace
from tests.conftest import Sms

OPT_OUT = [
    "STOP",
    "stop",
    " Stop. ",
    "STOPALL",
    "unsubscribe",
    "CANCEL",
    "cancel!",
    "END",
    "quit",
    "REVOKE",
    "optout",
    "OPTOUT",
]
NL_OPT_OUT = [
    "please stop texting me",
    "remove me from your list",
    "Unsubscribe me please",
    "take me off this list",
    "don't text me anymore",
    "no more texts pls",
    # a keyword said as its own clause, and more ways of saying it (issue 17.5)
    "no more of these texts for me, stop",
    "ok no more texts from u guys, stop",
    "STOP. i mean it",
    "pls STOP sending me these reminders",
    "i don't want these messages",
    "quit messaging me",
    "never text me again",
    "how do i unsubscribe",
]
NOT_OPT_OUT = [
    "cancel my appointment",
    "can I stop by at 3 tomorrow?",
    "I want to cancel my haircut on thursday",
    "when does the salon close",
    "stop by friday?",
    "can't stop thinking about my haircut",
    "my phone won't stop restarting",
    "don't text me before 9 please",
    "ok stop, let me think about which day",
]


async def consent(services: Any, phone: str = "+12125550123") -> str | None:
    async with services.sessions() as s:
        c = (await s.exec(select(Contact).where(Contact.phone == phone))).first()
        return c.consent if c else None


async def outbound(services: Any) -> list[Message]:
    async with services.sessions() as s:
        return list(await s.exec(select(Message).where(Message.direction == "out").order_by(col(Message.id))))


@pytest.mark.parametrize("word", OPT_OUT)
async def test_opt_out_keywords(sms: Sms, services: Any, word: str) -> None:
    resp = await sms.text(word)
    assert "unsubscribed" in resp.text and "START" in resp.text
    assert await consent(services) == "opted_out"
    async with services.sessions() as s:
        trace = (await s.exec(select(Trace))).one()
    assert (trace.route, trace.rule, trace.llm_calls) == ("rule", "opt_out", 0)


@pytest.mark.parametrize("text", NL_OPT_OUT)
async def test_natural_language_opt_outs(sms: Sms, services: Any, text: str) -> None:
    await sms.text(text)
    assert await consent(services) == "opted_out"


@pytest.mark.parametrize("text", NOT_OPT_OUT)
async def test_not_opt_outs(sms: Sms, services: Any, text: str) -> None:
    resp = await sms.text(text)
    assert "unsubscribed" not in resp.text
    assert await consent(services) != "opted_out"


async def test_exactly_one_confirmation_and_then_silence(sms: Sms, services: Any) -> None:
    first = await sms.text("STOP")
    second = await sms.text("STOP")
    third = await sms.text("hey can i book a haircut?")
    assert "<Message" in first.text
    assert second.text.endswith("<Response/>") and third.text.endswith("<Response/>")
    sent = [m for m in await outbound(services) if m.status != "blocked"]
    assert len(sent) == 1
    async with services.sessions() as s:
        events = list(await s.exec(select(ConsentEvent)))
    assert [(e.old, e.new, e.source) for e in events] == [("unknown", "opted_out", "keyword")]


async def test_help_is_answered_even_when_opted_out(sms: Sms) -> None:
    await sms.text("STOP")
    resp = await sms.text("HELP")
    assert "Maple Street Salon" in resp.text and "(212) 555-0100" in resp.text
    assert "STOP" in resp.text and "Msg &amp; data rates may apply" in resp.text


async def test_help_content_and_size(sms: Sms, services: Any) -> None:
    await sms.text("info")
    out = (await outbound(services))[-1]
    assert "Msg frequency varies" in out.body and "help@maplesalon.example" in out.body
    assert out.segments <= 2


async def test_opt_in_with_start_and_yes(sms: Sms, services: Any) -> None:
    await sms.text("STOP")
    resp = await sms.text("START")
    assert "resubscribed" in resp.text
    assert await consent(services) == "opted_in"
    await sms.text("STOP", sender="+12125550124")
    await sms.text("yes", sender="+12125550124")
    assert await consent(services, "+12125550124") == "opted_in"


async def test_yes_is_not_an_opt_in_for_a_subscribed_contact(sms: Sms, services: Any) -> None:
    resp = await sms.text("yes")
    assert "resubscribed" not in resp.text
    assert await consent(services) == "unknown"


async def test_human_hands_off_and_bot_goes_silent(sms: Sms, services: Any) -> None:
    resp = await sms.text("AGENT")
    assert "team member" in resp.text
    async with services.sessions() as s:
        conv = (await s.exec(select(Conversation))).one()
        trace = (await s.exec(select(Trace))).one()
    assert (conv.status, conv.escalation_reason) == ("waiting", "requested")
    assert trace.tools == [
        {"name": "escalate", "args": {"reason": "requested", "summary": trace.tools[0]["args"]["summary"]}}
    ]
    silent = await sms.text("hello? anyone there")
    assert silent.text.endswith("<Response/>")
    # STOP still works while a person holds the conversation.
    stop = await sms.text("STOP")
    assert "unsubscribed" in stop.text


async def test_opted_out_contact_receives_nothing_even_from_staff(sms: Sms, services: Any) -> None:
    from store.outbox import queue_outbound

    await sms.text("STOP")
    async with services.sessions() as s:
        c = (await s.exec(select(Contact))).one()
        conv = (await s.exec(select(Conversation))).one()
        msg = queue_outbound(s, c, conv, "Hi, this is Kim from the salon!", kind="agent")
        await s.commit()
        mid = msg.id
    assert msg.status == "blocked"
    sent = await services.dispatcher.send(mid or 0)  # the send path refuses too, without any HTTP call
    assert sent is not None and sent.status == "blocked"


async def test_human_again_during_handoff_keeps_the_claim_and_stays_silent(sms: Sms, services: Any) -> None:
    await sms.text("HUMAN")
    async with services.sessions() as s:
        conv = (await s.exec(select(Conversation))).one()
        conv.status, conv.assigned_to = "with_person", None
        s.add(conv)
        await s.commit()
    again = await sms.text("HUMAN")
    assert again.text.endswith("<Response/>")
    async with services.sessions() as s:
        conv2 = (await s.exec(select(Conversation))).one()
        traces = list(await s.exec(select(Trace).order_by(col(Trace.id))))
    assert conv2.status == "with_person"  # not put back to "waiting"
    assert traces[-1].tools == [] and traces[-1].rule == "human"


async def test_business_keyword_auto_reply_after_the_hard_rules(sms: Sms, services: Any) -> None:
    await services.pipeline.auto_replies.put("HOURS", "We're open Mon-Sat, see maplesalon.example/hours")
    resp = await sms.text("hours?")
    assert "open Mon-Sat" in resp.text
    async with services.sessions() as s:
        trace = (await s.exec(select(Trace))).one()
    assert trace.route == "rule" and trace.steps[-1]["step"] in ("auto_reply", "output_guard")
    assert any(st["step"] == "auto_reply" and st["reason"] == "HOURS" for st in trace.steps)
    # A reserved word never becomes an auto-reply: STOP still opts out.
    stop = await sms.text("STOP")
    assert "unsubscribed" in stop.text
    # And an opted-out contact gets nothing, keyword or not.
    assert (await sms.text("HOURS")).text.endswith("<Response/>")
