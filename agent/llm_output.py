"""The structured-output contract between textdesk and a chat model.

Design: the model calls exactly ONE function, ``understand``, forced with ``tool_choice``.
Its arguments are an :class:`LLMTurn` (intent, confidence, slots, dialogue acts) plus
``tool_calls``: the state-changing actions the model would *propose*, each one of the tools
the prompt file offers, with arguments shaped by the same ``tools/schemas.py`` models that
validate them. One forced call (rather than letting the model call booking tools directly)
keeps every turn one request, gives one schema to validate, and makes clear that nothing the
model says runs by itself: policy decides, tools act for the session's contact.

Checking is a filter, as in Rasa's command parser:

* *Repairable* problems raise :class:`~textdesk.errors.MalformedOutput` (no call, another
  function, arguments that are not JSON or fail the ``LLMTurn`` schema); the provider asks the
  model once more with the error, then falls back.
* *Droppable* problems are removed with a note for the trace: a service or provider not in the
  business file, an impossible date, an unknown topic, an unknown tool name, tool arguments that
  fail their model, name a phone number, or name a booking id that is not the sender's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.extract import detect_topic, match_provider, match_service
from agent.types import Intent, ProposedCall, Slots, Understanding
from textdesk.business import Business
from textdesk.errors import MalformedOutput, ProviderRefusal
from tools.schemas import TOOL_MODELS, tool_json_schemas

__all__ = [
    "UNDERSTAND",
    "LLMSlots",
    "LLMToolCall",
    "LLMTurn",
    "OutputContext",
    "Validated",
    "booking_ids",
    "check_arguments",
    "keep_topic",
    "parse_arguments",
    "read_message",
    "understand_tool",
    "validate_turn",
]

UNDERSTAND = "understand"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"
_BOOKING_ID = re.compile(r"^\s*\[([A-Za-z0-9_-]{1,40})\]")
_ISO_BITS = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?|\b\d{1,2}:\d{2}\b")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{5,}\d(?![\w])")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
MAX_PROPOSALS = 3


class LLMSlots(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(default=None, description="A service name from the list")
    date: str | None = Field(default=None, pattern=_DATE, description="YYYY-MM-DD")
    time: str | None = Field(default=None, pattern=_TIME, description="HH:MM, 24 h")
    provider: str | None = Field(default=None, description="A provider name from the list")
    name: str | None = Field(default=None, max_length=120, description="The customer's own name")
    email: str | None = Field(default=None, max_length=254, description="The customer's own email")


class LLMToolCall(BaseModel):
    """A proposed action. ``args`` are checked against the tool's own model, in code."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class LLMTurn(BaseModel):
    """The arguments of ``understand``: what the customer's latest text means."""

    model_config = ConfigDict(extra="ignore")  # extra keys are noted, not fatal

    intent: Intent | None = Field(description="The active task after this text; null if it only "
                                              "answers the pending question")
    confidence: float = Field(ge=0.0, le=1.0)
    slots: LLMSlots = Field(default_factory=LLMSlots)
    affirm: bool | None = Field(default=None, description="Yes (true) or no (false) to a confirmation")
    choice: int | None = Field(default=None, ge=1, le=20, description="The offered option picked, 1-based")
    part_of_day: Literal["morning", "afternoon", "evening"] | None = None
    after: str | None = Field(default=None, pattern=_TIME, description="Earliest time, HH:MM")
    before: str | None = Field(default=None, pattern=_TIME, description="Latest time, HH:MM")
    target_date: str | None = Field(default=None, pattern=_DATE,
                                    description="Date of the existing booking to move or cancel")
    topic: str | None = Field(default=None, description="An escalation topic the text touches")
    abandon: bool = Field(default=False, description="The customer drops the current task")
    tool_calls: list[LLMToolCall] = Field(default_factory=list)


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace ``{"$ref": "#/$defs/X"}`` by X: small models and some endpoints handle flat schemas better."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _compact(node: Any) -> Any:
    """Shorter, equivalent schema: ``anyOf [X, null]`` -> ``type [X, "null"]``; no ``default: null``.

    The tool schema is sent (and billed) with every request, so it is kept lean.
    """
    if isinstance(node, list):
        return [_compact(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _compact(v) for k, v in node.items() if not (k == "default" and v is None)}
    variants = out.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and {"type": "null"} in variants:
        other = next(v for v in variants if v != {"type": "null"})
        if isinstance(other.get("type"), str):
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
            if "enum" in other:
                out["enum"] = [*other["enum"], None]
    return out


def understand_tool(allowed_tools: list[str]) -> dict[str, Any]:
    """The OpenAI function-tool definition of ``understand``, generated from :class:`LLMTurn`.

    ``tool_calls`` items are narrowed to an ``anyOf`` of the allowed tools, each with the JSON
    schema of its ``tools/schemas.py`` model, so the schema the model sees and the validator
    are the same code.
    """
    schema = LLMTurn.model_json_schema()
    schema = _inline_refs(schema, schema.get("$defs", {}))
    schema.pop("description", None)
    schema["additionalProperties"] = False
    schema["properties"]["slots"]["additionalProperties"] = False
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": t["function"]["name"]}, "args": t["function"]["parameters"]},
            "required": ["name", "args"],
            "additionalProperties": False,
        }
        for t in tool_json_schemas(allowed_tools)
    ]
    schema["properties"]["tool_calls"] = {
        "type": "array",
        "maxItems": MAX_PROPOSALS,
        "description": "Actions you would propose; code asks the customer before any runs",
        "items": {"anyOf": variants} if variants else {"type": "object"},
    }
    return {
        "type": "function",
        "function": {
            "name": UNDERSTAND,
            "description": "Record what the customer's latest text means. Call exactly once.",
            "parameters": _compact(_strip_titles(schema)),
        },
    }


def booking_ids(lines: Iterable[str]) -> set[str]:
    """Booking ids carried by the request's booking lines (``"[b1] haircut with Kim ..."``)."""
    return {m.group(1) for line in lines if (m := _BOOKING_ID.match(line))}


@dataclass(frozen=True)
class OutputContext:
    """What checking needs: the business file, the offered tools, the sender's own booking ids."""

    business: Business
    allowed_tools: frozenset[str]
    known_booking_ids: frozenset[str] = frozenset()


@dataclass
class Validated:
    understanding: Understanding
    notes: list[str] = field(default_factory=list)


def read_message(message: dict[str, Any], finish_reason: str | None) -> tuple[str, list[str]]:
    """The raw ``understand`` arguments from an assistant message, and notes on anything ignored.

    Raises ProviderRefusal for a refusal or a content filter, MalformedOutput when there is no
    ``understand`` call to read.
    """
    refusal = message.get("refusal")
    if refusal or finish_reason == "content_filter":
        raise ProviderRefusal(f"model refused: {refusal or 'finish_reason=content_filter'}")
    calls = [c for c in message.get("tool_calls") or [] if c.get("type", "function") == "function"]
    if not calls:
        raise MalformedOutput(f"no tool call (finish_reason={finish_reason}); call `{UNDERSTAND}`")
    ours = [c for c in calls if c.get("function", {}).get("name") == UNDERSTAND]
    if not ours:
        names = ", ".join(repr(c.get("function", {}).get("name")) for c in calls)
        raise MalformedOutput(f"called unknown function {names}; the only function is `{UNDERSTAND}`")
    notes = [f"ignored.extra_call: {c.get('function', {}).get('name')}" for c in calls if c is not ours[0]]
    return str(ours[0]["function"].get("arguments") or ""), notes


def parse_arguments(arguments: str) -> tuple[LLMTurn, list[str]]:
    """Decode and schema-check the ``understand`` arguments; also return unknown top-level keys.

    Raises MalformedOutput when the arguments are not a JSON object matching :class:`LLMTurn`.
    """
    try:
        data = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise MalformedOutput(f"arguments are not valid JSON: {exc.msg} at char {exc.pos}") from exc
    if not isinstance(data, dict):
        raise MalformedOutput("arguments must be a JSON object")
    try:
        turn = LLMTurn.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:6]
        )
        raise MalformedOutput(f"arguments do not match the schema: {problems}") from exc
    return turn, sorted(set(data) - set(LLMTurn.model_fields))


def _has_phone(value: Any) -> bool:
    if isinstance(value, str):
        return any(sum(ch.isdigit() for ch in m.group(0)) >= 7
                   for m in _PHONE.finditer(_ISO_BITS.sub(" ", value)))
    if isinstance(value, dict):
        return any(_has_phone(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_phone(v) for v in value)
    return False


def _real_date(value: str | None) -> bool:
    if value is None:
        return True
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _provider(b: Business, value: str) -> str | None:
    return b.provider(value) or match_provider(b, value)


def _slots(raw: LLMSlots, b: Business, notes: list[str]) -> Slots:
    out: dict[str, str | None] = {"date": raw.date, "time": raw.time}
    if raw.service is not None:
        out["service"] = match_service(b, raw.service)
        if out["service"] is None:
            notes.append(f"dropped.slot.service: {raw.service!r} is not a service of the business")
    if raw.provider is not None:
        out["provider"] = _provider(b, raw.provider)
        if out["provider"] is None:
            notes.append(f"dropped.slot.provider: {raw.provider!r} is not a provider of the business")
    if not _real_date(raw.date):
        notes.append(f"dropped.slot.date: {raw.date!r} is not a calendar date")
        out["date"] = None
    if raw.name is not None:
        name = raw.name.strip()
        if not name or _has_phone(name):
            notes.append("dropped.slot.name: empty or contains a phone number")
        else:
            out["name"] = name
    if raw.email is not None:
        email = raw.email.strip().lower()
        if _EMAIL.match(email):
            out["email"] = email
        else:
            notes.append("dropped.slot.email: not an email address")
    return Slots(**out)


def _proposal(call: LLMToolCall, ctx: OutputContext, notes: list[str]) -> ProposedCall | None:
    name = call.name
    if name not in ctx.allowed_tools or name not in TOOL_MODELS:
        notes.append(f"dropped.tool.unknown: {name!r} is not an offered tool")
        return None
    if _has_phone(call.args):
        notes.append(f"dropped.tool.{name}: arguments name a phone number; the contact is bound by code")
        return None
    try:
        args = TOOL_MODELS[name].model_validate(call.args).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        notes.append(f"dropped.tool.{name}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        return None
    booking_id = args.get("booking_id")
    if booking_id is not None and booking_id not in ctx.known_booking_ids:
        notes.append(f"dropped.tool.{name}: booking id {booking_id!r} is not one of the sender's bookings")
        return None
    b = ctx.business
    if "service" in args:
        service = match_service(b, args["service"])
        if service is None:
            notes.append(f"dropped.tool.{name}: unknown service {args['service']!r}")
            return None
        args["service"] = service
    if "provider" in args:
        provider = _provider(b, args["provider"])
        if provider is None:
            notes.append(f"dropped.tool.{name}: unknown provider {args['provider']!r}")
            return None
        args["provider"] = provider
    if "date" in args and not _real_date(args["date"]):
        notes.append(f"dropped.tool.{name}: {args['date']!r} is not a calendar date")
        return None
    return ProposedCall(name=name, args=args)


def validate_turn(turn: LLMTurn, ctx: OutputContext, extra_keys: Iterable[str] = ()) -> Validated:
    """Normalize a schema-valid turn against the business file; drop what is not allowed."""
    notes = [f"ignored.key: {k}" for k in extra_keys]
    slots = _slots(turn.slots, ctx.business, notes)
    topic = turn.topic.strip().lower() if turn.topic else None
    if topic is not None and topic not in {t.lower() for t in ctx.business.escalate_topics}:
        notes.append(f"dropped.topic: {turn.topic!r} is not an escalation topic")
        topic = None
    target = turn.target_date
    if not _real_date(target):
        notes.append(f"dropped.target_date: {target!r} is not a calendar date")
        target = None
    if len(turn.tool_calls) > MAX_PROPOSALS:
        notes.append(f"dropped.tool.extra: {len(turn.tool_calls) - MAX_PROPOSALS} proposals past "
                     f"the first {MAX_PROPOSALS}")
    calls = turn.tool_calls[:MAX_PROPOSALS]
    proposed = [p for c in calls if (p := _proposal(c, ctx, notes)) is not None]
    u = Understanding(
        intent=turn.intent,
        confidence=round(turn.confidence, 4),
        slots=slots,
        affirm=turn.affirm,
        choice=turn.choice,
        part_of_day=turn.part_of_day,
        after=turn.after,
        before=turn.before,
        target_date=target,
        topic=topic,
        abandon=turn.abandon,
        proposed=proposed,
    )
    return Validated(u, notes)


def keep_topic(v: Validated, text: str, business: Business) -> None:
    """An escalation topic the keyword detector sees is kept even if the model left it out.

    Escalation topics (billing, medical, legal...) are a policy invariant; a model, or a message
    that talks a model out of it, must not be able to suppress one.
    """
    if v.understanding.topic is None:
        topic = detect_topic(text, list(business.escalate_topics))
        if topic is not None:
            v.understanding.topic = topic
            v.notes.append(f"added.topic: {topic!r} from keywords (the model gave none)")


def check_arguments(arguments: str, ctx: OutputContext) -> Validated:
    """Parse, schema-check and normalize one ``understand`` call (MalformedOutput if repairable)."""
    turn, extras = parse_arguments(arguments)
    return validate_turn(turn, ctx, extras)
