"""Canned replies: admins keep the list (``/admin/canned``); agents pick one on a conversation page
and it is inserted into the reply box with its ``{variables}`` filled for that conversation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store import repo
from store.models import CannedReply, Contact, Conversation
from web.auth import Staff
from web.canned import VARIABLES, canned_replies, fill, unknown_variables, values_for
from web.deps import CurrentStaff, Db, Svc
from web.guards import ADMIN, INBOX, requires
from web.routes.common import in_range, page, see_other
from web.routes.inbox import MAX_REPLY

__all__ = ["CannedAdminController", "CannedController"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
MAX_TITLE = 80


@dataclass
class CannedForm:
    title: str = ""
    body: str = ""


@dataclass
class InsertForm:
    canned: str = ""  # the canned reply's id
    body: str = ""  # what the reply box holds now


async def _reply(db: AsyncSession, rid: int) -> CannedReply:
    reply = await db.get(CannedReply, rid) if in_range(rid) else None
    if reply is None:
        raise NotFoundException(f"no canned reply {rid}")
    return reply


def _problem(form: CannedForm) -> str | None:
    if not form.title or len(form.title) > MAX_TITLE:
        return f"A title is 1-{MAX_TITLE} characters."
    if not form.body or len(form.body) > MAX_REPLY:
        return f"A reply is 1-{MAX_REPLY} characters."
    unknown = unknown_variables(form.body)
    if unknown:
        names = ", ".join(f"{{{n}}}" for n in unknown)
        return f"Unknown variable {names}: use one of {', '.join(f'{{{n}}}' for n in VARIABLES)}."
    return None


class CannedAdminController(Controller):
    path = "/admin/canned"
    guards = [requires(*ADMIN)]  # noqa: RUF012 (Litestar reads class attributes)
    include_in_schema = False

    async def _page(
        self,
        db: Db,
        staff: Staff,
        *,
        error: str | None = None,
        editing: int | None = None,
        form: CannedForm | None = None,
        status_code: int = 200,
    ) -> Template:
        """The list; after a refused change, ``form`` refills the form it came from (``editing`` is
        the reply's id, None for the new-reply form)."""
        return page(
            "admin/canned.html",
            staff,
            status_code=status_code,
            replies=await canned_replies(db),
            variables=VARIABLES,
            error=error,
            editing=editing,
            form=form or CannedForm(),
            max_title=MAX_TITLE,
            max_reply=MAX_REPLY,
        )

    async def _title_taken(self, db: Db, title: str, rid: int | None) -> bool:
        stmt = select(CannedReply.id).where(CannedReply.title == title)
        if rid is not None:
            stmt = stmt.where(col(CannedReply.id) != rid)
        return (await db.exec(stmt)).first() is not None

    async def _refused(self, db: Db, staff: Staff, form: CannedForm, rid: int | None) -> Template | None:
        problem = _problem(form)
        code = 400
        if problem is None and await self._title_taken(db, form.title, rid):
            problem, code = "Another canned reply has this title.", 409
        if problem is None:
            return None
        await db.rollback()
        return await self._page(db, staff, error=problem, editing=rid, form=form, status_code=code)

    @get("/", name="canned")
    async def index(self, db: Db, staff: CurrentStaff) -> Template:
        return await self._page(db, staff)

    @post("/", status_code=303)
    async def create(
        self, db: Db, staff: CurrentStaff, services: Svc, data: Annotated[CannedForm, Form]
    ) -> Redirect | Template:
        form = CannedForm(data.title.strip(), data.body.strip())
        refused = await self._refused(db, staff, form, None)
        if refused is not None:
            return refused
        now = services.clock.now()
        reply = CannedReply(
            title=form.title, body=form.body, created_by=staff.email, created_at=now, updated_at=now
        )
        db.add(reply)
        await db.flush()
        await repo.audit(db, "canned_reply.created", actor=staff.actor, at=now, canned_reply_id=reply.id)
        return see_other("/admin/canned")

    @post("/{rid:int}", status_code=303)
    async def update(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        rid: FromPath[int],
        data: Annotated[CannedForm, Form],
    ) -> Redirect | Template:
        reply = await _reply(db, rid)
        form = CannedForm(data.title.strip(), data.body.strip())
        refused = await self._refused(db, staff, form, rid)
        if refused is not None:
            return refused
        now = services.clock.now()
        reply.title, reply.body, reply.updated_at = form.title, form.body, now
        db.add(reply)
        await repo.audit(db, "canned_reply.updated", actor=staff.actor, at=now, canned_reply_id=rid)
        return see_other(f"/admin/canned#canned-{rid}")

    @post("/{rid:int}/delete", status_code=303)
    async def delete(self, db: Db, staff: CurrentStaff, services: Svc, rid: FromPath[int]) -> Redirect:
        await db.delete(await _reply(db, rid))
        now = services.clock.now()
        await repo.audit(db, "canned_reply.deleted", actor=staff.actor, at=now, canned_reply_id=rid)
        return see_other("/admin/canned")


class CannedController(Controller):
    """The picker on a conversation page and the insertion into its reply box (htmx fragments)."""

    path = "/inbox/{cid:int}/canned"
    guards = [requires(*INBOX)]  # noqa: RUF012
    include_in_schema = False

    async def _conversation(self, db: Db, cid: int) -> tuple[Conversation, Contact]:
        conv = await db.get(Conversation, cid) if in_range(cid) else None
        contact = await db.get(Contact, conv.contact_id) if conv is not None else None
        if conv is None or contact is None:
            raise NotFoundException(f"no conversation {cid}")
        return conv, contact

    @get("/")
    async def picker(self, db: Db, staff: CurrentStaff, cid: FromPath[int]) -> Template:
        await self._conversation(db, cid)
        return page("inbox/_canned.html", staff, replies=await canned_replies(db), cid=cid)

    @post("/", status_code=200)
    async def insert(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        cid: FromPath[int],
        data: Annotated[InsertForm, Form],
    ) -> Template:
        """The reply box again, holding the draft followed by the canned reply filled in."""
        conv, contact = await self._conversation(db, cid)
        reply = await _reply(db, int(data.canned)) if data.canned.isdigit() else None
        if reply is None:
            raise NotFoundException("no such canned reply")
        values = await values_for(db, contact, staff, services.business, services.clock.now())
        filled = fill(reply.body, values)
        draft = data.body if data.body.strip() else ""
        text = draft + ("" if not draft or draft[-1].isspace() else " ") + filled.text
        return page(
            "inbox/_reply_box.html",
            staff,
            conv=conv,
            draft=text,
            max_reply=MAX_REPLY,
            focus=True,
            missing=filled.missing,
        )
