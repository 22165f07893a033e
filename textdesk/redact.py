"""PII redaction for traces and logs: phone numbers, emails, card-like numbers."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["redact", "redact_obj"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_PHONE = re.compile(r"(?<![\w])(?:\+?\d[\d\s().-]{7,}\d)(?![\w])")


def _luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn(digits) else m.group(0)


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2})?")


def _phone(m: re.Match[str]) -> str:
    if _DATE_TIME.match(m.group(0).strip()):
        return m.group(0)  # "2026-03-05 15:00" is a date, not a number to hide
    digits = re.sub(r"\D", "", m.group(0))
    return f"[phone …{digits[-2:]}]" if 10 <= len(digits) <= 15 else m.group(0)


def redact(text: str | None) -> str:
    """Mask PII in free text. Keeps the last two phone digits so reviewers can tell numbers apart."""
    if not text:
        return text or ""
    out = _EMAIL.sub("[email]", text)
    out = _CARD.sub(_card, out)
    return _PHONE.sub(_phone, out)


def redact_obj(value: Any) -> Any:
    """Redact every string inside nested dicts and lists."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_obj(v) for v in value]
    return value
