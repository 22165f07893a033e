"""The business file: the facts textdesk may state and the catalogue it books against.

Loaded once from YAML (docs/architecture.md section 3) and validated with pydantic so a typo in a
business file fails at start-up, not in the middle of a customer's conversation.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from textdesk.errors import ConfigurationError

__all__ = ["A2P10DLC", "DAYS", "FAQ", "TWELVE_HOUR_REGIONS", "Business", "Number", "Service", "load_business"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_LOCALE = re.compile(r"^([a-z]{2,3})(?:-([a-z]{2}))?$")
# Regions whose everyday clock is 12 hours ("9:30 AM"). Every other region, and a locale that
# names no region ("fr"), reads 24 hours ("09:30").
TWELVE_HOUR_REGIONS = frozenset({"US", "CA", "AU", "NZ", "IN", "PH", "PK", "BD", "EG", "SA", "MY"})


class Service(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    minutes: int = Field(gt=0, le=24 * 60)
    price: str = ""
    aliases: list[str] = Field(default_factory=list)
    deposit: str | None = None


class FAQ(BaseModel):
    model_config = ConfigDict(frozen=True)

    q: str
    a: str


class Number(BaseModel):
    """The number customers text. ``type`` tells which US registration applies (a long code needs
    an A2P 10DLC campaign); ``textdesk check`` compares it with what the number looks like."""

    model_config = ConfigDict(frozen=True)

    e164: str
    type: Literal["long_code", "toll_free", "short_code"] | None = None


class A2P10DLC(BaseModel):
    """The A2P 10DLC campaign registered for a US long code (carriers filter unregistered traffic).
    Every field is optional here so that ``textdesk check`` can name what is missing."""

    model_config = ConfigDict(frozen=True)

    brand: str = ""
    use_case: str = ""
    sample_messages: list[str] = Field(default_factory=list)
    opt_in_description: str = ""


def _parse_span(value: str) -> tuple[dt.time, dt.time]:
    m = _SPAN.match(value.replace(" ", ""))
    if not m:
        raise ValueError(f"expected 'HH:MM-HH:MM' or 'closed', got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = dt.time(h1 % 24, m1), dt.time(h2 % 24, m2)
    return start, end


class Business(BaseModel):
    """A validated business file."""

    model_config = ConfigDict(frozen=True)

    name: str
    timezone: str
    support: str
    frequency: str = "Msg frequency varies"
    hours: dict[str, str]
    services: list[Service]
    providers: list[str] = Field(default_factory=list)
    faq: list[FAQ] = Field(default_factory=list)
    escalate_topics: list[str] = Field(default_factory=list)
    quiet_hours: str = "21:00-08:00"
    allowed_link_hosts: list[str] = Field(default_factory=list)
    auto_replies: dict[str, str] = Field(default_factory=dict)
    locale: str = "en-US"  # language-REGION; the region picks the clock staff read (hour12)
    opt_in_text: str | None = None  # the consent words shown where customers opt in (R.opt_in_wording)
    number: Number | None = None
    a2p_10dlc: A2P10DLC | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("locale")
    @classmethod
    def _valid_locale(cls, v: str) -> str:
        m = _LOCALE.match(v.strip().replace("_", "-").lower())
        if not m:
            raise ValueError(f"expected a locale like 'en-US' or 'fr', got {v!r}")
        lang, region = m.groups()
        return f"{lang}-{region.upper()}" if region else lang

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, v: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for day, span in v.items():
            key = day.strip().lower()[:3]
            if key not in DAYS:
                raise ValueError(f"unknown day {day!r}")
            text = str(span).strip().lower()
            if text != "closed":
                _parse_span(text)
            out[key] = text
        return out

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hour12(self) -> bool:
        """Whether times are written on a 12-hour clock: by the locale's region (TWELVE_HOUR_REGIONS)."""
        return self.locale.partition("-")[2] in TWELVE_HOUR_REGIONS

    def open_span(self, day: dt.date) -> tuple[dt.time, dt.time] | None:
        """Opening and closing time on ``day``, or None when closed."""
        span = self.hours.get(DAYS[day.weekday()], "closed")
        return None if span == "closed" else _parse_span(span)

    def service(self, name: str) -> Service | None:
        for s in self.services:
            if s.name == name:
                return s
        return None

    def service_vocabulary(self) -> dict[str, str]:
        """Every name and alias (lowercase) mapped to its canonical service name."""
        vocab: dict[str, str] = {}
        for s in self.services:
            vocab[s.name.lower()] = s.name
            for alias in s.aliases:
                vocab[alias.lower()] = s.name
        return vocab

    def provider(self, name: str) -> str | None:
        for p in self.providers:
            if p.lower() == name.strip().lower():
                return p
        return None

    def quiet_span(self) -> tuple[dt.time, dt.time]:
        return _parse_span(self.quiet_hours)


def load_business(source: str | Path | dict[str, Any]) -> Business:
    """Load a business file from a path or an already-parsed mapping."""
    if isinstance(source, dict):
        data = source
        where = "<inline business>"
    else:
        path = Path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigurationError(f"business file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: a business file is a YAML mapping")
    try:
        return Business.model_validate(data)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
