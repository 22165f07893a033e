"""The Jinja environment: templates under web/templates, autoescaped, with a few filters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from textdesk.clock import Clock
from textdesk.phone import VISITOR_PREFIX, is_visitor
from textdesk.redact import redact

__all__ = ["CHANNEL_LABELS", "STATUS_LABELS", "TEMPLATES", "template_config"]

TEMPLATES = Path(__file__).parent / "templates"
STATUS_LABELS = {
    "waiting": "Needs a person",
    "with_person": "With a person",
    "bot": "Bot",
    "resolved": "Resolved",
}
CHANNEL_LABELS = {"sms": "SMS", "whatsapp": "WhatsApp", "webchat": "Web chat", "console": "Console"}
REASON_LABELS = {
    "requested": "Asked for a person",
    "low_confidence": "Bot unsure",
    "billing": "Billing",
    "complaint": "Complaint",
    "sensitive": "Sensitive",
    "repeated_failure": "Bot kept failing",
    "other": "Other",
}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def address(phone: str) -> str:
    """How staff see a contact's address: a web chat visitor who left no number has none."""
    return f"Web visitor {phone.removeprefix(VISITOR_PREFIX)[:6]}" if is_visitor(phone) else phone


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def template_config(clock: Clock, tz: Any) -> TemplateConfig[JinjaTemplateEngine]:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def since(value: dt.datetime | None) -> str:
        return "–" if value is None else duration((clock.now() - _aware(value)).total_seconds())

    def local(value: dt.datetime | str | None, fmt: str = "%b %-d, %H:%M") -> str:
        """Business-local time; ISO strings (e.g. from JSON notes) are accepted too."""
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return str(value)
        return "–" if value is None else _aware(value).astimezone(tz).strftime(fmt)

    def iso(value: dt.datetime | None) -> str:
        return "" if value is None else _aware(value).astimezone(tz).isoformat(timespec="seconds")

    env.filters.update(
        since=since,
        local=local,
        iso=iso,
        redact=redact,
        duration=duration,
        status_label=lambda s: STATUS_LABELS.get(s, s),
        reason_label=lambda r: REASON_LABELS.get(r, r or "–"),
        pct=lambda v: "–" if v is None else f"{v * 100:.0f}%",
        channel_label=lambda c: CHANNEL_LABELS.get(c, c),
        address=address,
    )
    env.globals.update(STATUS_LABELS=STATUS_LABELS, REASON_LABELS=REASON_LABELS)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))
