"""The trace viewer: every turn's decision path, labels, and "save as eval case".

Reviewers (and admins) only. Everything shown is PII-redacted (phone numbers and emails); the
saved case is redacted the same way, so saving a case reveals nothing the page did not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.params import FromQuery as Q
from litestar.response import File, Redirect, Template

from agent.types import INTENTS
from store import repo
from store.models import Message, Trace
from textdesk.redact import redact_obj
from web.cases import (
    ROUTES,
    CaseExpect,
    build_case,
    business_ref_for,
    case_id_for,
    parse_tools,
    tools_text,
    write_case,
)
from web.deps import CurrentStaff, Db, Svc
from web.guards import REVIEW, requires
from web.queries import TraceFilter, replies_for, trace_neighbours, trace_rows
from web.routes.common import in_range, page, see_other

__all__ = ["TracesController"]

log = logging.getLogger("textdesk.web.traces")
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
LABELS = ("correct", "wrong")


@dataclass
class LabelForm:
    label: str = ""
    comment: str = ""


@dataclass
class CaseForm:
    route: str = ""
    intent: str = ""
    escalated: str = ""  # "" | "true" | "false"
    tools_mode: str = "exact"  # exact | ignore
    tools: str = ""
    reply_contains: str = ""


def _case_path(services: Svc, trace: Trace) -> Path:
    return services.settings.saved_cases_dir / f"{case_id_for(trace)}.yaml"


def _validate_case(data: dict[str, Any], services: Svc) -> str | None:
    """Run the eval loader's own checks on the case, when the eval package is there."""
    try:
        from evals.loader import build_case as check_case
    except ImportError:  # the eval runner is optional for the web app
        return None
    case = {**data["defaults"], **data["cases"][0]}
    try:
        check_case(case, services.business, source=str(services.settings.business_file))
    except Exception as exc:  # EvalFileError names the field
        return str(exc)
    return None


class TracesController(Controller):
    path = "/traces"
    guards = [requires(*REVIEW)]  # noqa: RUF012
    include_in_schema = False

    @get("/", name="traces")
    async def index(
        self,
        db: Db,
        staff: CurrentStaff,
        route: Q[str | None] = None,
        intent: Q[str | None] = None,
        label: Q[str | None] = None,
        escalated: Q[str | None] = None,
        conversation: Q[int | None] = None,
    ) -> Template:
        f = TraceFilter(
            route=route if route in ROUTES else None,
            intent=intent if intent in INTENTS else None,
            label=label if label in (*LABELS, "none") else None,
            escalated={"yes": True, "no": False}.get(escalated or ""),
            conversation=conversation if in_range(conversation) else None,
        )
        rows = await trace_rows(db, f)
        return page(
            "traces/list.html",
            staff,
            rows=rows,
            f=f,
            routes=ROUTES,
            intents=INTENTS,
            escalated=escalated or "",
        )

    async def _trace(self, db: Db, tid: FromPath[int]) -> Trace:
        trace = await db.get(Trace, tid) if in_range(tid) else None
        if trace is None:
            raise NotFoundException(f"no trace {tid}")
        return trace

    async def _detail(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        tid: FromPath[int],
        *,
        case_error: str | None = None,
        form: CaseForm | None = None,
        status_code: int = 200,
    ) -> Template:
        trace = await self._trace(db, tid)
        inbound = await db.get(Message, trace.message_id) if trace.message_id else None
        replies = await replies_for(db, trace.message_id)
        prev_id, next_id = await trace_neighbours(db, trace)
        form = form or CaseForm(
            route=trace.route,
            intent=trace.intent or "",
            escalated="true" if trace.escalated else "false",
            tools=tools_text(trace.tools),
        )
        saved = _case_path(services, trace)
        return page(
            "traces/detail.html",
            staff,
            status_code=status_code,
            trace=trace,
            inbound=redact_obj(inbound.body) if inbound else None,
            channel=inbound.channel if inbound else None,
            replies=[(m.id, redact_obj(m.body), m.status, m.segments, m.kind) for m in replies],
            steps=redact_obj(trace.steps),
            llm=redact_obj(trace.llm),
            tools=redact_obj(trace.tools),
            slots=redact_obj(trace.slots),
            reply=redact_obj(trace.reply or ""),
            prev_id=prev_id,
            next_id=next_id,
            form=form,
            case_error=case_error,
            saved=saved.name if saved.is_file() else None,
            routes=ROUTES,
            intents=INTENTS,
        )

    @get("/{tid:int}", name="trace")
    async def detail(self, db: Db, staff: CurrentStaff, services: Svc, tid: FromPath[int]) -> Template:
        return await self._detail(db, staff, services, tid)

    @post("/{tid:int}/label", status_code=303)
    async def label(
        self, db: Db, staff: CurrentStaff, services: Svc, tid: FromPath[int], data: Annotated[LabelForm, Form]
    ) -> Redirect | Template:
        trace = await self._trace(db, tid)
        if data.label not in LABELS or len(data.comment) > 2000:
            return await self._detail(
                db,
                staff,
                services,
                tid,
                status_code=400,
                case_error="Choose correct or wrong (comment up to 2000 characters).",
            )
        trace.label, trace.label_comment = data.label, data.comment.strip() or None
        trace.labelled_by = staff.email
        db.add(trace)
        await repo.audit(
            db,
            "trace.labelled",
            conversation_id=trace.conversation_id,
            actor=staff.actor,
            at=services.clock.now(),
            trace_id=tid,
            label=data.label,
        )
        return see_other(f"/traces/{tid}#label")

    @post("/{tid:int}/case", status_code=303)
    async def save_case(
        self, db: Db, staff: CurrentStaff, services: Svc, tid: FromPath[int], data: Annotated[CaseForm, Form]
    ) -> Redirect | Template:
        trace = await self._trace(db, tid)
        try:
            expect = CaseExpect(
                route=data.route if data.route in ROUTES else None,
                intent=data.intent if data.intent in INTENTS else None,
                escalated={"true": True, "false": False}.get(data.escalated),
                tools=parse_tools(data.tools) if data.tools_mode == "exact" else None,
                reply_contains=[line.strip() for line in data.reply_contains.splitlines() if line.strip()],
            )
            saved_dir = services.settings.saved_cases_dir
            ref = business_ref_for(services.settings.business_file, saved_dir)
            case = await build_case(
                db,
                trace,
                services.business,
                ref,
                expect,
                reviewer=staff.email,
                comment=trace.label_comment or "",
            )
        except ValueError as exc:
            return await self._detail(
                db, staff, services, tid, case_error=str(exc), form=data, status_code=400
            )
        problem = _validate_case(case, services)
        if problem:
            return await self._detail(
                db, staff, services, tid, case_error=problem, form=data, status_code=400
            )
        path = write_case(saved_dir, case)
        await repo.audit(
            db,
            "trace.case_saved",
            conversation_id=trace.conversation_id,
            actor=staff.actor,
            at=services.clock.now(),
            trace_id=tid,
            file=str(path),
        )
        log.info("trace.case_saved", extra={"trace_id": tid, "file": str(path)})
        return see_other(f"/traces/{tid}#case")

    @get("/{tid:int}/case.yaml")
    async def download_case(self, db: Db, services: Svc, tid: FromPath[int]) -> File:
        trace = await self._trace(db, tid)
        path = _case_path(services, trace)
        if not path.is_file():
            raise NotFoundException("no case saved for this trace yet")
        return File(
            path=path,
            filename=path.name,
            media_type="application/yaml",
            content_disposition_type="attachment",
        )
