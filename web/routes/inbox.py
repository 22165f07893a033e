"""The inbox: conversations needing a person first, and working one from claim to resolve.

Agents (and admins) only. Replies go through the outbox's consent gate and the dispatcher; the
bot stays silent while a conversation is ``waiting`` or ``with_person`` (the pipeline checks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.params import FromQuery as Q
from litestar.response import Redirect, Template

from agent.state import DialogueState
from store import repo
from store.models import Contact, Conversation
from store.outbox import queue_outbound
from web.deps import CurrentStaff, Db, Svc
from web.guards import INBOX, requires
from web.handoff import collected_fields, next_step, summary
from web.queries import STATUSES, TAG_RE, InboxFilter, claim, conversation_view, inbox_rows, inbox_tags
from web.routes.common import in_range, page, see_other
from web.sending import send_soon
from web.templating import REASON_LABELS

__all__ = ["InboxController"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
MAX_REPLY = 1600


@dataclass
class ReplyForm:
    body: str = ""


@dataclass
class TagForm:
    tag: str = ""


@dataclass
class NoteForm:
    text: str = ""


def _filters(status: str | None, reason: str | None, tag: str | None, q: str | None) -> InboxFilter:
    """Unknown filter values are ignored rather than rejected (they come from bookmarks)."""
    return InboxFilter(
        status=status if status in STATUSES else None,
        reason=reason if reason in REASON_LABELS else None,
        tag=tag.lower() if tag and TAG_RE.match(tag.lower()) else None,
        q=q.strip()[:100] if q and q.strip() else None,
    )


def _rows_signature(rows: list[Any]) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for r in rows:
        h.update(f"{r.id}:{r.status}:{r.assignee}:{r.last_message_at}:{','.join(r.tags)}|".encode())
    return h.hexdigest()[:16]


class InboxController(Controller):
    path = "/inbox"
    guards = [requires(*INBOX)]  # noqa: RUF012 (Litestar reads class attributes)
    include_in_schema = False

    @get("/", name="inbox")
    async def index(
        self,
        db: Db,
        staff: CurrentStaff,
        status: Q[str | None] = None,
        reason: Q[str | None] = None,
        tag: Q[str | None] = None,
        q: Q[str | None] = None,
    ) -> Template:
        f = _filters(status, reason, tag, q)
        rows = await inbox_rows(db, f)
        return page(
            "inbox/list.html",
            staff,
            rows=rows,
            f=f,
            tags=await inbox_tags(db),
            statuses=STATUSES,
            reasons=REASON_LABELS,
            sig=_rows_signature(rows),
        )

    @get("/rows")
    async def rows(
        self,
        db: Db,
        staff: CurrentStaff,
        status: Q[str | None] = None,
        reason: Q[str | None] = None,
        tag: Q[str | None] = None,
        q: Q[str | None] = None,
        v: Q[str | None] = None,
    ) -> Template | Response[str]:
        f = _filters(status, reason, tag, q)
        rows = await inbox_rows(db, f)
        sig = _rows_signature(rows)
        if v == sig:
            return Response("", status_code=204)  # nothing changed: htmx keeps the table as it is
        return page("inbox/_rows.html", staff, rows=rows, f=f, sig=sig)

    async def _view(self, db: Db, cid: FromPath[int]) -> Any:
        view = await conversation_view(db, cid) if in_range(cid) else None
        if view is None:
            raise NotFoundException(f"no conversation {cid}")
        return view

    async def _detail(
        self,
        db: Db,
        staff: CurrentStaff,
        cid: FromPath[int],
        *,
        error: str | None = None,
        status_code: int = 200,
        draft: str = "",
    ) -> Template:
        view = await self._view(db, cid)
        conv, contact = view.conversation, view.contact
        return page(
            "inbox/detail.html",
            staff,
            status_code=status_code,
            view=view,
            conv=conv,
            contact=contact,
            fields=collected_fields(contact, view.last_slots),
            summary=summary(conv, contact),
            next_step=next_step(conv, contact),
            error=error,
            sig=view.signature,
            max_reply=MAX_REPLY,
            draft=draft,
        )

    @get("/{cid:int}", name="conversation")
    async def detail(self, db: Db, staff: CurrentStaff, cid: FromPath[int]) -> Template:
        return await self._detail(db, staff, cid)

    @get("/{cid:int}/transcript")
    async def transcript(
        self, db: Db, staff: CurrentStaff, cid: FromPath[int], v: Q[str | None] = None
    ) -> Template | Response[str]:
        view = await self._view(db, cid)
        if v == view.signature:
            return Response("", status_code=204)
        return page("inbox/_transcript.html", staff, view=view, conv=view.conversation, sig=view.signature)

    @post("/{cid:int}/claim", status_code=303)
    async def claim(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int]
    ) -> Redirect | Template:
        await self._view(db, cid)
        if not await claim(db, cid, staff.id):
            await db.rollback()
            return await self._detail(
                db,
                staff,
                cid,
                status_code=409,
                error="Someone else already holds this conversation (or it is resolved).",
            )
        await repo.audit(
            db, "conversation.claimed", conversation_id=cid, actor=staff.actor, at=services.clock.now()
        )
        return see_other(f"/inbox/{cid}")

    async def _holder_check(
        self, db: Db, staff: CurrentStaff, conv: Conversation, *, admin_override: bool
    ) -> str | None:
        if conv.assigned_to in (None, staff.id) or (admin_override and staff.role == "admin"):
            return None
        return "Another agent holds this conversation."

    @post("/{cid:int}/reply", status_code=303)
    async def reply(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int], data: Annotated[ReplyForm, Form]
    ) -> Redirect | Template:
        view = await self._view(db, cid)
        conv, contact = view.conversation, view.contact
        body = data.body.strip()
        problem: tuple[int, str] | None = None
        held = await self._holder_check(db, staff, conv, admin_override=False)
        if held:
            problem = (409, held)
        elif not body:
            problem = (400, "The reply is empty.")
        elif len(body) > MAX_REPLY:
            problem = (400, f"The reply is longer than {MAX_REPLY} characters.")
        elif conv.status == "resolved":
            problem = (409, "This conversation is resolved; the customer's next message opens a new one.")
        elif conv.assigned_to is None:
            if await claim(db, cid, staff.id):  # replying takes the conversation, atomically
                await db.refresh(conv)
            else:
                problem = (409, "Someone else just claimed this conversation.")
        if problem:
            await db.rollback()
            return await self._detail(db, staff, cid, status_code=problem[0], error=problem[1], draft=body)
        now = services.clock.now()
        msg = queue_outbound(db, contact, conv, body, kind="agent", author=f"agent:{staff.id}", now=now)
        conv.last_message_at = now
        db.add(conv)
        await db.flush()
        await repo.audit(
            db,
            "conversation.agent_reply",
            contact_id=contact.id,
            conversation_id=cid,
            actor=staff.actor,
            at=now,
            message_id=msg.id,
            status=msg.status,
        )
        await db.commit()  # the dispatcher reads the message in its own session
        if msg.status == "queued":
            await send_soon(services.dispatcher, msg.id or 0)
        return see_other(f"/inbox/{cid}#m{msg.id}")

    @post("/{cid:int}/tags", status_code=303)
    async def add_tag(
        self, db: Db, staff: CurrentStaff, cid: FromPath[int], data: Annotated[TagForm, Form]
    ) -> Redirect | Template:
        view = await self._view(db, cid)
        tag = data.tag.strip().lower().replace(" ", "-")
        if not TAG_RE.match(tag):
            return await self._detail(
                db, staff, cid, status_code=400, error="A tag is 1-32 lower-case letters, digits, '-' or '_'."
            )
        conv = view.conversation
        if tag not in conv.tags:
            conv.tags = [*conv.tags, tag]
            db.add(conv)
        return see_other(f"/inbox/{cid}")

    @post("/{cid:int}/tags/remove", status_code=303)
    async def remove_tag(
        self, db: Db, staff: CurrentStaff, cid: FromPath[int], data: Annotated[TagForm, Form]
    ) -> Redirect:
        conv = (await self._view(db, cid)).conversation
        conv.tags = [t for t in conv.tags if t != data.tag]
        db.add(conv)
        return see_other(f"/inbox/{cid}")

    @post("/{cid:int}/notes", status_code=303)
    async def add_note(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int], data: Annotated[NoteForm, Form]
    ) -> Redirect | Template:
        conv = (await self._view(db, cid)).conversation
        text = data.text.strip()
        if not text or len(text) > 2000:
            return await self._detail(db, staff, cid, status_code=400, error="A note is 1-2000 characters.")
        conv.notes = [*conv.notes, {"by": staff.email, "at": services.clock.now().isoformat(), "text": text}]
        db.add(conv)
        return see_other(f"/inbox/{cid}#notes")

    @post("/{cid:int}/handback", status_code=303)
    async def hand_back(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int]
    ) -> Redirect | Template:
        view = await self._view(db, cid)
        conv, contact = view.conversation, view.contact
        problem = await self._holder_check(db, staff, conv, admin_override=True)
        if problem or conv.status == "resolved":
            return await self._detail(db, staff, cid, status_code=409, error=problem or "Already resolved.")
        conv.status, conv.assigned_to = "bot", None
        db.add(conv)
        _reset_counters(contact)
        db.add(contact)
        await repo.audit(
            db, "conversation.handed_back", conversation_id=cid, actor=staff.actor, at=services.clock.now()
        )
        return see_other(f"/inbox/{cid}")

    @post("/{cid:int}/resolve", status_code=303)
    async def resolve(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int]
    ) -> Redirect | Template:
        conv = (await self._view(db, cid)).conversation
        problem = await self._holder_check(db, staff, conv, admin_override=True)
        if problem:
            return await self._detail(db, staff, cid, status_code=409, error=problem)
        now = services.clock.now()
        conv.status, conv.resolved_at = "resolved", now
        db.add(conv)
        await repo.audit(db, "conversation.resolved", conversation_id=cid, actor=staff.actor, at=now)
        return see_other("/inbox")


def _reset_counters(contact: Contact) -> None:
    """Handing back gives the bot a fresh start: no stale low-confidence or block counts that
    would escalate again on the first message."""
    st = DialogueState.load(contact.state)
    st.low_conf, st.blocked = 0, 0
    contact.state = st.model_dump()
