"""The Jinja environment: templates under web/templates, autoescaped, with a few filters.

Times are shown in the business's zone, on the clock its locale reads (``Business.hour12``: "9:30 AM",
as the bot writes it, or "09:30"), with the zone's abbreviation ("Mar 2, 9:00 AM EST"). States are
shown in plain words (``*_LABELS``), never as stored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from agent.timeparse import format_date, format_time
from textdesk.business import Business
from textdesk.clock import Clock, as_aware
from textdesk.phone import VISITOR_PREFIX, is_visitor
from textdesk.redact import redact
from web.risk import RISK_LABELS
from web.trace_view import pretty_json

__all__ = [
    "CHANNEL_LABELS",
    "CONSENT_LABELS",
    "DELIVERY_LABELS",
    "STATE_LABELS",
    "STATUS_LABELS",
    "TEMPLATES",
    "local_time",
    "template_config",
]

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
CONSENT_LABELS = {"unknown": "hasn't opted in yet", "opted_in": "opted in", "opted_out": "opted out (STOP)"}
# The inbox's state filters, in plain words.
STATE_LABELS = {"at_risk": "At risk", "opted_out": "Opted out", "blocked": "Blocked by the screen"}
# An outbound message's state, as staff read it ("failed" only when nothing more will be tried).
DELIVERY_LABELS = {
    "queued": "queued",
    "sending": "sending",
    "retrying": "retrying",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "not delivered",
    "failed": "failed",
    "blocked": "not sent (opted out)",
    "cancelled": "cancelled",
}
# ``channels.base.DeliveryError``: each provider's codes are mapped into these in its channel.
DELIVERY_ERROR_WORDS = {
    "opted_out": "the customer opted out with their carrier",
    "invalid_number": "the number is not a valid mobile number",
    "carrier_filtered": "the carrier filtered the message",
    "rate_limited": "the provider is rate limiting us",
    "unreachable": "the provider could not be reached",
    "rejected": "the provider rejected the message",
    "auth": "the provider refused our credentials",
    "unknown": "the provider gave no reason",
}



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


def _zone(at: dt.datetime) -> str:
    name = at.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name  # zones without an abbreviation say "+03"


def local_time(value: dt.datetime | str | None, business: Business, style: str = "short") -> str:
    """``value`` in the business's zone and clock. ISO strings (e.g. from JSON notes) are accepted.

    Styles: ``short`` "Mar 2, 9:00 AM EST"; ``day`` "Mon Mar 2, 9:00 AM EST" (as the bot names a
    day); ``full`` "Mon Mar 2 2026, 9:00:05 AM EST"; ``date`` "Mar 2, 2026".
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value is None:
        return "–"
    at = as_aware(value).astimezone(business.tz)
    day = format_date(at.date())  # "Mon Mar 2": the bot's own tables, not the process locale
    month_day = day.partition(" ")[2]
    if style == "date":
        return f"{month_day}, {at.year}"
    clock = format_time(at.time(), hour12=business.hour12, seconds=style == "full")
    if style == "short":
        return f"{month_day}, {clock} {_zone(at)}"
    if style == "day":
        return f"{day}, {clock} {_zone(at)}"
    if style == "full":
        return f"{day} {at.year}, {clock} {_zone(at)}"
    raise ValueError(f"unknown time style {style!r}")


def template_config(
    clock: Clock, business: Business, attempt_limit: int = 20
) -> TemplateConfig[JinjaTemplateEngine]:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def since(value: dt.datetime | None) -> str:
        return "–" if value is None else duration((clock.now() - as_aware(value)).total_seconds())

    def local(value: dt.datetime | str | None, style: str = "short") -> str:
        return local_time(value, business, style)

    def field_value(value: str, name: str) -> str:
        """A collected field (web.handoff) as staff read it: a date or time as the bot says it."""
        try:
            if name == "Date":
                return format_date(dt.date.fromisoformat(value))
            if name == "Time":
                return format_time(dt.time.fromisoformat(value), hour12=business.hour12)
        except ValueError:
            pass
        return value

    def iso(value: dt.datetime | None) -> str:
        return "" if value is None else as_aware(value).astimezone(business.tz).isoformat(timespec="seconds")

    env.filters.update(
        since=since,
        local=local,
        field_value=field_value,
        iso=iso,
        redact=redact,
        duration=duration,
        status_label=lambda s: STATUS_LABELS.get(s, s),
        reason_label=lambda r: REASON_LABELS.get(r, r or "–"),
        consent_label=lambda c: CONSENT_LABELS.get(c, c),
        pct=lambda v: "–" if v is None else f"{v * 100:.0f}%",
        channel_label=lambda c: CHANNEL_LABELS.get(c, c),
        delivery_label=lambda s: DELIVERY_LABELS.get(s, s),
        risk_label=lambda r: RISK_LABELS.get(r, r),
        delivery_reason=lambda e: DELIVERY_ERROR_WORDS.get(e, e or "no reason given"),
        address=address,
        pretty_json=pretty_json,
    )
    env.globals.update(STATUS_LABELS=STATUS_LABELS, REASON_LABELS=REASON_LABELS, attempt_limit=attempt_limit)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))
