"""The business file's locale picks the clock staff read: 12 hours in TWELVE_HOUR_REGIONS, else 24."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from textdesk.business import load_business
from textdesk.errors import ConfigurationError
from textdesk.settings import DEMO_BUSINESS_FILE


def salon(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO_BUSINESS_FILE.read_text(encoding="utf-8"))
    return {**data, **over}


@pytest.mark.parametrize(
    ("locale", "normalised", "hour12"),
    [("en-US", "en-US", True), ("en_au", "en-AU", True), ("en-GB", "en-GB", False),
     ("de-DE", "de-DE", False), ("fr", "fr", False)],
)
def test_locale_is_normalised_and_picks_the_clock(locale: str, normalised: str, hour12: bool) -> None:
    b = load_business(salon(locale=locale))
    assert (b.locale, b.hour12) == (normalised, hour12)


def test_a_business_file_without_a_locale_reads_12_hours_like_the_bot() -> None:
    data = salon()
    data.pop("locale", None)
    assert load_business(data).hour12


def test_a_malformed_locale_fails_at_load() -> None:
    with pytest.raises(ConfigurationError, match="locale"):
        load_business(salon(locale="English (US)"))
