"""Versioned prompt files: ``prompts/<id>/v<N>.yaml``, loaded by name (``understand@v1``).

A prompt file holds the system template (Jinja2, sandboxed, strict undefined), the model
defaults, the tool names the model may propose and the canary. Its sha256 fingerprint goes
into every trace and cassette so a reviewer can tell exactly which wording produced a call.

Only facts the sender may see reach the template: the business file, today's calendar, the
dialogue state and the sender's own bookings. The sender's phone number is never rendered.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.providers.base import UnderstandRequest
from guardrails.output import CANARY
from textdesk.business import DAYS, Business
from textdesk.errors import ConfigurationError
from tools.schemas import TOOL_MODELS

__all__ = [
    "PROMPTS_DIR",
    "ModelDefaults",
    "PromptSpec",
    "estimate_tokens",
    "load_prompt",
    "prompt_names",
    "render_system",
]

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_NAME = re.compile(r"^(?P<id>[a-z][a-z0-9_-]{0,40})@v(?P<version>[0-9]{1,4})$")
_ENV = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                            keep_trailing_newline=False, autoescape=False)


class ModelDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=400, gt=0, le=4096)


class PromptSpec(BaseModel):
    """One prompt file, validated. ``name`` and ``fingerprint`` are derived on load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: int = Field(ge=1)
    description: str = ""
    model_defaults: ModelDefaults = Field(default_factory=ModelDefaults)
    tools: list[str] = Field(default_factory=list)
    canary: str
    system: str
    fingerprint: str = ""  # sha256 of the file bytes, set by load_prompt

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in TOOL_MODELS]
        if unknown:
            raise ValueError(f"unknown tool names {unknown}; known: {sorted(TOOL_MODELS)}")
        return v

    @field_validator("canary")
    @classmethod
    def _same_canary(cls, v: str) -> str:
        if v != CANARY:  # the output guard looks for guardrails.output.CANARY; keep them one
            raise ValueError("canary must equal guardrails.output.CANARY")
        return v

    @property
    def name(self) -> str:
        return f"{self.id}@v{self.version}"

    @property
    def ref(self) -> str:
        """``understand@v1#1a2b3c4d``: the name plus the file fingerprint, for traces."""
        return f"{self.name}#{self.fingerprint[:8]}"


def _path_for(name: str, root: Path) -> Path:
    m = _NAME.match(name)
    if m is None:
        raise ConfigurationError(f"prompt name {name!r} is not of the form 'understand@v1'")
    return root / m["id"] / f"v{m['version']}.yaml"


@functools.cache
def _load(name: str, root: Path) -> PromptSpec:
    path = _path_for(name, root)
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"prompt {name!r} not found at {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: a prompt file is a YAML mapping")
    try:
        spec = PromptSpec.model_validate({**data, "fingerprint": hashlib.sha256(raw).hexdigest()})
        _ENV.from_string(spec.system)  # syntax errors fail at start-up, not mid-conversation
    except (ValidationError, TemplateError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    if spec.name != name:
        raise ConfigurationError(f"{path}: declares {spec.name!r}, loaded as {name!r}")
    if "{{ canary }}" not in spec.system and spec.canary not in spec.system:
        raise ConfigurationError(f"{path}: the system template must plant the canary")
    return spec


def load_prompt(name: str, root: Path | None = None) -> PromptSpec:
    """Load and validate ``prompts/<id>/v<N>.yaml`` (cached per name and root)."""
    return _load(name, (root or PROMPTS_DIR).resolve())


def prompt_names(prompt_id: str = "understand", root: Path | None = None) -> list[str]:
    """Every version of a prompt on disk, oldest first: ``["understand@v1", "understand@v2"]``."""
    versions = []
    for path in ((root or PROMPTS_DIR) / prompt_id).glob("v*.yaml"):
        if path.stem[1:].isdigit():
            versions.append(int(path.stem[1:]))
    return [f"{prompt_id}@v{v}" for v in sorted(versions)]


def _hours(b: Business) -> str:
    return ", ".join(f"{d} {b.hours.get(d, 'closed')}" for d in DAYS)


def _day(d: dt.date) -> str:
    return f"{d:%a} {d.isoformat()}"


def _options(req: UnderstandRequest) -> str:
    st = req.state
    if st.offers:
        one_day = len({o.date for o in st.offers}) == 1
        listed = " ".join(f"{i}) {'' if one_day else o.date + ' '}{o.time}"
                          + (f" with {o.provider}" if o.provider else "") for i, o in enumerate(st.offers, 1))
        return f"{listed} (on {st.offers[0].date})" if one_day else listed
    return " ".join(f"{i}) {c}" for i, c in enumerate(st.choices, 1))


def template_context(spec: PromptSpec, req: UnderstandRequest) -> dict[str, Any]:
    """The values a system template may use. Documented here, rendered nowhere else."""
    local = req.local_now
    today = local.date()
    return {
        "business": req.business,
        "hours": _hours(req.business),
        "faq": [f.q for f in req.business.faq],
        "today": f"{local:%A} {today.isoformat()}, {local:%H:%M}",
        "days": [_day(today + dt.timedelta(days=i)) for i in range(1, 8)],
        "state": req.state,
        "collected": ", ".join(f"{k}={v}" for k, v in req.state.slots.items()),
        "options": _options(req),
        "bookings": list(req.bookings),
        "tools": spec.tools,
        "canary": spec.canary,
    }


def render_system(spec: PromptSpec, req: UnderstandRequest) -> str:
    """The system prompt for one turn."""
    text = _ENV.from_string(spec.system).render(template_context(spec, req))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def estimate_tokens(text: str) -> int:
    """Rough token count (chars / 4), used only where the API reports no ``usage``."""
    return (len(text) + 3) // 4
