"""A missing PostgreSQL or chromium skips its tests on a laptop, and fails them under CI."""

from __future__ import annotations

import pytest

from tests.conftest import require


@pytest.mark.parametrize("value", [None, "", "0", "false", "no"])
def test_a_missing_service_skips_with_its_reason_outside_ci(monkeypatch: pytest.MonkeyPatch,
                                                             value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"^PostgreSQL is not running at 127\.0\.0\.1:5432$"):
        require(False, "PostgreSQL is not running at 127.0.0.1:5432")


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"^chromium is missing \(CI is set, so this fails"):
        require(False, "chromium is missing")


def test_a_present_service_neither_skips_nor_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require(True, "never shown")
