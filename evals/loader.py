"""Load eval case files (docs/architecture.md section 4) into validated, self-contained cases.

A case file is YAML with a top-level ``cases:`` list (plus optional ``suite`` and ``defaults``),
or JSONL with one case per line. Folders are searched recursively for ``*.yaml|*.yml|*.jsonl``;
YAML files without a top-level ``cases:`` key (business files living next to the cases) are
skipped. In JSONL, a line holding only ``suite``/``defaults`` sets them for the lines after it.

``defaults`` is merged into every case: mappings merge key by key (recursively), anything else
(lists included) is replaced by the case's own value. ``business`` is a path relative to the
file that names it, or an inline mapping. ``now`` is ISO 8601; a value without a UTC offset is
read as business-local time.

Every problem becomes an ``EvalFileError`` naming the file, the case id and the field path
(``turns[1].expect.tools[0].name``), because a typo in a case file must never read as a
regression in the bot.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from evals.fixtures import STRICT, ContactFixture, iso_values
from textdesk.business import Business, load_business
from textdesk.errors import ConfigurationError, EvalFileError

__all__ = [
    "EXPECT_KEYS",
    "INTENTS",
    "SUFFIXES",
    "CaseModel",
    "Expect",
    "Final",
    "LoadedCase",
    "ToolExpect",
    "TurnModel",
    "build_case",
    "discover",
    "load_cases",
    "load_file",
    "parse_wait",
]

SUFFIXES = (".yaml", ".yml", ".jsonl")
_STEP = dt.timedelta(minutes=1)  # default gap between turns, so turns have distinct, ordered times

# The contract's vocabularies (docs/architecture.md sections 2 and 4), spelled out so a typo in a case file
# is a load error; tests/evals keep them in step with the pipeline's own lists.
Route = Literal["rule", "agent", "handoff", "blocked", "limited"]
RuleName = Literal["opt_out", "opt_in", "help", "human"]
Intent = Literal["book_appointment", "reschedule_appointment", "cancel_appointment", "check_appointment",
                 "ask_question", "update_contact", "request_human", "billing", "complaint", "greeting",
                 "out_of_scope"]
INTENTS: tuple[str, ...] = Intent.__args__  # type: ignore[attr-defined]
Reason = Literal["requested", "low_confidence", "billing", "complaint", "sensitive", "repeated_failure",
                 "other"]
Consent = Literal["opted_in", "unknown", "opted_out"]
ToolName = Literal["create_booking", "reschedule_booking", "cancel_booking", "update_contact", "tag_contact",
                   "escalate"]
SlotName = Literal["service", "date", "time", "provider", "name", "email"]
_FORMATS = {"date": re.compile(r"^\d{4}-\d{2}-\d{2}$"), "time": re.compile(r"^\d{2}:\d{2}$")}
_NULLABLE = {"rule", "intent", "escalation_reason"}  # `intent: null` = expect no intent


class ToolExpect(BaseModel):
    model_config = STRICT

    name: ToolName
    args: dict[str, Any] = Field(default_factory=dict)

    _iso = field_validator("args", mode="before")(iso_values)


class Expect(BaseModel):
    """Per-turn expectations; only keys that are given are checked."""

    model_config = STRICT

    route: Route | None = None
    rule: RuleName | None = None
    intent: Intent | None = None
    slots: dict[SlotName, str] | None = None
    tools: list[ToolExpect] | None = None
    escalated: bool | None = None
    escalation_reason: Reason | None = None
    consent: Consent | None = None
    reply: bool | None = None
    reply_contains: list[str] | None = None
    reply_not_contains: list[str] | None = None
    max_segments: int | None = Field(default=None, ge=0)
    max_llm_calls: int | None = Field(default=None, ge=0)

    _iso = field_validator("slots", mode="before")(iso_values)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key not in _NULLABLE:
                    raise ValueError(f"{key!r} may not be null")
            for key in ("reply_contains", "reply_not_contains"):
                if isinstance(data.get(key), str):  # one string is a one-item list
                    data = {**data, key: [data[key]]}
        return data

    @field_validator("slots")
    @classmethod
    def _formats(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key, rx in _FORMATS.items():
            if v and key in v and not rx.match(v[key]):
                raise ValueError(f"slot {key!r} must look like {'YYYY-MM-DD' if key == 'date' else 'HH:MM'}")
        return v

    def given(self) -> dict[str, Any]:
        """The expectations as written, in contract order."""
        return {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}


EXPECT_KEYS: tuple[str, ...] = tuple(Expect.model_fields)


class BookingMatch(BaseModel):
    model_config = STRICT

    id: str | None = None
    service: str | None = None
    date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    time: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    provider: str | None = None

    _iso = model_validator(mode="before")(iso_values)

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if k in self.model_fields_set}


class Final(BaseModel):
    model_config = STRICT

    bookings: list[BookingMatch] | None = None
    consent: Consent | None = None


def _when(v: Any, info: ValidationInfo) -> Any:
    """ISO 8601 -> aware UTC; a naive value is business-local time."""
    if v is None:
        return v
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v.strip())
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date-time: {v!r} (e.g. 2026-03-03T10:00:00-05:00)") from exc
    if not isinstance(v, dt.datetime):
        raise ValueError("expected an ISO 8601 date-time such as 2026-03-03T10:00:00-05:00")
    if v.tzinfo is None:
        v = v.replace(tzinfo=(info.context or {}).get("tz") or dt.UTC)
    return v.astimezone(dt.UTC)


_WAIT = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|min|s)")


def parse_wait(text: str) -> dt.timedelta:
    """``"2h"``, ``"90s"``, ``"1h30m"``, ``"2d"`` -> timedelta."""
    compact = text.replace(" ", "").lower()
    parts = _WAIT.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"bad duration {text!r} (use e.g. 90s, 10m, 2h, 1d, 1h30m)")
    unit = {"d": "days", "h": "hours", "m": "minutes", "min": "minutes", "s": "seconds"}
    total = dt.timedelta()
    for number, u in parts:
        total += dt.timedelta(**{unit[u]: float(number)})
    return total


class TurnModel(BaseModel):
    model_config = STRICT

    user: str
    expect: Expect = Field(default_factory=Expect)
    at: dt.datetime | None = None  # absolute time of this turn
    wait: str | None = None  # time since the previous turn, e.g. "2h"

    _at = field_validator("at", mode="before")(_when)

    @field_validator("wait")
    @classmethod
    def _wait(cls, v: str | None) -> str | None:
        if v is not None:
            parse_wait(v)
        return v

    @model_validator(mode="after")
    def _one_clock(self) -> TurnModel:
        if self.at is not None and self.wait is not None:
            raise ValueError("give either 'at' or 'wait', not both")
        return self


class CaseModel(BaseModel):
    model_config = STRICT

    id: str = Field(min_length=1)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    now: dt.datetime
    business: str  # resolved by the loader to a path or "<inline>"
    contact: ContactFixture = Field(default_factory=ContactFixture)
    turns: list[TurnModel] = Field(min_length=1)
    final: Final | None = None

    _now = field_validator("now", mode="before")(_when)


@dataclass(frozen=True)
class LoadedCase:
    """One runnable case: validated, defaults merged, business loaded, turn times fixed."""

    file: Path
    suite: str
    model: CaseModel
    business: Business
    business_source: str  # the path or "<inline>", for reports
    times: tuple[dt.datetime, ...]  # aware UTC, one per turn, non-decreasing

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def tags(self) -> list[str]:
        return self.model.tags

    @property
    def turns(self) -> list[TurnModel]:
        return self.model.turns

    @property
    def final(self) -> Final | None:
        return self.model.final

    def expects(self) -> list[Expect]:
        return [t.expect for t in self.model.turns]


def discover(paths: list[Path]) -> list[Path]:
    """Candidate case files under ``paths``, sorted per argument so runs are reproducible."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise EvalFileError(str(p), None, "path", "no such file or folder")
    unique: dict[Path, Path] = {}
    for f in out:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def load_cases(paths: list[Path]) -> list[LoadedCase]:
    """Every case under ``paths``; duplicate case ids are an error (reports key on them)."""
    cases: list[LoadedCase] = []
    where: dict[str, Path] = {}
    for f in discover(paths):
        for case in load_file(f):
            if case.id in where:
                raise EvalFileError(str(f), case.id, "id", f"duplicate case id (also in {where[case.id]})")
            where[case.id] = f
            cases.append(case)
    return cases


def load_file(path: Path) -> list[LoadedCase]:
    """Cases in one file; [] for a YAML file that is not a case file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(str(path), None, "file", f"cannot read: {exc}") from exc
    if path.suffix == ".jsonl":
        return _load_jsonl(path, text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvalFileError(str(path), None, "file", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or "cases" not in data:
        return []
    unknown = set(data) - {"suite", "defaults", "cases"}
    if unknown:
        raise EvalFileError(str(path), None, sorted(unknown)[0], "unknown top-level key")
    suite = data.get("suite") or path.stem
    defaults = _defaults(path, data.get("defaults"))
    raw_cases = data["cases"]
    if not isinstance(raw_cases, list):
        raise EvalFileError(str(path), None, "cases", "must be a list of cases")
    return [_build(path, str(suite), defaults, raw, i) for i, raw in enumerate(raw_cases)]


def _load_jsonl(path: Path, text: str) -> list[LoadedCase]:
    out: list[LoadedCase] = []
    suite, defaults = path.stem, {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{path}:{n}", None, "line", f"not valid JSON: {exc}") from exc
        if isinstance(raw, dict) and raw and set(raw) <= {"suite", "defaults"}:
            suite = str(raw.get("suite") or suite)
            defaults = _defaults(path, raw.get("defaults"))
            continue
        out.append(_build(path, suite, defaults, raw, len(out), where=f"{path}:{n}"))
    return out


def _defaults(path: Path, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EvalFileError(str(path), None, "defaults", "must be a mapping")
    return raw


def merge(defaults: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """Case values win; mappings merge recursively, everything else is replaced."""
    out = dict(defaults)
    for k, v in case.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _build(path: Path, suite: str, defaults: dict[str, Any], raw: Any, index: int,
           where: str | None = None) -> LoadedCase:
    where = where or str(path)
    if not isinstance(raw, dict):
        raise EvalFileError(where, None, f"cases[{index}]", "a case must be a mapping")
    case_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    data = merge(defaults, raw)
    business, source = _business(path, where, case_id, data.get("business"))
    return build_case(data, business, source=source, path=path, suite=suite, where=where,
                      label=case_id or f"cases[{index}]")


def build_case(data: dict[str, Any], business: Business, *, source: str = "<given>",
               path: Path = Path("<memory>"), suite: str = "memory", where: str | None = None,
               label: str | None = None) -> LoadedCase:
    """Validate one case mapping against an already loaded business.

    Exported and replayed conversations come through here too, so they pass the same checks
    as a case file.
    """
    where = where or str(path)
    try:
        model = CaseModel.model_validate({**data, "business": source}, context={"tz": business.tz})
    except ValidationError as exc:
        raise _file_error(where, label or str(data.get("id")), exc) from exc
    _check_catalogue(where, model, business)
    return LoadedCase(path, suite, model, business, source, _times(where, model))


def _business(path: Path, where: str, case_id: str | None, ref: Any) -> tuple[Business, str]:
    if ref is None:
        raise EvalFileError(where, case_id, "business", "missing (set it on the case or in defaults)")
    target: dict[str, Any] | Path
    if isinstance(ref, dict):
        source, target = "<inline>", ref
    elif isinstance(ref, str):
        resolved = (path.parent / ref).resolve()
        if not resolved.is_file():
            raise EvalFileError(where, case_id, "business", f"business file not found: {ref} ({resolved})")
        source, target = str(resolved), resolved
    else:
        raise EvalFileError(where, case_id, "business", "must be a path or a mapping")
    try:
        return load_business(target), source
    except ConfigurationError as exc:
        raise EvalFileError(where, case_id, "business", str(exc)) from exc


def _file_error(where: str, case_id: str, exc: ValidationError) -> EvalFileError:
    err = exc.errors()[0]
    parts = [p for p in err["loc"] if p != "[key]"]  # pydantic's marker for a bad dict key
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or "case"
    problem = err["msg"]
    if err["type"] == "extra_forbidden":
        problem = "unknown key"
    if isinstance(err.get("input"), int) and loc.endswith("time"):
        problem += ' (quote times in YAML: "15:00", unquoted 15:00 reads as the number 900)'
    more = len(exc.errors()) - 1
    if more:
        problem += f" (+{more} more problem{'s' if more > 1 else ''})"
    return EvalFileError(where, case_id, loc, problem)


def _check_catalogue(where: str, model: CaseModel, business: Business) -> None:
    """Fixture bookings must name a real service and provider, or the fixture is not a fixture."""
    if model.contact is None:
        return
    for i, b in enumerate(model.contact.bookings):
        if business.service(b.service) is None:
            raise EvalFileError(where, model.id, f"contact.bookings[{i}].service",
                                f"unknown service {b.service!r} (business has "
                                f"{', '.join(s.name for s in business.services)})")
        if b.provider is not None and business.provider(b.provider) is None:
            raise EvalFileError(where, model.id, f"contact.bookings[{i}].provider",
                                f"unknown provider {b.provider!r}")


def _times(where: str, model: CaseModel) -> tuple[dt.datetime, ...]:
    """When each turn happens: ``now``, then +1 minute, or the turn's ``at`` / ``wait``."""
    times: list[dt.datetime] = []
    prev: dt.datetime | None = None
    for i, turn in enumerate(model.turns):
        if turn.at is not None:
            at = turn.at
        elif turn.wait is not None:
            at = (prev or model.now) + parse_wait(turn.wait)
        else:
            at = model.now if prev is None else prev + _STEP
        if prev is not None and at < prev:
            raise EvalFileError(where, model.id, f"turns[{i}].at", "earlier than the turn before it")
        times.append(at)
        prev = at
    return tuple(times)
