"""Phone numbers: E.164 normalization and the time zone a number belongs to."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import timezone as pn_timezone

__all__ = [
    "VISITOR_PREFIX",
    "InvalidPhone",
    "is_visitor",
    "normalize_address",
    "normalize_phone",
    "phone_timezones",
]

# A contact reached only in a web chat has no number yet: their address is "visitor:<id>".
VISITOR_PREFIX = "visitor:"
_VISITOR = re.compile(r"visitor:[A-Za-z0-9_-]{8,64}")


class InvalidPhone(ValueError):
    """The sender address is not a phone number we can text."""


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Return ``raw`` in E.164 (``+12125550123``) or raise InvalidPhone.

    Channel prefixes such as ``whatsapp:`` are the channel's business and must be stripped
    before calling this.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("empty phone number")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhone(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_address(raw: str, default_region: str = "US") -> str:
    """A contact's address: a visitor address as it is, anything else as an E.164 number."""
    text = (raw or "").strip()
    if text.startswith(VISITOR_PREFIX):
        if not _VISITOR.fullmatch(text):
            raise InvalidPhone(f"not a visitor address: {raw!r}")
        return text
    return normalize_phone(text, default_region)


def is_visitor(address: str) -> bool:
    return address.startswith(VISITOR_PREFIX)


def phone_timezones(e164: str) -> list[str]:
    """Time zones the number may be in (empty when unknown)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return []
    zones = [z for z in pn_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    return list(zones)
