"""Building integrations from settings: defaults, environment parsing, and start-up errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.calendar.builtin import BuiltinCalendar
from integrations.calendar.cache import CachingCalendar
from integrations.calendar.caldav_adapter import CalDAVCalendar
from integrations.calendar.google import GoogleCalendar
from integrations.calendar.google_auth import RefreshingToken, StaticToken
from integrations.crm.sink import NullSink, QueueSink
from integrations.factory import make_calendar, make_event_sink, make_payments, make_stripe_webhook
from integrations.payments.stripe import StripePayments, StripeWebhook
from integrations.settings import IntegrationSettings
from store.db import make_engine, make_sessionmaker
from textdesk.business import Business, load_business
from textdesk.errors import ConfigurationError
from textdesk.settings import DEMO_BUSINESS_FILE


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def business() -> Business:
    return load_business(DEMO_BUSINESS_FILE)


def _cal(sessions: Any, business: Business, **over: Any) -> Any:
    return make_calendar(IntegrationSettings(**over), sessions=sessions, business=business)


def test_defaults_are_builtin_and_nothing_else(sessions: Any, business: Business) -> None:
    cfg = IntegrationSettings()
    assert isinstance(make_calendar(cfg, sessions=sessions, business=business), BuiltinCalendar)
    assert isinstance(make_event_sink(cfg), NullSink)
    assert make_payments(cfg, business=business, public_url="https://sms.example.com") is None
    assert make_stripe_webhook(cfg) is None


def test_environment_names(monkeypatch: pytest.MonkeyPatch, sessions: Any, business: Business) -> None:
    monkeypatch.setenv("TEXTDESK_CALENDAR", "caldav")
    monkeypatch.setenv(
        "TEXTDESK_CALDAV_URL", "https://cloud.example.com/remote.php/dav/calendars/salon/personal/"
    )
    monkeypatch.setenv("TEXTDESK_CALDAV_USERNAME", "salon")
    monkeypatch.setenv("TEXTDESK_CALDAV_PASSWORD", "app-password")
    monkeypatch.setenv(
        "TEXTDESK_CALDAV_PROVIDER_CALENDARS", json.dumps({"Kim": "https://cloud.example.com/k/"})
    )
    monkeypatch.setenv("TEXTDESK_CRM_WEBHOOK_URL", "https://crm.example.com/hook")
    monkeypatch.setenv("TEXTDESK_CRM_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("TEXTDESK_HUBSPOT_TOKEN", "pat-na1-x")
    monkeypatch.setenv("TEXTDESK_STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.setenv("TEXTDESK_STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("TEXTDESK_WHATSAPP_FROM", "+14155238886")
    cfg = IntegrationSettings()
    assert cfg.caldav_provider_calendars == {"Kim": "https://cloud.example.com/k/"}
    assert cfg.whatsapp_from == "+14155238886"
    cal = make_calendar(cfg, sessions=sessions, business=business)
    assert isinstance(cal, CachingCalendar) and isinstance(cal.inner, CalDAVCalendar)
    sink = make_event_sink(cfg)
    assert isinstance(sink, QueueSink) and [d.name for d in sink.destinations] == ["webhook", "hubspot"]
    stripe_ok = business.model_copy(
        update={"allowed_link_hosts": ["maplesalon.example", "checkout.stripe.com"]}
    )
    assert isinstance(
        make_payments(cfg, business=stripe_ok, public_url="https://sms.example.com/"), StripePayments
    )
    with pytest.raises(ConfigurationError, match=r"checkout\.stripe\.com"):  # links it could never send
        make_payments(cfg, business=business, public_url="https://sms.example.com/")
    assert isinstance(make_stripe_webhook(cfg), StripeWebhook)


def test_google_token_sources(sessions: Any, business: Business) -> None:
    cal = _cal(sessions, business, calendar="google", google_token="ya29.x", calendar_cache_s=0)
    assert isinstance(cal, GoogleCalendar) and isinstance(cal.tokens, StaticToken)
    cal = _cal(
        sessions,
        business,
        calendar="google",
        google_refresh_token="1//r",
        google_client_id="id",
        google_client_secret="sec",
    )
    assert isinstance(cal.inner.tokens, RefreshingToken)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"calendar": "caldav"}, "TEXTDESK_CALDAV_URL"),
        ({"calendar": "google"}, "TEXTDESK_GOOGLE_REFRESH_TOKEN"),
        ({"calendar": "google", "google_refresh_token": "1//r"}, "CLIENT_ID"),
        ({"caldav_provider_calendars": {"Nobody": "https://x/"}}, "unknown providers"),
    ],
)
def test_misconfiguration_fails_at_start_up(
    sessions: Any, business: Business, over: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        _cal(sessions, business, **over)


def test_service_account_file(tmp_path: Path, sessions: Any, business: Business) -> None:
    from jwt.algorithms import has_crypto

    key = tmp_path / "sa.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "td@p.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
            }
        )
    )
    if has_crypto:  # pragma: no cover - depends on the optional package
        assert _cal(sessions, business, calendar="google", google_service_account_file=key).name == "google"
    else:
        with pytest.raises(ConfigurationError, match="cryptography"):
            _cal(sessions, business, calendar="google", google_service_account_file=key)
    with pytest.raises(ConfigurationError, match="cannot read"):
        _cal(sessions, business, calendar="google", google_service_account_file=tmp_path / "missing.json")


def test_webhook_without_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SECRET"):
        make_event_sink(IntegrationSettings(crm_webhook_url="https://crm.example.com/hook"))
