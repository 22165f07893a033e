"""The message pipeline, in docs/architecture.md section 1 order. Order is a safety property.

``Pipeline.handle`` reads top to bottom as the design: normalize -> persist (idempotent) ->
serialize per contact -> rate limit -> hard rules -> handoff -> auto-replies -> injection screen
-> understand -> policy -> tools -> output guard -> persist outbound -> trace. Each step appends a
StepDecision to the turn's trace; short-circuits end the turn at the step that decided.
Every channel (SMS providers, WhatsApp, web chat, console) and the eval runner all call this one method.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypedDict, TypeVar, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from agent.policy import Decision, PolicyContext, decide
from agent.providers.base import Provider, UnderstandRequest
from agent.replies import R
from agent.state import DialogueState
from agent.types import BookingView, Exchange, Understanding
from guardrails.injection import InjectionScreen
from guardrails.keywords import match_rule
from guardrails.output import OutputGuard
from integrations.calendar.base import CalendarAdapter, merge_busy
from integrations.crm.events import booking_event
from integrations.crm.sink import EventSink, NullSink
from integrations.errors import IntegrationError
from store import repo
from store.models import Contact, Conversation, Message, Trace
from store.outbox import Kind, queue_outbound
from store.turn_lock import contact_turn
from textdesk import privacy, tasks
from textdesk.autoreplies import AutoReplyStore, effective, match_auto_reply
from textdesk.business import Business
from textdesk.clock import Clock
from textdesk.metrics import Metrics
from textdesk.phone import InvalidPhone, normalize_address
from textdesk.ratelimit import SlidingWindow
from textdesk.redact import redact
from textdesk.settings import Settings
from tools.actions import ToolContext, ToolResult, run_tool
from tools.availability import Busy

__all__ = ["Inbound", "Pipeline", "StepDecision", "TurnResult"]

log = logging.getLogger("textdesk.pipeline")
_LOCAL = "local"  # the provider of a message no transport carried (its id is still an idempotency key)


@dataclass(frozen=True)
class Inbound:
    """A message as a channel hands it over, already authenticated by the channel."""

    sender: str  # E.164, or a visitor address for a web chat
    body: str
    provider_message_id: str | None = None  # the idempotency key, unique per provider
    channel: str = "sms"  # sms | whatsapp | webchat | console
    to: str | None = None
    # The transport that carried it; replies go back through it. None (a turn no transport carried:
    # evals, tests, the console) leaves the conversation's route alone.
    provider: str | None = None


@dataclass(frozen=True)
class StepDecision:
    step: str
    outcome: str
    reason: str = ""
    score: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Timing for the trace viewer's waterfall: start offset from the turn's start and duration, in ms
    # (time.perf_counter). None on steps outside a turn (a duplicate, an invalid sender).
    at_ms: float | None = None
    ms: float | None = None


@dataclass(frozen=True)
class OutboundView:
    id: int
    body: str
    segments: int
    status: str
    delivery: str | None = None


@dataclass
class TurnResult:
    route: str  # rule | handoff | blocked | limited | agent | invalid
    rule: str | None = None
    intent: str | None = None
    confidence: float | None = None
    slots: dict[str, str] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    escalated: bool = False
    escalation_reason: str | None = None
    consent: str | None = None
    replies: list[OutboundView] = field(default_factory=list)
    llm_calls: int = 0
    tokens: int = 0
    ms: float = 0.0
    steps: list[StepDecision] = field(default_factory=list)
    message_id: int | None = None
    contact_id: int | None = None
    conversation_id: int | None = None
    duplicate: bool = False

    @property
    def reply(self) -> str | None:
        sent = [r.body for r in self.replies if r.status != "blocked"]
        return "\n".join(sent) if sent else None

    @property
    def segments(self) -> int:
        return sum(r.segments for r in self.replies if r.status != "blocked")


_T = TypeVar("_T")


class _Span(TypedDict):
    at_ms: float
    ms: float


BookingEventKind = Literal["booking.created", "booking.rescheduled", "booking.cancelled"]
EscalationHook = Callable[[int, str, str], Awaitable[None]]  # conversation id, reason, summary


@dataclass
class _Turn:
    """Mutable working set of one turn (kept out of the public result)."""

    session: AsyncSession
    contact: Contact
    conversation: Conversation
    inbound: Message
    text: str
    now: dt.datetime
    state: DialogueState
    result: TurnResult
    understanding: Understanding | None = None
    replies: list[tuple[str, Kind]] = field(default_factory=list)
    crm: list[tuple[str, Any]] = field(default_factory=list)  # (event kind, booking) for CRM sync
    started: float = 0.0  # time.perf_counter() at the turn's start: step offsets count from here

    def span(self, began: float) -> _Span:
        """``at_ms`` and ``ms`` of something that began at ``began`` (perf_counter) and ends now."""
        now = time.perf_counter()
        return _Span(at_ms=round((began - self.started) * 1000, 2), ms=round((now - began) * 1000, 2))

    async def timed(self, step: Awaitable[_T]) -> _T:
        """Await one pipeline step; the decisions it records get its span, unless an inner step
        (a tool inside the rules) already timed its own."""
        began, first = time.perf_counter(), len(self.result.steps)
        try:
            return await step
        finally:
            span, steps = self.span(began), self.result.steps
            for i in range(first, len(steps)):
                if steps[i].ms is None:
                    steps[i] = replace(steps[i], **span)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        business: Business,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        provider: Provider,
        screen: InjectionScreen | None = None,
    ) -> None:
        self.settings, self.business, self.sessions, self.clock = settings, business, sessions, clock
        self.provider = provider
        self.screen = screen or InjectionScreen(threshold=settings.injection_threshold)
        self.output_guard = OutputGuard(business)
        self.per_minute = SlidingWindow(settings.rate_limit_per_minute, dt.timedelta(minutes=1))
        self.per_hour = SlidingWindow(settings.rate_limit_per_hour, dt.timedelta(hours=1))
        self.global_minute = SlidingWindow(settings.global_rate_limit_per_minute, dt.timedelta(minutes=1))
        self._limited_notice: dict[str, dt.datetime] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._turn_slots = asyncio.Semaphore(settings.max_concurrent_turns)
        self._lease_s = max(60.0, 3 * settings.turn_budget_s)  # a crashed worker's lease outlives no turn
        self._shared = settings.workers > 1  # other processes answer this database's contacts too
        # Evals set this: a provider that raises fails the case loudly instead of degrading.
        self.strict_provider = False
        self._suppression_key = privacy.suppression_key(settings.secret_key.get_secret_value())
        self._offline_provider: Provider | None = None
        self.calendar: CalendarAdapter | None = None  # set when an external calendar is configured
        self.events: EventSink = NullSink()
        self.auto_replies: AutoReplyStore | None = None  # admin-edited keyword replies
        self.payments: Any = None  # StripePayments when deposits are configured
        self.metrics = Metrics()
        self.escalation_hooks: list[EscalationHook] = []
        self.message_hooks: list[Callable[[int], Awaitable[None]]] = []  # conversation id changed
        # Sends queued replies over REST for turns answered outside their own webhook.
        self.deliver_later: Callable[[list[int]], Awaitable[None]] | None = None

    # -- entry point ----------------------------------------------------------------------------

    async def handle(self, msg: Inbound) -> TurnResult:
        started = time.perf_counter()
        try:
            phone = normalize_address(msg.sender)
        except InvalidPhone as exc:
            log.warning("pipeline.invalid_sender", extra={"sender": redact(msg.sender), "error": str(exc)})
            return TurnResult(route="invalid", steps=[StepDecision("normalize", "invalid_sender", str(exc))])
        inbound = await self._store(phone, msg)  # step 2, before anything else can fail
        async with self._contact_lock(phone):  # step 3: one turn at a time per contact, in order
            result = await self._process_in_order(inbound)
        result.ms = round((time.perf_counter() - started) * 1000, 2)
        self.metrics.turn_latency.observe(result.ms / 1000)
        return result

    async def recover(self, limit: int = 100, older_than: dt.timedelta = dt.timedelta(0)) -> int:
        """Process inbound messages a crashed worker stored but never answered (replies by REST).

        Run at start-up and periodically (``older_than`` keeps it off turns still in flight)."""
        from sqlmodel import col, select

        cutoff = self.clock.now() - older_than
        async with self.sessions() as session:
            rows = list(
                await session.exec(
                    select(Message)
                    .where(
                        Message.direction == "in",
                        col(Message.processed_at).is_(None),
                        col(Message.created_at) <= cutoff,
                    )
                    .order_by(col(Message.id))
                    .limit(limit)
                )
            )
        done = 0
        for m in rows:
            async with self.sessions() as session:
                contact = await session.get(Contact, m.contact_id)
            if contact is None:
                continue
            async with self._contact_lock(contact.phone):
                r = await self._process_in_order(m)
            if self.deliver_later is not None and not r.duplicate:  # its webhook is long gone
                await self.deliver_later([x.id for x in r.replies if x.status == "queued"])
            done += 1
        return done

    async def answer_again(self, message_id: int) -> TurnResult | None:
        """A customer message that arrived while a person held the conversation, answered by the
        bot now that it was handed back. Its first turn only recorded it (the bot stays silent
        while a person holds a conversation); this is a new turn over the same stored message,
        with its own trace, and its replies leave by REST. None when there is nothing to answer."""
        from sqlalchemy import update
        from sqlmodel import col

        async with self.sessions() as session:
            inbound = await session.get(Message, message_id)
            contact = await session.get(Contact, inbound.contact_id) if inbound is not None else None
        if inbound is None or contact is None or inbound.direction != "in":
            return None
        async with self._contact_lock(contact.phone):
            async with self.sessions() as session:
                reopened = await session.exec(
                    update(Message)
                    .where(col(Message.id) == message_id, col(Message.processed_at).is_not(None))
                    .values(processed_at=None)
                )
                await session.commit()
            if not reopened.rowcount:
                return None
            result = await self._process(message_id, check_earlier=False)
        assert isinstance(result, TurnResult)
        if self.deliver_later is not None:
            await self.deliver_later([x.id for x in result.replies if x.status == "queued"])
        return result

    async def _store(self, phone: str, msg: Inbound) -> Message:
        body = (msg.body or "")[: self.settings.max_body_chars]
        for _ in range(3):  # a concurrent writer may create the same contact or message first
            async with self.sessions() as session:
                try:
                    if msg.provider_message_id:
                        existing = await repo.find_inbound(
                            session, msg.provider or _LOCAL, msg.provider_message_id
                        )
                        if existing is not None:
                            return existing
                    now = self.clock.now()
                    # A number that asked to be forgotten while opted out stays opted out.
                    contact = await privacy.get_or_create_contact(session, phone, key=self._suppression_key)
                    conversation = await repo.open_conversation(
                        session, contact, now, msg.channel, msg.provider, msg.to
                    )
                    inbound = Message(
                        conversation_id=conversation.id or 0,
                        contact_id=contact.id or 0,
                        direction="in",
                        body=body,
                        channel=msg.channel,
                        provider=msg.provider or _LOCAL,
                        provider_message_id=msg.provider_message_id,
                        author="customer",
                        created_at=now,
                        segments=0,
                    )
                    session.add(inbound)
                    await session.commit()
                    return inbound
                except IntegrityError:
                    await session.rollback()
        raise RuntimeError("could not store the inbound message")

    @asynccontextmanager
    async def _contact_lock(self, phone: str) -> AsyncIterator[None]:
        """In-process lock, then the database's per-contact lock so several workers serialize too.

        On PostgreSQL that lock holds a pooled connection for the whole turn and the turn needs
        another, so concurrent turns per process are capped below the pool size (a semaphore taken
        after the in-process lock, so waiting on one contact never holds a slot)."""
        lock = self._locks.get(phone)
        if lock is None:
            lock = self._locks[phone] = asyncio.Lock()
        async with lock, self._turn_slots, contact_turn(self.sessions, phone, self._lease_s, self._shared):
            yield

    async def _process_in_order(self, inbound: Message) -> TurnResult:
        """Answer every earlier unanswered message of this contact first (arrival order across
        workers, and recovery after a crash), then this one. Earlier ones reply over REST."""
        while True:
            result = await self._process(inbound.id or 0)
            if isinstance(result, TurnResult):
                return result
            for mid in result:  # found in the same session, before touching this turn
                r = await self._process(mid, check_earlier=False)
                assert isinstance(r, TurnResult)
                if self.deliver_later is not None and not r.duplicate:
                    await self.deliver_later([x.id for x in r.replies if x.status == "queued"])

    async def _process(self, message_id: int, check_earlier: bool = True) -> TurnResult | list[int]:
        """One turn. With ``check_earlier``, returns the ids of this contact's earlier unanswered
        messages instead when there are any, so the caller answers those first."""
        from sqlmodel import col, select

        started = time.perf_counter()
        async with self.sessions() as session:
            inbound = await session.get(Message, message_id)
            assert inbound is not None
            if inbound.processed_at is not None:  # a retry, or answered by another worker
                return await self._replay(session, inbound)
            if check_earlier:
                earlier = list(
                    await session.exec(
                        select(Message.id)
                        .where(
                            Message.contact_id == inbound.contact_id,
                            Message.direction == "in",
                            col(Message.processed_at).is_(None),
                            col(Message.id) < inbound.id,
                        )
                        .order_by(col(Message.id))
                    )
                )
                if earlier:
                    return [int(mid or 0) for mid in earlier]
            contact = await session.get(Contact, inbound.contact_id)
            conversation = await session.get(Conversation, inbound.conversation_id)
            assert contact is not None and conversation is not None
            now = self.clock.now()
            turn = _Turn(
                session,
                contact,
                conversation,
                inbound,
                inbound.body,
                now,
                DialogueState.load(contact.state),
                TurnResult(route="agent"),
                started=started,
            )
            turn.result.message_id, turn.result.contact_id = inbound.id, contact.id
            turn.result.conversation_id = conversation.id
            await self._run_steps(turn)
            await self._finish(turn, started)
            await session.commit()
        await self._after_commit(turn)
        return turn.result

    # -- steps, in order --------------------------------------------------------------------------

    async def _run_steps(self, t: _Turn) -> None:
        if not await t.timed(self._rate_limit(t)):  # 4
            return
        if await t.timed(self._rules(t)):  # 5
            return
        if await t.timed(self._handoff(t)):  # 6
            return
        if await t.timed(self._auto_reply(t)):  # 6b: the business's own keywords (HOURS), still no model
            return
        if await t.timed(self._screen(t)):  # 7
            return
        await self._agent(t)  # 8, 9, 10

    async def _rate_limit(self, t: _Turn) -> bool:
        key = t.contact.phone
        ok = (
            self.per_minute.hit(key, t.now)
            & self.per_hour.hit(key, t.now)
            & self.global_minute.hit("*", t.now)
        )
        if ok:
            t.result.steps.append(StepDecision("rate_limit", "pass"))
            return True
        hit = match_rule(t.text, t.contact.consent == "opted_out")
        if hit is not None and hit.rule == "opt_out":  # an opt-out is honoured even when limited
            t.result.steps.append(StepDecision("rate_limit", "bypass", "opt_out"))
            return True
        t.result.route = "limited"
        last = self._limited_notice.get(key)
        if last is None or t.now - last >= dt.timedelta(hours=1):
            self._limited_notice[key] = t.now
            t.replies.append((R.rate_limited(), "reply"))
            t.result.steps.append(StepDecision("rate_limit", "limited", "notice"))
        else:
            t.result.steps.append(StepDecision("rate_limit", "limited", "silent"))
        return False

    async def _rules(self, t: _Turn) -> bool:
        c, b = t.contact, self.business
        hit = match_rule(t.text, opted_out=c.consent == "opted_out")
        if hit is None:
            if c.consent == "opted_out":  # consent gate: nothing after step 5 for an opted-out contact
                t.result.route = "rule"
                t.result.steps.append(StepDecision("rules", "consent_gate", "opted_out"))
                return True
            t.result.steps.append(StepDecision("rules", "pass"))
            return False
        t.result.route, t.result.rule = "rule", hit.rule
        t.result.steps.append(StepDecision("rules", hit.rule, f"{hit.how}:{hit.matched}"))
        if hit.rule == "opt_out":
            first = await repo.set_consent(t.session, c, "opted_out", hit.how, detail=t.text, at=t.now)
            if first:  # exactly one confirmation, even if they text STOP again
                t.replies.append((R.opt_out(b), "opt_out_confirmation"))
            t.state.clear_task()
        elif hit.rule == "opt_in":
            await repo.set_consent(t.session, c, "opted_in", "keyword", detail=t.text, at=t.now)
            t.replies.append((R.opt_in(b), "reply"))
        elif hit.rule == "help":
            t.replies.append((R.help(b), "help"))
        elif hit.rule == "human" and t.conversation.status in repo.HANDOFF_STATUSES:
            # Already with (or waiting for) a person: no second hand-off, no un-claiming the agent.
            t.result.steps.append(StepDecision("rules", "human", "already_in_handoff"))
        elif hit.rule == "human":
            await self._tool(
                t,
                "escalate",
                {"reason": "requested", "summary": f'Customer texted "{t.text[:60]}" asking for a person.'},
            )
            t.state.clear_task()
            t.replies.append((R.human(), "reply"))
        return True

    async def _handoff(self, t: _Turn) -> bool:
        if t.conversation.status in repo.HANDOFF_STATUSES:
            t.result.route = "handoff"
            t.result.steps.append(StepDecision("handoff", "silent", t.conversation.status))
            return True
        t.result.steps.append(StepDecision("handoff", "pass"))
        return False

    async def _auto_reply(self, t: _Turn) -> bool:
        if " " in t.text.strip() or not t.text.strip():
            return False  # keywords are single words; skip the lookup for everything else
        edited = await self.auto_replies.all() if self.auto_replies is not None else {}
        reply = match_auto_reply(t.text, effective(self.business, edited))
        if reply is None:
            return False
        t.result.route = "rule"
        keyword = re.sub(r"^[\W_]+|[\W_]+$", "", t.text.strip()).upper()
        t.result.steps.append(StepDecision("auto_reply", "reply", keyword))
        t.replies.append((reply, "reply"))
        return True

    async def _screen(self, t: _Turn) -> bool:
        verdict = self.screen.screen(t.text)
        t.result.steps.append(
            StepDecision(
                "injection",
                "blocked" if verdict.triggered else "pass",
                verdict.reason,
                verdict.score,
                dict(verdict.details),
            )
        )
        if not verdict.triggered:
            return False
        t.result.route = "blocked"
        t.state.blocked += 1
        if t.state.blocked >= self.settings.blocked_escalate_after:
            await self._tool(
                t,
                "escalate",
                {
                    "reason": "other",
                    "summary": f"{t.state.blocked} messages blocked by the injection screen.",
                },
            )
            t.replies.append((R.escalated(), "reply"))
        else:
            t.replies.append((R.blocked(self.business), "reply"))
        return True

    async def _agent(self, t: _Turn) -> None:
        local = t.now
        bookings = await self._bookings(t)
        history = await self._history(t)
        req = UnderstandRequest(
            text=t.text,
            business=self.business,
            now=local,
            state=t.state,
            history=history,
            bookings=[f"[{bk.id}] {bk.line()}" for bk in bookings],
            booked=tuple(bookings),
        )
        provider = await self._provider_within_budget(t)
        # Nothing is written before this point; ending the read transaction means a slow model
        # call does not hold a database lock (SQLite takes its write lock at BEGIN).
        await t.session.commit()
        began = time.perf_counter()
        try:
            u = await provider.understand(req)
        except Exception as exc:  # providers degrade on their own; this is the last line of defence
            if self.strict_provider:
                raise
            log.exception("pipeline.provider_failed")
            u = Understanding(
                provider=getattr(provider, "name", "unknown"), error=f"{type(exc).__name__}: {exc}"
            )
        t.understanding = u
        t.result.llm_calls, t.result.tokens = u.llm_calls, u.tokens_in + u.tokens_out
        t.result.steps.append(
            StepDecision(
                "understand",
                u.intent or "none",
                u.provider,
                u.confidence,
                {
                    "slots": u.slots.given(),
                    "prompt": u.prompt_version,
                    "fallback": u.fallback,
                    "error": u.error,
                    "evidence": u.evidence,
                },
                **t.span(began),
            )
        )
        busy = await self._busy(t)

        async def run(name: str, args: dict[str, Any]) -> ToolResult:
            return await self._tool(t, name, args)

        async def refresh() -> list[Busy]:
            return await self._busy(t)

        ctx = PolicyContext(
            self.business, t.now, bookings, busy, run, self.settings.clarify_threshold, t.text, refresh
        )
        began = time.perf_counter()  # the policy step's span includes the tools it runs
        decision: Decision = await decide(u, t.state, ctx)
        t.result.intent, t.result.slots = decision.intent, decision.slots
        t.result.confidence = u.confidence
        t.result.steps.append(
            StepDecision(
                "policy",
                decision.reason.rsplit(".", 1)[-1],
                decision.reason,
                data={"pending": t.state.pending, **decision.data},
                **t.span(began),
            )
        )
        if decision.reply:
            t.replies.append((decision.reply, "reply"))
        if decision.confirmed_booking:
            from store.models import Booking

            booking = await t.session.get(Booking, decision.confirmed_booking)
            if booking is not None and booking.contact_id == t.contact.id:
                booking.confirmed_at = t.now
                t.session.add(booking)
                await repo.audit(
                    t.session, "booking.confirmed", contact_id=t.contact.id, at=t.now, booking_id=booking.id
                )

    # -- helpers ---------------------------------------------------------------------------------

    async def _busy(self, t: _Turn) -> list[Busy]:
        """Busy times from the store, merged with the external calendar when one is configured."""
        busy = await repo.busy_between(
            t.session, t.now - dt.timedelta(days=1), t.now + dt.timedelta(days=120)
        )
        if self.calendar is not None:  # availability always comes from the configured calendar
            began = time.perf_counter()
            try:
                external = await self.calendar.busy(t.now, t.now + dt.timedelta(days=60))
                busy = merge_busy(busy, external)
                t.result.steps.append(StepDecision("calendar", "pass", self.calendar.name, **t.span(began)))
            except IntegrationError as exc:
                t.result.steps.append(
                    StepDecision("calendar", "unavailable", str(exc)[:200], **t.span(began))
                )
        return busy

    async def _provider_within_budget(self, t: _Turn) -> Provider:
        """The cost guard: past the daily token budget, fall back to the offline provider."""
        if self.provider.name == "offline":
            return self.provider
        began = time.perf_counter()
        from sqlalchemy import func
        from sqlmodel import select

        s = self.settings
        day_start = t.now.astimezone(self.business.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        used = func.coalesce(func.sum(Trace.tokens_in + Trace.tokens_out), 0)
        mine = (
            await t.session.exec(
                select(used).where(Trace.contact_id == t.contact.id, Trace.created_at >= day_start)
            )
        ).one()
        total = (await t.session.exec(select(used).where(Trace.created_at >= day_start))).one()
        over = (s.llm_daily_tokens_per_contact and mine >= s.llm_daily_tokens_per_contact) or (
            s.llm_daily_tokens_total and total >= s.llm_daily_tokens_total
        )
        t.result.steps.append(
            StepDecision(
                "cost_guard",
                "over_budget" if over else "pass",
                data={"contact_tokens": int(mine), "total_tokens": int(total)},
                **t.span(began),
            )
        )
        if not over:
            return self.provider
        return getattr(self.provider, "offline", None) or self._offline()

    def _offline(self) -> Provider:
        from agent.providers.offline import OfflineProvider

        if self._offline_provider is None:
            self._offline_provider = OfflineProvider()
        return self._offline_provider

    async def _tool(self, t: _Turn, name: str, args: dict[str, Any]) -> ToolResult:
        ctx = ToolContext(
            t.session,
            self.business,
            t.contact,
            t.conversation,
            t.now,
            reminder_offsets_h=list(self.settings.reminder_offsets_h),
            calendar=self.calendar,
            payments=self.payments,
        )
        began = time.perf_counter()
        result = await run_tool(ctx, name, args)
        if result.ok:
            t.crm.extend(ctx.events)
        t.result.steps.append(
            StepDecision("tool", result.code, name, data={"args": result.args}, **t.span(began))
        )
        if result.ok:
            t.result.tools.append(result.as_call())
            if name == "escalate":
                t.result.escalated = True
                t.result.escalation_reason = str(result.args.get("reason"))
        return result

    async def _bookings(self, t: _Turn) -> list[BookingView]:
        tz = self.business.tz
        views = []
        for bk in await repo.active_bookings(t.session, t.contact.id or 0, t.now):
            local = bk.start.astimezone(tz)
            views.append(
                BookingView(id=bk.id, service=bk.service, provider=bk.provider, date=local.date().isoformat(),
                            time=local.strftime("%H:%M"))
            )
        return views

    async def _history(self, t: _Turn, limit: int = 6) -> list[tuple[str, str]]:
        from sqlmodel import col, select

        rows = await t.session.exec(
            select(Message)
            .where(Message.conversation_id == t.conversation.id, Message.id != t.inbound.id)
            .order_by(col(Message.id).desc())
            .limit(limit)
        )
        return [("user" if m.direction == "in" else "assistant", m.body) for m in reversed(list(rows))]

    async def _finish(self, t: _Turn, started: float) -> None:
        """Steps 11-13: output guard, persist outbound, trace, state."""
        r = t.result
        own = frozenset(
            x.lower()
            for x in (t.contact.email, t.state.slots.get("email"), *re.findall(r"\S+@\S+", t.text))
            if x
        ) | {re.sub(r"\D", "", t.contact.phone)}
        for body_text, kind in t.replies:
            began = time.perf_counter()
            verdict = self.output_guard.check(body_text, own)
            body = verdict.replacement if verdict.triggered and verdict.replacement else body_text
            sending = time.perf_counter()
            msg = queue_outbound(
                t.session, t.contact, t.conversation, body, kind=kind, in_reply_to=t.inbound.id, now=t.now
            )
            await t.session.flush()
            # The step's span covers the send: the reply written to the outbox, which channels deliver.
            outcome = "blocked" if verdict.triggered else "pass"
            r.steps.append(StepDecision("output_guard", outcome, verdict.reason, **t.span(began)))
            if msg.status == "blocked":
                r.steps.append(StepDecision("consent_gate", "blocked", kind, **t.span(sending)))
            r.replies.append(OutboundView(msg.id or 0, msg.body, msg.segments, msg.status))
        r.consent = t.contact.consent
        t.contact.state = t.state.model_dump()
        t.session.add(t.contact)
        t.conversation.last_message_at = t.now
        t.session.add(t.conversation)
        t.inbound.processed_at = t.now
        t.session.add(t.inbound)
        u = t.understanding
        t.session.add(
            Trace(
                message_id=t.inbound.id,
                contact_id=t.contact.id,
                conversation_id=t.conversation.id,
                route=r.route,
                rule=r.rule,
                intent=r.intent,
                confidence=r.confidence,
                slots=r.slots,
                tools=r.tools,
                escalated=r.escalated,
                escalation_reason=r.escalation_reason,
                reply=r.reply,
                segments=r.segments,
                provider=u.provider if u else None,
                prompt_version=u.prompt_version if u else None,
                model=u.model if u else None,
                llm_calls=r.llm_calls,
                tokens_in=u.tokens_in if u else 0,
                tokens_out=u.tokens_out if u else 0,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                steps=[asdict(s) for s in r.steps],
                llm=[_exchange_row(e, t.started) for e in u.exchanges] if u else [],
                created_at=t.now,
            )
        )

    async def _after_commit(self, t: _Turn) -> None:
        """Metrics and notifications; these never block or fail the customer's turn."""
        m, r = self.metrics, t.result
        m.messages.labels("in", r.route).inc()
        sent = [x for x in r.replies if x.status != "blocked"]
        if sent:
            m.messages.labels("out", r.route).inc(len(sent))
            m.segments.inc(sum(x.segments for x in sent))
        if r.llm_calls:
            m.llm_calls.inc(r.llm_calls)
            u = t.understanding
            if u is not None:
                m.tokens.labels("input").inc(u.tokens_in)
                m.tokens.labels("output").inc(u.tokens_out)
        if r.escalated:
            m.escalations.labels(r.escalation_reason or "other").inc()
        if r.rule == "opt_out":
            m.opt_outs.inc()
        tz = self.business.timezone
        for kind, booking in t.crm:  # CRM sync is best effort and never blocks the turn
            kind = cast(BookingEventKind, kind)
            try:
                self.events.emit(
                    booking_event(
                        kind,
                        t.contact,
                        booking,
                        t.now,
                        timezone=tz,
                        external_id=booking.external_id,
                    )
                )
            except Exception:
                log.exception("crm.emit_failed")
        for hook in self.message_hooks:
            tasks.spawn(hook(t.conversation.id or 0))
        if t.result.escalated:
            for ehook in self.escalation_hooks:
                tasks.spawn(
                    ehook(
                        t.conversation.id or 0,
                        t.result.escalation_reason or "other",
                        t.conversation.summary or "",
                    )
                )

    async def _replay(self, session: AsyncSession, inbound: Message) -> TurnResult:
        """A retried webhook: the first answer again, never a second reply."""
        from sqlmodel import select

        trace = (await session.exec(select(Trace).where(Trace.message_id == inbound.id))).first()
        replies = await repo.replies_to(session, inbound.id or 0)
        r = TurnResult(
            route=trace.route if trace else "agent",
            duplicate=True,
            message_id=inbound.id,
            contact_id=inbound.contact_id,
            conversation_id=inbound.conversation_id,
        )
        if trace is not None:
            r.rule, r.intent, r.slots, r.tools = trace.rule, trace.intent, trace.slots, trace.tools
            r.escalated, r.escalation_reason = trace.escalated, trace.escalation_reason
        r.replies = [OutboundView(m.id or 0, m.body, m.segments, m.status, m.delivery) for m in replies]
        r.steps.append(StepDecision("idempotency", "duplicate", inbound.provider_message_id or ""))
        return r


def _exchange_row(ex: Exchange, turn_started: float) -> dict[str, Any]:
    """A model exchange as the trace stores it, with its start offset in the turn (``at_ms``)."""
    row = ex.model_dump()
    if ex.started_s is not None:
        row["at_ms"] = round((ex.started_s - turn_started) * 1000, 2)
    return row
