"""Web chat: the widget's HTTP API through the real app, on the same pipeline, rules and inbox.

The live stream (server-sent events) is exercised in the browser test
(tests/web/test_webchat_browser.py): httpx's ASGI transport buffers whole responses, so a stream
that never ends cannot be read here. ``GET /webchat/messages`` is the same feed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from channels.webchat import visitor_token
from store.models import Booking, ConsentEvent, Contact, Conversation, Message
from tests.web.conftest import Web, login, make_web, post_form
from textdesk import tasks
from textdesk.clock import FrozenClock

NY = dt.timezone(dt.timedelta(hours=-5))
ORIGIN = "https://www.example-salon.test"


class Visitor:
    """A browser running the widget: a token from /webchat/session, JSON in text/plain bodies."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.token = ""

    async def start(self) -> dict[str, Any]:
        resp = await self.client.post("/webchat/session", content="{}", headers={"Origin": ORIGIN})
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        self.token = data["token"]
        return data

    async def post(self, path: str, data: dict[str, Any], token: str | None = None) -> httpx.Response:
        body = {**data, "token": self.token if token is None else token}
        return await self.client.post(
            f"/webchat/{path}",
            content=json.dumps(body),
            headers={"Content-Type": "text/plain", "Origin": ORIGIN},
        )

    async def say(self, text: str, client_id: str | None = None) -> list[dict[str, Any]]:
        resp = await self.post("messages", {"text": text, "client_id": client_id or uuid.uuid4().hex})
        assert resp.status_code == 200, resp.text
        await tasks.drain()
        return list(resp.json()["messages"])

    async def feed(self, after: int = 0) -> list[dict[str, Any]]:
        resp = await self.client.get("/webchat/messages", params={"token": self.token, "after": after})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["messages"])

    async def bot_texts(self) -> list[str]:
        return [m["text"] for m in await self.feed() if m["from"] == "bot"]


@pytest.fixture
async def web(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    async for w in make_web(sqlite_url, tmp_path, clock, webchat_origins=[ORIGIN]):
        yield w


@pytest.fixture
async def visitor(web: Web) -> Visitor:
    v = Visitor(web.new_client())
    await v.start()
    return v


async def rows(web: Web, model: Any) -> list[Any]:
    async with web.services.sessions() as s:
        return list(await s.exec(select(model).order_by(col(model.id))))


async def test_widget_is_one_script_served_by_textdesk(web: Web) -> None:
    resp = await web.new_client().get("/webchat/widget.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    assert "/webchat/stream" in resp.text and "EventSource" in resp.text


async def test_session_names_the_business_and_allows_only_listed_origins(web: Web) -> None:
    client = web.new_client()
    ok = await client.post("/webchat/session", content="{}", headers={"Origin": ORIGIN})
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    assert ok.json()["business"] == web.services.business.name
    assert "STOP" in ok.json()["consent_text"]
    other = await client.post("/webchat/session", content="{}", headers={"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in other.headers
    # The same visitor's token renews to the same visitor; a forged one starts a new visitor.
    token = ok.json()["token"]
    renewed = (await client.post("/webchat/session", content=f'{{"token": "{token}"}}')).json()["token"]
    assert renewed.split(".")[0] == token.split(".")[0]
    forged = token.split(".")[0] + ".1.AAAA"
    fresh = (await client.post("/webchat/session", content=f'{{"token": "{forged}"}}')).json()["token"]
    assert fresh.split(".")[0] != token.split(".")[0]


@pytest.mark.parametrize("token", ["", "nope", "abc.123.sig", "__EXPIRED__", "__OTHER_KEY__"])
async def test_messages_without_a_valid_token_are_401_and_store_nothing(
    web: Web, visitor: Visitor, token: str
) -> None:
    visitor_id = visitor.token.split(".")[0]
    if token == "__EXPIRED__":  # validly signed, older than webchat_token_days
        token = visitor_token(web.services.settings, visitor_id, int(time.time()) - 31 * 86400)
    elif token == "__OTHER_KEY__":  # signed with another deployment's key
        other_key = SecretStr("another-secret-key-entirely")
        other = web.services.settings.model_copy(update={"secret_key": other_key})
        token = visitor_token(other, visitor_id)
    resp = await visitor.post("messages", {"text": "book a haircut", "client_id": uuid.uuid4().hex}, token)
    assert resp.status_code == 401
    listing = await visitor.client.get("/webchat/messages", params={"token": token})
    assert listing.status_code == 401
    assert await rows(web, Message) == [] and await rows(web, Contact) == []


async def test_bad_message_bodies_are_400(visitor: Visitor) -> None:
    assert (await visitor.post("messages", {"text": "  ", "client_id": uuid.uuid4().hex})).status_code == 400
    assert (await visitor.post("messages", {"text": "x" * 1601, "client_id": "c" * 12})).status_code == 400
    assert (await visitor.post("messages", {"text": "hi"})).status_code == 400  # no client_id
    raw = await visitor.client.post("/webchat/messages", content="not json")
    assert raw.status_code == 401  # no token could be read


async def test_full_booking_conversation_over_web_chat(web: Web, visitor: Visitor) -> None:
    first = await visitor.say("hi can i get a haircut tmrw?")
    assert [m["from"] for m in first] == ["you", "bot"]  # the answer comes back on the same request
    assert "1)" in first[-1]["text"] and "Tue Mar 3" in first[-1]["text"]
    assert "Reply YES" in (await visitor.say("2"))[-1]["text"]
    assert await rows(web, Booking) == []
    third = await visitor.say("yes please")
    assert "booked" in third[-1]["text"]

    (b,) = await rows(web, Booking)
    assert b.service == "haircut" and b.status == "active"
    assert b.start.astimezone(NY).date() == dt.date(2026, 3, 3)
    (contact,) = await rows(web, Contact)
    assert contact.phone.startswith("visitor:") and contact.visitor_id and b.contact_id == contact.id
    (conv,) = await rows(web, Conversation)
    assert (conv.channel, conv.provider) == ("webchat", "webchat")
    msgs = await rows(web, Message)
    assert len(msgs) == 6 and all(m.channel == "webchat" for m in msgs)
    assert all(m.status == "delivered" for m in msgs if m.direction == "out")
    assert web.twilio.sent == []  # nothing went out by SMS
    # The feed holds the whole exchange in order, and `after` pages it.
    feed = await visitor.feed()
    assert [m["from"] for m in feed] == ["you", "bot"] * 3
    assert [m["id"] for m in await visitor.feed(after=feed[3]["id"])] == [feed[4]["id"], feed[5]["id"]]


async def test_a_retried_post_is_answered_once(web: Web, visitor: Visitor) -> None:
    await visitor.say("where are you located?", client_id="retry-0000001")
    again = await visitor.say("where are you located?", client_id="retry-0000001")
    assert [m["from"] for m in again] == ["you", "bot"]
    assert len(await rows(web, Message)) == 2


async def test_stop_works_in_web_chat_too(web: Web, visitor: Visitor) -> None:
    await visitor.say("where are you located?")
    await visitor.say("STOP")
    (contact,) = await rows(web, Contact)
    assert contact.consent == "opted_out"
    before = await visitor.bot_texts()
    await visitor.say("where are you located?")
    assert await visitor.bot_texts() == before  # never written to after opting out


async def test_visitor_hands_off_and_sees_the_agents_reply(web: Web, visitor: Visitor) -> None:
    await visitor.say("can I talk to a person please")
    (conv,) = await rows(web, Conversation)
    assert conv.status == "waiting"  # for a person
    await login(web.client, "agent")
    inbox = await web.client.get("/inbox")
    assert "webchat" in inbox.text.lower() or "web chat" in inbox.text.lower()
    page = await web.client.get(f"/inbox/{conv.id}")
    assert "Web chat" in page.text
    resp = await post_form(web.client, f"/inbox/{conv.id}/reply", {"body": "Hi, Sam here. How can I help?"})
    assert resp.status_code == 303
    await tasks.drain()
    staff = [m for m in await visitor.feed() if m["from"] == "staff"]
    assert [m["text"] for m in staff] == ["Hi, Sam here. How can I help?"]
    # While the person handles it, the bot stays silent.
    quiet = len(await visitor.bot_texts())
    await visitor.say("thanks, tomorrow at 2?")
    assert len(await visitor.bot_texts()) == quiet


async def test_leaving_a_phone_needs_explicit_consent(web: Web, visitor: Visitor) -> None:
    await visitor.say("where are you located?")
    no = await visitor.post("phone", {"phone": "(212) 555-0199"})
    assert no.status_code == 400 and "consent" in no.text
    bad = await visitor.post("phone", {"phone": "12", "consent": True})
    assert bad.status_code == 400
    ok = await visitor.post("phone", {"phone": "(212) 555-0199", "consent": True})
    assert ok.status_code == 200
    (contact,) = await rows(web, Contact)
    assert contact.phone == "+12125550199" and contact.consent == "opted_in"
    (event,) = [e for e in await rows(web, ConsentEvent) if e.contact_id == contact.id]
    assert event.source == "webchat_form" and "STOP" in (event.detail or "")
    # The chat goes on as before under the same visitor.
    assert "12 Maple St" in (await visitor.say("where are you located?"))[-1]["text"]


async def test_one_person_on_two_channels_is_one_contact(web: Web, visitor: Visitor) -> None:
    await web.text("do you do beard trims?", phone="+12125550123")  # known by SMS already
    await visitor.say("hi can i get a haircut tmrw?")
    assert len(await rows(web, Contact)) == 2
    resp = await visitor.post("phone", {"phone": "+1 212 555 0123", "consent": True})
    assert resp.status_code == 200
    (contact,) = await rows(web, Contact)
    assert contact.phone == "+12125550123" and contact.visitor_id == visitor.token.split(".")[0]
    convs = await rows(web, Conversation)
    assert {c.channel for c in convs} == {"sms", "webchat"}
    assert {c.contact_id for c in convs} == {contact.id}
    assert {m.contact_id for m in await rows(web, Message)} == {contact.id}
    # The visitor's chat continues where it was, on the merged contact.
    assert "Reply YES" in (await visitor.say("2"))[-1]["text"]


async def test_a_visitor_who_left_no_number_is_never_texted(web: Web, visitor: Visitor) -> None:
    await visitor.say("hi can i get a haircut tmrw?")
    await visitor.say("1")
    await visitor.say("yes")
    (b,) = await rows(web, Booking)
    (contact,) = await rows(web, Contact)
    assert contact.consent == "unknown"  # booking in a chat is no consent to texts
    web.clock.advance(hours=30)  # every reminder is due
    await web.services.scheduler.run_due()
    await tasks.drain()
    assert web.twilio.sent == []
    assert [m.kind for m in await rows(web, Message) if m.direction == "out"] == ["reply"] * 3
    assert b.status == "active"
