"""PII redaction for traces and logs: phone numbers, emails, card-like numbers."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["redact", "redact_obj"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Up to 25 digits: a card number often runs on into its CVV or expiry ("4111 ... 1111 123").
_CARD = re.compile(r"\b(?:\d[ -]?){13,25}\b")
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
    """A Luhn-valid 13-19 digit number, alone or followed by more digit groups (CVV, expiry).

    Only prefixes that end where the writer put a space or dash count, so two phone numbers side
    by side are not read as a card by the chance of a valid checksum."""
    raw = m.group(0).strip()
    digits = re.sub(r"\D", "", raw)
    ends = {len(digits)}
    count = 0
    for ch in raw:
        if ch.isdigit():
            count += 1
        else:
            ends.add(count)
    if any(13 <= n <= 19 and _luhn(digits[:n]) for n in ends):
        return "[card]" + (" " if m.group(0).endswith(" ") else "")
    return m.group(0)


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2})?")


def _phone(m: re.Match[str]) -> str:
    if _DATE_TIME.match(m.group(0).strip()):
        return m.group(0)  # "2026-03-05 15:00" is a date, not a number to hide
    digits = re.sub(r"\D", "", m.group(0))
    if 10 <= len(digits) <= 15:
        return f"[phone …{digits[-2:]}]"
    parts = m.group(0).split()
    if len(digits) > 15 and len(parts) > 1:  # "2125550123 6465550199": two numbers side by side
        return " ".join(_PHONE.sub(_phone, p) for p in parts)
    return m.group(0)


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
