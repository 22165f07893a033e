"""Rules: the hard keyword rules with their hit counts, business auto-replies (admins edit),
and the business file's facts, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from guardrails.keywords import HELP_WORDS, HUMAN_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS
from store import repo
from textdesk.autoreplies import AutoReplyStore, effective, normalize_keyword, validate_reply
from web.deps import CurrentStaff, Db, Svc
from web.guards import ADMIN, ANY_STAFF, requires
from web.reporting import rule_hits
from web.routes.common import page, see_other

__all__ = ["RulesController"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
HARD_RULES = (
    ("opt_out", "Opt-out", "Stops all messages; one confirmation is sent.", OPT_OUT_WORDS),
    ("opt_in", "Opt-in", "Re-subscribes (YES only when opted out).", OPT_IN_WORDS | {"YES"}),
    ("help", "Help", "Sends the help text: brand, support contact, frequency, STOP/HELP.", HELP_WORDS),
    ("human", "Human", "Hands the conversation to a person.", HUMAN_WORDS),
)


@dataclass
class AutoReplyForm:
    keyword: str = ""
    reply: str = ""


class RulesController(Controller):
    path = "/rules"
    guards = [requires(*ANY_STAFF)]  # noqa: RUF012
    include_in_schema = False

    async def _page(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        *,
        error: str | None = None,
        form: AutoReplyForm | None = None,
        status_code: int = 200,
    ) -> Template:
        store: AutoReplyStore = request.app.state.autoreplies
        edited = await store.all()
        return page(
            "rules.html",
            staff,
            status_code=status_code,
            hard_rules=HARD_RULES,
            hits=await rule_hits(db),
            edited=edited,
            from_file=services.business.auto_replies,
            active=effective(services.business, edited),
            business=services.business,
            error=error,
            form=form or AutoReplyForm(),
        )

    @get("/", name="rules")
    async def index(
        self, request: Request[Any, Any, Any], db: Db, staff: CurrentStaff, services: Svc
    ) -> Template:
        return await self._page(request, db, staff, services)

    @post("/auto-replies", guards=[requires(*ADMIN)], status_code=303)
    async def save(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        data: Annotated[AutoReplyForm, Form],
    ) -> Redirect | Template:
        try:
            keyword = normalize_keyword(data.keyword)
            reply = validate_reply(data.reply, services.business)
        except ValueError as exc:
            return await self._page(request, db, staff, services, error=str(exc), form=data, status_code=400)
        await request.app.state.autoreplies.put(keyword, reply)
        await repo.audit(db, "autoreply.saved", actor=staff.actor, at=services.clock.now(), keyword=keyword)
        return see_other("/rules#auto-replies")

    @post("/auto-replies/delete", guards=[requires(*ADMIN)], status_code=303)
    async def delete(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        data: Annotated[AutoReplyForm, Form],
    ) -> Redirect:
        keyword = data.keyword.strip().upper()
        if await request.app.state.autoreplies.remove(keyword):
            await repo.audit(
                db, "autoreply.deleted", actor=staff.actor, at=services.clock.now(), keyword=keyword
            )
        return see_other("/rules#auto-replies")
