"""Understanding through any OpenAI-compatible chat-completions endpoint.

One turn is one request (plus retries, plus at most one repair), all inside a hard time budget
(``llm_total_budget_s``); how long a webhook waits for the turn is the channel's business. Every
failure ends in a value, never an
exception the pipeline has to know about:

- 408 / 409 / 429 / 5xx, connection error, timeout: retried by tenacity (Retry-After honoured,
  else jittered exponential backoff) while attempts and the budget last; then the offline
  provider's understanding (``fallback="offline"``).
- any other 4xx (bad key, unknown model): not retried; offline fallback (and a warning log).
- no ``understand`` call, arguments not JSON, wrong types, another function called: ONE repair
  request carrying the validation error; if that is invalid too, offline fallback.
- refusal (``message.refusal`` or ``finish_reason="content_filter"``): offline fallback, no repair.
- turn budget spent mid-request: the request is cancelled; offline fallback.
- offline fails as well: ``Understanding(error=...)``, which policy turns into a safe reply and
  an ``escalate``.
- cassette miss (replay): raised, never retried or replaced: an eval must fail loudly.

Each HTTP attempt is one :class:`~agent.types.Exchange` in ``Understanding.exchanges``:
redacted request messages, the raw tool calls (redacted), validation notes, usage tokens,
latency and the error, if any.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from agent.llm_output import (
    UNDERSTAND,
    OutputContext,
    Validated,
    booking_ids,
    check_arguments,
    keep_topic,
    read_message,
    understand_tool,
)
from agent.prompts import PromptSpec, estimate_tokens, load_prompt, render_system
from agent.providers.base import UnderstandRequest
from agent.providers.cassette import CassetteMiss
from agent.providers.offline import OfflineProvider
from agent.types import Exchange, Understanding
from textdesk.errors import ConfigurationError, MalformedOutput, ProviderError, ProviderUnavailable
from textdesk.redact import redact_obj
from textdesk.settings import Settings

__all__ = ["OpenAIProvider", "RetryTiming", "llm_budget_s"]

log = logging.getLogger(__name__)

_MIN_ATTEMPT_S = 0.25  # don't start a request with less time than this left
_OPENAI_HOST = "api.openai.com"


def llm_budget_s(settings: Settings) -> float:
    """Seconds the whole understanding step may take: retries, repair and all.

    Not tied to any channel's webhook window: a channel that answers inline waits only its own
    budget, and a turn that outlives it sends its reply over REST, so the model may still finish."""
    return max(0.5, settings.llm_total_budget_s)


@dataclass(frozen=True)
class RetryTiming:
    """Backoff between attempts when the server gives no Retry-After (tests shrink it)."""

    multiplier_s: float = 0.5
    max_wait_s: float = 4.0


_RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx: the statuses the SDK itself retries


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits, server errors, timeouts and connection failures."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return not isinstance(exc.__cause__, CassetteMiss)
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    )


def _retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``retry-after``: seconds or a date)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                return max(0.0, float(value))
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _describe(exc: BaseException) -> str:
    """Classify by type (httpx#2620: an async ReadTimeout has an empty message)."""
    if isinstance(exc, openai.APIStatusError):
        return f"{type(exc).__name__}: HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError) and exc.__cause__ is not None:
        return f"{type(exc).__name__}: {type(exc.__cause__).__name__}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass
class _Run:
    """One turn's bookkeeping: deadline and the exchanges made so far."""

    deadline: float
    exchanges: list[Exchange] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def note(self, text: str) -> None:
        if self.exchanges:
            self.exchanges[-1].validation.append(text)


@dataclass(frozen=True)
class _Reply:
    message: dict[str, Any]
    finish_reason: str | None
    exchange: Exchange


def _repair_messages(reply: _Reply, error: str) -> list[dict[str, Any]]:
    """The failed answer and the validation error, in a shape chat APIs accept."""
    ask = f"{error}. Call `{UNDERSTAND}` again, once, with arguments that match its schema."
    calls = reply.message.get("tool_calls") or []
    if calls:
        assistant = {"role": "assistant", "content": reply.message.get("content"), "tool_calls": calls}
        return [assistant, *({"role": "tool", "tool_call_id": c.get("id", ""), "content": f"Error: {ask}"}
                             for c in calls)]
    return [{"role": "assistant", "content": reply.message.get("content") or ""},
            {"role": "user", "content": f"[textdesk validator, not the customer] {ask}"}]


class OpenAIProvider:
    """The ``openai`` provider: one forced ``understand`` call per turn, checked in code."""

    name = "openai"

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        offline: OfflineProvider | None = None,
        prompt: PromptSpec | None = None,
        timing: RetryTiming | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.spec = prompt or load_prompt(settings.prompt)
        self.model = settings.llm_model
        self.budget_s = llm_budget_s(settings)
        self.attempt_timeout_s = settings.llm_timeout_s
        self.max_attempts = max(1, settings.llm_max_retries + 1)
        self.temperature = (settings.llm_temperature if "llm_temperature" in settings.model_fields_set
                            else self.spec.model_defaults.temperature)
        self.timing = timing or RetryTiming()
        self._sleep = sleep or asyncio.sleep
        self._offline = offline or OfflineProvider()
        self._tools = [understand_tool(self.spec.tools)]
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        if not key:
            if _OPENAI_HOST in settings.llm_base_url:
                raise ConfigurationError("TEXTDESK_LLM_API_KEY (or OPENAI_API_KEY) is required for OpenAI")
            key = "unused"  # local OpenAI-compatible servers often take none
        timeout = httpx.Timeout(self.attempt_timeout_s, connect=min(3.0, self.attempt_timeout_s))
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        # openai 3.x annotates httpx2 but accepts an httpx.AsyncClient (what respx and our
        # cassette transports hook into); its own retries are off: tenacity owns them.
        self._client = openai.AsyncOpenAI(base_url=settings.llm_base_url, api_key=key,
                                          http_client=cast(Any, self._http), max_retries=0)

    async def aclose(self) -> None:
        await self._client.close()

    # -- the turn --------------------------------------------------------------------------------

    async def understand(self, req: UnderstandRequest) -> Understanding:
        run = _Run(deadline=time.monotonic() + self.budget_s)
        try:
            async with asyncio.timeout(self.budget_s):
                validated = await self._understand(req, run)
        except CassetteMiss:
            raise
        except ProviderError as exc:
            return self._fallback(req, run, exc)
        except TimeoutError:
            return self._fallback(req, run, ProviderUnavailable(f"turn budget of {self.budget_s:.1f}s spent"))
        except Exception as exc:  # e.g. a 200 whose body is HTML or truncated JSON: the SDK raises oddities
            log.warning("llm.unexpected_response", extra={"error": type(exc).__name__})
            return self._fallback(req, run, ProviderUnavailable(f"unexpected response: {type(exc).__name__}"))
        return self._stamp(validated.understanding, run)

    async def _understand(self, req: UnderstandRequest, run: _Run) -> Validated:
        messages = self._messages(req)
        ctx = OutputContext(
            business=req.business,
            allowed_tools=frozenset(self.spec.tools),
            known_booking_ids=frozenset(self._known_ids(req)),
        )
        reply = await self._complete(messages, run)
        try:
            return self._check(reply, ctx, req.text)
        except MalformedOutput as exc:
            reply.exchange.validation.append(f"repair.requested: {exc}")
            repair = await self._complete([*messages, *_repair_messages(reply, str(exc))], run)
            try:
                validated = self._check(repair, ctx, req.text)
            except MalformedOutput as again:
                raise MalformedOutput(f"still invalid after one repair: {again}") from again
            repair.exchange.validation.append("repair.succeeded")
            return validated

    @staticmethod
    def _known_ids(req: UnderstandRequest) -> set[str]:
        """The sender's own bookings: ids on the request's booking lines and in the dialogue state."""
        ids = booking_ids(req.bookings)
        st = req.state
        if st.pending == "pick_booking":
            ids.update(st.choices)
        if st.booking_id:
            ids.add(st.booking_id)
        return ids

    def _messages(self, req: UnderstandRequest) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": render_system(self.spec, req)}]
        for role, text in req.history:
            messages.append({"role": "assistant" if role == "assistant" else "user", "content": text})
        messages.append({"role": "user", "content": req.text})
        return messages

    def _check(self, reply: _Reply, ctx: OutputContext, text: str) -> Validated:
        """Validate one answer; notes and errors go on its exchange."""
        ex = reply.exchange
        try:
            arguments, notes = read_message(reply.message, reply.finish_reason)
            validated = check_arguments(arguments, ctx)
        except ProviderError as exc:
            ex.validation.append(f"invalid: {exc}")
            raise
        keep_topic(validated, text, ctx.business)
        ex.validation.extend([*notes, *validated.notes])
        return validated

    # -- one request, with retries ---------------------------------------------------------------

    async def _complete(self, messages: list[dict[str, Any]], run: _Run) -> _Reply:
        backoff = wait_random_exponential(multiplier=self.timing.multiplier_s, max=self.timing.max_wait_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = _retry_after_s(exc)
            return after if after is not None else float(backoff(state))

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return state.upcoming_sleep + _MIN_ATTEMPT_S > run.remaining()  # Retry-After past the budget

        try:
            async for attempt in AsyncRetrying(retry=retry_if_exception(_transient), stop=stop, wait=wait,
                                               sleep=self._sleep, reraise=True):
                with attempt:
                    return await self._once(messages, run)
        except openai.APIError as exc:
            if isinstance(exc.__cause__, CassetteMiss):
                raise exc.__cause__ from None
            if isinstance(exc, openai.APIStatusError) and not _transient(exc):
                log.warning("llm.request_rejected", extra={"status": exc.status_code, "model": self.model})
            raise ProviderUnavailable(_describe(exc)) from exc
        raise ProviderUnavailable("no attempt was made")  # pragma: no cover - tenacity always attempts

    async def _once(self, messages: list[dict[str, Any]], run: _Run) -> _Reply:
        timeout = min(self.attempt_timeout_s, run.remaining())
        if timeout < _MIN_ATTEMPT_S:
            raise ProviderUnavailable(f"turn budget of {self.budget_s:.1f}s spent")
        ex = Exchange(prompt_version=self.spec.ref, model=self.model, request=redact_obj(messages))
        run.exchanges.append(ex)
        started = ex.started_s = time.perf_counter()
        try:
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=cast(Any, messages),
                tools=cast(Any, self._tools),
                tool_choice={"type": "function", "function": {"name": UNDERSTAND}},
                temperature=self.temperature,
                max_tokens=self.spec.model_defaults.max_tokens,
                timeout=timeout,
            )
        except asyncio.CancelledError:
            ex.error = "cancelled: turn budget spent"
            raise
        except Exception as exc:
            ex.error = _describe(exc)
            raise
        finally:
            ex.ms = round((time.perf_counter() - started) * 1000, 1)
        return self._read(completion, ex, messages)

    @staticmethod
    def _read(completion: Any, ex: Exchange, messages: list[dict[str, Any]]) -> _Reply:
        if not completion.choices:
            ex.error = "no choices in the response"
            raise MalformedOutput("the response has no choices")
        choice = completion.choices[0]
        message = choice.message.model_dump(exclude_none=True)
        calls = message.get("tool_calls") or []
        ex.response = redact_obj({"id": completion.id, "finish_reason": choice.finish_reason,
                                  "content": message.get("content"), "refusal": message.get("refusal")})
        ex.tool_calls_raw = redact_obj(calls)
        usage = completion.usage
        if usage is not None:
            ex.tokens_in, ex.tokens_out = usage.prompt_tokens, usage.completion_tokens
        else:  # some compatible servers omit usage: estimate (chars/4) and say so
            ex.tokens_in = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
            ex.tokens_out = estimate_tokens(str(message.get("content") or "") + str(calls))
            ex.validation.append("usage.estimated: the response carried no usage; chars/4")
        return _Reply(message, choice.finish_reason, ex)

    # -- outcomes --------------------------------------------------------------------------------

    def _stamp(self, u: Understanding, run: _Run) -> Understanding:
        u.provider = self.name
        u.prompt_version = self.spec.name
        u.model = self.model
        u.exchanges = run.exchanges
        u.llm_calls = len(run.exchanges)
        u.tokens_in = sum(e.tokens_in for e in run.exchanges)
        u.tokens_out = sum(e.tokens_out for e in run.exchanges)
        return u

    def _fallback(self, req: UnderstandRequest, run: _Run, exc: ProviderError) -> Understanding:
        reason = f"{type(exc).__name__}: {exc}"
        run.note(f"fallback.offline: {reason}")
        log.warning("llm.fallback_offline", extra={"reason": reason, "calls": len(run.exchanges)})
        try:
            u = self._offline.parse(req)
        except Exception as offline_exc:  # the last resort must not raise either
            log.exception("llm.offline_fallback_failed")
            u = Understanding(error=f"{reason}; offline fallback failed: {type(offline_exc).__name__}")
        else:
            u.fallback = "offline"
        return self._stamp(u, run)
