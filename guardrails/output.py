"""Output guard: every outgoing message is checked before it is stored for sending.

Checks (in order): system-prompt canary and prompt fragments, internal identifiers, links
outside the business allow-list, other people's phone numbers or emails, segment budget.
A blocked message is replaced by a safe reply; the verdict goes into the trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from textdesk.business import Business
from textdesk.segments import count_segments, fit_to_segments

__all__ = ["CANARY", "OutputGuard", "OutputVerdict", "host_allowed", "link_hosts"]

# Planted in every system prompt (prompts/*.yaml use it); seeing it in output means a leak.
CANARY = "td-canary-7f3a9c"
_PROMPT_FRAGMENTS = ("system prompt", "you are textdesk", "my instructions", "tool schema", "json schema")
_INTERNAL = re.compile(r"\b(?:bk|msg|ct)_[0-9a-f]{8,}\b|\bcontact_id\b|\bbooking_id\b|\btraceback\b", re.I)
_URL = re.compile(r"\b(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?:/[^\s]*)?", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
_RAW_HOST = re.compile(r"\bhttps?://(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\])", re.I)


def link_hosts(text: str) -> list[str]:
    """The host of every link in ``text`` (emails, bare numbers like "Mar.4" and "10.30", and
    times like "9.am" are not links), in order."""
    out = []
    for m in _URL.finditer(_EMAIL.sub("", text)):
        host = m.group(1)
        if re.fullmatch(r"\d+(\.\d+)+", host) or host.split(".")[-1].lower() in {"am", "pm"}:
            continue
        out.append(host)
    return out


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """``host`` is an allowed host or a subdomain of one."""
    host = host.lower()
    return any(host == h.lower() or host.endswith("." + h.lower()) for h in allowed)


@dataclass(frozen=True)
class OutputVerdict:
    name: str
    triggered: bool
    reason: str
    replacement: str | None = None
    details: dict[str, str] = field(default_factory=dict)


class OutputGuard:
    def __init__(self, business: Business, max_segments: int = 3) -> None:
        self.business = business
        self.max_segments = max_segments
        self._allowed_digits = {re.sub(r"\D", "", m) for m in _PHONE.findall(business.support)}
        self._allowed_hosts = {h.lower() for h in business.allowed_link_hosts}
        self._safe = f"Sorry, something went wrong on our side. Reply HUMAN to reach {business.name}."

    def _host_ok(self, host: str) -> bool:
        return host_allowed(host, self._allowed_hosts)

    def check(self, text: str, own: frozenset[str] = frozenset()) -> OutputVerdict:
        """Check one outgoing message. ``own`` holds the recipient's own email and phone digits,
        which the bot may repeat back to them (never anyone else's)."""
        low = text.lower()
        if CANARY in low or any(f in low for f in _PROMPT_FRAGMENTS):
            return OutputVerdict("output", True, "leak.system_prompt", self._safe)
        if _INTERNAL.search(text):
            return OutputVerdict("output", True, "leak.internal_id", self._safe)
        if _RAW_HOST.search(text):
            return OutputVerdict("output", True, "link.raw_host", self._safe)
        for host in link_hosts(text):
            if not self._host_ok(host):
                return OutputVerdict("output", True, "link.not_allowed", self._safe, {"host": host})
        for m in _EMAIL.finditer(text):
            if not self._host_ok(m.group(1)) and m.group(0).lower() not in own:
                return OutputVerdict("output", True, "pii.email", self._safe)
        for m in _PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            mine = any(d.endswith(digits[-10:]) for d in own if d.isdigit() and len(d) >= 10)
            if len(digits) >= 10 and digits not in self._allowed_digits and not mine:
                return OutputVerdict("output", True, "pii.phone", self._safe)
        if count_segments(text).segments > self.max_segments:
            return OutputVerdict(
                "output", True, "segments.over_budget", fit_to_segments(text, self.max_segments)
            )
        return OutputVerdict("output", False, "pass")
