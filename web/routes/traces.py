"""The trace viewer: every turn's decision path and timings, labels, "save as eval case", the label
summary per prompt version, a conversation's turns, and two prompt versions replayed side by side.

Reviewers (and admins) only. Everything shown is PII-redacted (phone numbers and emails); the
saved case is redacted the same way, so saving a case reveals nothing the page did not.
"""

from __future__ import annotations

import datetime as dt
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

from agent.prompts import prompt_names
from agent.types import INTENTS
from store import repo
from store.models import Message, Trace
from textdesk.errors import EvalFileError
from textdesk.redact import redact, redact_obj
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
from web.queries import replies_for, trace_neighbours
from web.routes.common import in_range, page, see_other
from web.templating import address
from web.trace_queries import (
    NO_PROMPT,
    TraceFilter,
    conversation_header,
    conversation_traces,
    distinct_values,
    label_summary,
    recent_conversations,
    trace_rows,
)
from web.trace_replay import FIELDS, Comparison, compare_prompts
from web.trace_view import cost_label, fmt_ms, readable_calls, waterfall

__all__ = ["TracesController"]

log = logging.getLogger("textdesk.web.traces")
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
LABELS = ("correct", "wrong")


@dataclass
class LabelForm:
    label: str = ""
    comment: str = ""


@dataclass
class CompareForm:
    conversation: str = ""
    a: str = ""
    b: str = ""


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


def _day(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None  # a malformed date filters nothing rather than failing the page


def _local_midnight(day: dt.date, services: Svc) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), services.business.tz).astimezone(dt.UTC)


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
        services: Svc,
        route: Q[str | None] = None,
        intent: Q[str | None] = None,
        label: Q[str | None] = None,
        escalated: Q[str | None] = None,
        conversation: Q[int | None] = None,
        prompt: Q[str | None] = None,
        model: Q[str | None] = None,
        since: Q[str | None] = None,
        until: Q[str | None] = None,
        q: Q[str | None] = None,
    ) -> Template:
        prompts, models = await distinct_values(db, "prompt_version"), await distinct_values(db, "model")
        first, last = _day(since), _day(until)
        f = TraceFilter(
            route=route if route in ROUTES else None,
            intent=intent if intent in INTENTS else None,
            label=label if label in (*LABELS, "none") else None,
            escalated={"yes": True, "no": False}.get(escalated or ""),
            conversation=conversation if in_range(conversation) else None,
            prompt=prompt if prompt in (*prompts, NO_PROMPT) else None,
            model=model if model in models else None,
            since=_local_midnight(first, services) if first else None,
            until=_local_midnight(last + dt.timedelta(days=1), services) if last else None,
            q=(q or "").strip()[:200] or None,
        )
        rows = await trace_rows(db, f)
        return page(
            "traces/list.html",
            staff,
            rows=[(t, m, cost_label(t.model, t.tokens_in, t.tokens_out)) for t, m in rows],
            f=f,
            routes=ROUTES,
            intents=INTENTS,
            prompts=prompts,
            models=models,
            no_prompt=NO_PROMPT,
            escalated=escalated or "",
            since=first.isoformat() if first else "",
            until=last.isoformat() if last else "",
        )

    @get("/labels", name="trace_labels")
    async def labels(self, db: Db, staff: CurrentStaff) -> Template:
        return page("traces/labels.html", staff, rows=await label_summary(db), no_prompt=NO_PROMPT)

    @get("/conversations/{cid:int}", name="trace_conversation")
    async def conversation(self, db: Db, staff: CurrentStaff, cid: FromPath[int]) -> Template:
        head = await conversation_header(db, cid) if in_range(cid) else None
        if head is None:
            raise NotFoundException(f"no conversation {cid}")
        turns = [
            (t, redact(m.body if m else ""), redact(t.reply), cost_label(t.model, t.tokens_in, t.tokens_out))
            for t, m in await conversation_traces(db, cid)
        ]
        return page(
            "traces/conversation.html",
            staff,
            conv=head.conversation,
            contact=redact(address(head.contact.phone)),
            turn_count=head.turns,
            turns=turns,
        )

    async def _compare_page(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        form: CompareForm,
        *,
        result: Comparison | None = None,
        error: str | None = None,
        status_code: int = 200,
    ) -> Template:
        versions = prompt_names()
        conversations = [(c, redact(address(p.phone)), n) for c, p, n in await recent_conversations(db)]
        return page(
            "traces/compare.html",
            staff,
            status_code=status_code,
            form=form,
            versions=versions,
            conversations=conversations,
            listed={str(c.id) for c, _, _ in conversations},
            provider_name=services.provider.name,
            result=result,
            error=error,
            fields=FIELDS,
        )

    @get("/compare", name="trace_compare")
    async def compare_form(
        self, db: Db, staff: CurrentStaff, services: Svc, conversation: Q[int | None] = None
    ) -> Template:
        versions = prompt_names()
        form = CompareForm(
            conversation=str(conversation) if in_range(conversation) else "",
            a=versions[0] if versions else "",
            b=versions[-1] if versions else "",
        )
        return await self._compare_page(db, staff, services, form)

    @post("/compare", status_code=200)
    async def compare(
        self, db: Db, staff: CurrentStaff, services: Svc, data: Annotated[CompareForm, Form]
    ) -> Template:
        versions = prompt_names()
        cid = int(data.conversation) if data.conversation.isdigit() else None
        if cid is None or not in_range(cid) or data.a not in versions or data.b not in versions:
            problem = "Choose a conversation and two prompt versions."
            return await self._compare_page(db, staff, services, data, status_code=400, error=problem)
        try:
            result = await compare_prompts(
                db, cid, data.a, data.b, settings=services.settings, business=services.business,
                provider=services.provider,
            )
        except (LookupError, ValueError, EvalFileError) as exc:
            problem = redact(str(exc))
            return await self._compare_page(db, staff, services, data, status_code=400, error=problem)
        log.info("trace.compared", extra={"conversation_id": cid, "a": data.a, "b": data.b})
        return await self._compare_page(db, staff, services, data, result=result)

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
            steps=waterfall(redact_obj(trace.steps), redact_obj(trace.llm), trace.latency_ms),
            timed=any(s.get("ms") is not None for s in trace.steps),
            llm=[{**ex, "tool_calls_raw": readable_calls(ex.get("tool_calls_raw") or [])}
                 for ex in redact_obj(trace.llm)],
            fmt_ms=fmt_ms,
            cost=cost_label(trace.model, trace.tokens_in, trace.tokens_out),
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
