"""Two prompt versions on the same stored conversation, turn by turn, for the browser.

This is ``textdesk replay``'s engine, not a second one: the conversation becomes a case
(``evals.compare.stored_case``) and each version plays it through the eval runner
(``evals.runner.run_case``), in its own in-memory store, so nothing reaches the real database or a
customer. What comes back is redacted before any page sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from agent.providers.base import Provider
from evals.compare import stored_case
from evals.runner import CaseOutcome, ProviderPool, run_case
from textdesk.business import Business
from textdesk.redact import redact, redact_obj
from textdesk.settings import Settings

__all__ = ["FIELDS", "MAX_TURNS", "Comparison", "SideBySide", "compare_prompts"]

FIELDS = ("route", "intent", "slots", "tools", "reply")  # what a reviewer compares per turn
MAX_TURNS = 40  # longer conversations replay with `textdesk replay`, not inside a web request


@dataclass
class SideBySide:
    index: int  # 1-based
    user: str  # redacted
    trace_id: int | None  # the stored turn
    a: dict[str, Any] | None  # redacted FIELDS, None when that version did not get this far
    b: dict[str, Any] | None

    @property
    def differs(self) -> set[str]:
        if self.a is None or self.b is None:
            return set(FIELDS)
        return {k for k in FIELDS if self.a[k] != self.b[k]}


@dataclass
class Comparison:
    conversation_id: int
    a: str
    b: str
    a_error: str | None = None
    b_error: str | None = None
    turns: list[SideBySide] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(1 for t in self.turns if t.differs)


def _side(actual: dict[str, Any]) -> dict[str, Any]:
    tools = [  # booking ids are minted per replay: compared as <id>
        {"name": t.get("name"), "args": {k: "<id>" if k == "booking_id" else v for k, v in args.items()}}
        for t in actual.get("tools") or []
        for args in [t.get("args") or {}]
    ]
    side = {k: actual.get(k) for k in FIELDS} | {"slots": dict(actual.get("slots") or {}), "tools": tools}
    return dict(redact_obj(side))


async def _play(case: Any, settings: Settings, prompt: str, business: Business,
                provider: Provider) -> CaseOutcome:
    pool = ProviderPool(settings.model_copy(update={"prompt": prompt}))
    if provider.name == "offline" or settings.prompt == prompt:  # the server's warmed provider fits
        pool.adopt(business, provider)
    try:
        return await run_case(case, pool.settings, pool)
    finally:
        await pool.aclose()


async def compare_prompts(session: AsyncSession, conversation_id: int, a: str, b: str, *, settings: Settings,
                          business: Business, provider: Provider) -> Comparison:
    """Replay the conversation with prompt ``a`` and with ``b``. Raises LookupError, ValueError or
    EvalFileError when the conversation cannot be replayed (no messages, too long, a service gone)."""
    case, stored = await stored_case(session, conversation_id, business)
    if len(case.turns) > MAX_TURNS:
        raise ValueError(f"{len(case.turns)} turns is too long to replay here; use `textdesk replay`")
    await session.commit()  # a replay takes a while: hold no read transaction on the real store meanwhile
    one = await _play(case, settings, a, business, provider)
    two = await _play(case, settings, b, business, provider)
    out = Comparison(conversation_id, a, b, redact(one.error) or None, redact(two.error) or None)
    for i, (msg, trace) in enumerate(stored):
        ta = one.turns[i] if i < len(one.turns) else None
        tb = two.turns[i] if i < len(two.turns) else None
        out.turns.append(SideBySide(i + 1, redact(msg.body), trace.id if trace else None,
                                    _side(ta.actual) if ta else None, _side(tb.actual) if tb else None))
    return out
