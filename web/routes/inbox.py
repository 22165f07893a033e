"""The inbox: conversations needing a person first, and working one from claim to resolve.

Agents (and admins) only. Replies go through the outbox's consent gate and the dispatcher; the
bot stays silent while a conversation is ``waiting`` or ``with_person`` (the pipeline checks).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, QueryParameter
from litestar.params import FromQuery as Q
from litestar.response import Redirect, Template

from agent.state import DialogueState
from store import repo
from store.models import Contact, Conversation, Message, User
from store.outbox import queue_outbound
from tools.actions import ToolContext, run_tool
from web.deps import CurrentStaff, Db, Svc
from web.guards import INBOX, requires
from web.handoff import collected_fields, next_step, summary
from web.queries import (
    STATES,
    STATUSES,
    TAG_RE,
    VIEWS,
    InboxFilter,
    claim,
    colleagues,
    contact_history,
    conversation_view,
    inbox_counts,
    inbox_rows,
    inbox_tags,
)
from web.routes.common import in_range, page, see_other
from web.sending import send_soon
from web.templating import REASON_LABELS, STATE_LABELS

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


@dataclass
class HandBackForm:
    # What to do with a customer message nobody answered: "answer" (the bot answers it now) or
    # "leave" (the agent decided it needs no answer). Required when there is one.
    then: str = ""


def _filters(
    staff: CurrentStaff,
    status: str | None,
    reason: str | None,
    tag: str | None,
    q: str | None,
    view: str | None = None,
    state: str | None = None,
) -> InboxFilter:
    """Unknown filter values are ignored rather than rejected (they come from bookmarks)."""
    return InboxFilter(
        status=status if status in STATUSES else None,
        reason=reason if reason in REASON_LABELS else None,
        tag=tag.lower() if tag and TAG_RE.match(tag.lower()) else None,
        q=q.strip()[:100] if q and q.strip() else None,
        view=view if view in VIEWS else "all",
        state=state if state in STATES else None,
        user_id=staff.id,
    )


def _idle_after(services: Svc) -> dt.timedelta | None:
    minutes = services.settings.idle_claim_minutes
    return dt.timedelta(minutes=minutes) if minutes > 0 else None


def _rows_signature(rows: list[Any]) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for r in rows:
        h.update(
            f"{r.id}:{r.status}:{r.assignee}:{r.last_message_at}:{','.join(r.tags)}:{r.risk}:{r.last_status}|".encode()
        )
    return h.hexdigest()[:16]


@dataclass
class AssignForm:
    user_id: int = 0


@dataclass
class ContactForm:
    name: str = ""
    email: str = ""


class InboxController(Controller):
    path = "/inbox"
    guards = [requires(*INBOX)]  # noqa: RUF012 (Litestar reads class attributes)
    include_in_schema = False

    @get("/", name="inbox")
    async def index(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        status: Q[str | None] = None,
        reason: Q[str | None] = None,
        tag: Q[str | None] = None,
        q: Q[str | None] = None,
        view: Q[str | None] = None,
        conv_state: Annotated[str | None, QueryParameter(name="state")] = None,
        resolved: Q[int | None] = None,
    ) -> Template:
        f = _filters(staff, status, reason, tag, q, view, conv_state)
        rows = await inbox_rows(db, f, services.clock.now(), _idle_after(services))
        return page(
            "inbox/list.html",
            staff,
            rows=rows,
            f=f,
            tags=await inbox_tags(db),
            statuses=STATUSES,
            reasons=REASON_LABELS,
            states=STATE_LABELS,
            counts=await inbox_counts(db, staff.id),
            resolved=resolved,
            sig=_rows_signature(rows),
        )

    @get("/rows")
    async def rows(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        status: Q[str | None] = None,
        reason: Q[str | None] = None,
        tag: Q[str | None] = None,
        q: Q[str | None] = None,
        view: Q[str | None] = None,
        conv_state: Annotated[str | None, QueryParameter(name="state")] = None,
        v: Q[str | None] = None,
    ) -> Template | Response[str]:
        f = _filters(staff, status, reason, tag, q, view, conv_state)
        rows = await inbox_rows(db, f, services.clock.now(), _idle_after(services))
        sig = _rows_signature(rows)
        if v == sig:
            return Response("", status_code=204)  # nothing changed: htmx keeps the table as it is
        return page("inbox/_rows.html", staff, rows=rows, f=f, sig=sig)

    @post("/bulk/resolve", status_code=303)
    async def bulk_resolve(
        self, db: Db, staff: CurrentStaff, services: Svc, request: Request[Any, Any, Any]
    ) -> Redirect:
        """Resolve the ticked conversations the agent may resolve; the others are left as they are.
        Read from the raw form: one ticked box is one ``ids`` value, not a list, to a form model."""
        form = await request.form()
        ticked = {int(v) for v in form.getall("ids", []) if str(v).isdigit()}
        now = services.clock.now()
        done = 0
        for cid in {i for i in ticked if in_range(i)}:
            conv = await db.get(Conversation, cid)
            if conv is None or conv.status == "resolved":
                continue
            if await self._holder_check(db, staff, conv, admin_override=True):
                continue
            conv.status, conv.resolved_at = "resolved", now
            db.add(conv)
            await repo.audit(
                db, "conversation.resolved", conversation_id=cid, actor=staff.actor, at=now, bulk=True
            )
            done += 1
        return see_other(f"/inbox?resolved={done}")

    @post("/{cid:int}/assign", status_code=303)
    async def assign(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        cid: FromPath[int],
        data: Annotated[AssignForm, Form],
    ) -> Redirect | Template:
        """Hand the conversation to a colleague: the holder, an admin, or anyone while nobody holds it."""
        view = await self._view(db, cid)
        conv = view.conversation
        problem = await self._holder_check(db, staff, conv, admin_override=True)
        user = await db.get(User, data.user_id) if in_range(data.user_id) else None
        if not problem and conv.status == "resolved":
            problem = "This conversation is resolved."
        if not problem and (user is None or not user.active or user.role not in ("agent", "admin")):
            problem = "Pick an active agent or admin."
        if problem or user is None:
            return await self._detail(db, staff, cid, status_code=409, error=problem)
        conv.assigned_to, conv.status = user.id, "with_person"
        db.add(conv)
        await repo.audit(
            db, "conversation.assigned", conversation_id=cid, actor=staff.actor, at=services.clock.now(),
            to=user.email,
        )
        return see_other(f"/inbox/{cid}")

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
            summary=summary(conv, contact, view.messages),
            history=await contact_history(db, contact.id or 0, conv.id or 0),
            colleagues=await colleagues(db),
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

    async def _outbound(self, db: Db, cid: int, mid: int) -> Message:
        """An outbound message of this conversation (a 404 for any other id)."""
        msg = await db.get(Message, mid) if in_range(mid) else None
        if msg is None or msg.conversation_id != cid or msg.direction != "out":
            raise NotFoundException(f"no outbound message {mid} in conversation {cid}")
        return msg

    @post("/{cid:int}/messages/{mid:int}/retry", status_code=303)
    async def retry_send(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int], mid: FromPath[int]
    ) -> Redirect | Template:
        await self._view(db, cid)
        await self._outbound(db, cid, mid)
        await db.rollback()  # the dispatcher works in its own sessions; release ours first
        if not await services.dispatcher.retry_now(mid):
            return await self._detail(
                db, staff, cid, status_code=409, error="That message is no longer waiting to be retried."
            )
        await repo.audit(
            db,
            "message.retry_now",
            conversation_id=cid,
            actor=staff.actor,
            at=services.clock.now(),
            message_id=mid,
        )
        await db.commit()
        await send_soon(services.dispatcher, mid)
        return see_other(f"/inbox/{cid}#m{mid}")

    @post("/{cid:int}/messages/{mid:int}/cancel", status_code=303)
    async def cancel_send(
        self, db: Db, staff: CurrentStaff, services: Svc, cid: FromPath[int], mid: FromPath[int]
    ) -> Redirect | Template:
        await self._view(db, cid)
        await self._outbound(db, cid, mid)
        await db.rollback()
        if not await services.dispatcher.cancel(mid):
            return await self._detail(
                db, staff, cid, status_code=409, error="That message already left, or is no longer pending."
            )
        await repo.audit(
            db,
            "message.cancelled",
            conversation_id=cid,
            actor=staff.actor,
            at=services.clock.now(),
            message_id=mid,
        )
        return see_other(f"/inbox/{cid}#m{mid}")

    @post("/{cid:int}/contact", status_code=303)
    async def edit_contact(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        cid: FromPath[int],
        data: Annotated[ContactForm, Form],
    ) -> Redirect | Template:
        """Staff correct the contact's name or email: the same validated tool the bot uses, so the
        record and the CRM sync see one kind of change."""
        view = await self._view(db, cid)
        args = {k: v.strip() for k, v in (("name", data.name), ("email", data.email)) if v.strip()}
        ctx = ToolContext(db, services.business, view.contact, view.conversation, services.clock.now())
        result = await run_tool(ctx, "update_contact", args)
        if not result.ok:
            await db.rollback()
            words = {"empty": "Enter a name or an email.", "invalid_args": f"Not saved: {result.message}."}
            error = words.get(result.code, result.message)
            return await self._detail(db, staff, cid, status_code=400, error=error)
        await repo.audit(
            db, "contact.edited", contact_id=view.contact.id, conversation_id=cid, actor=staff.actor,
            at=services.clock.now(), fields=sorted(args),
        )
        return see_other(f"/inbox/{cid}#contact")

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
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        cid: FromPath[int],
        data: Annotated[HandBackForm, Form],
    ) -> Redirect | Template:
        view = await self._view(db, cid)
        conv, contact = view.conversation, view.contact
        problem = await self._holder_check(db, staff, conv, admin_override=True)
        if problem or conv.status == "resolved":
            return await self._detail(db, staff, cid, status_code=409, error=problem or "Already resolved.")
        pending = view.unanswered
        if pending is not None and data.then not in ("answer", "leave"):
            # Handing back silently would leave the customer's message unanswered for good.
            return await self._detail(
                db,
                staff,
                cid,
                status_code=409,
                error="The customer's last message has no answer yet: let the bot answer it, "
                "or hand back without answering.",
            )
        conv.status, conv.assigned_to = "bot", None
        db.add(conv)
        _reset_counters(contact)
        db.add(contact)
        answer = pending is not None and data.then == "answer"
        await repo.audit(
            db,
            "conversation.handed_back",
            conversation_id=cid,
            actor=staff.actor,
            at=services.clock.now(),
            unanswered_message=pending.id if pending else None,
            then=data.then if pending else None,
        )
        await db.commit()  # the bot's turn reads the conversation in its own session
        if answer and pending is not None:
            await services.pipeline.answer_again(pending.id or 0)
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
