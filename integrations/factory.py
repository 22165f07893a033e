"""Build integrations from settings, once, at start-up. Misconfiguration raises ConfigurationError here,
before the first customer message, never in the middle of a turn."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations._http import make_client
from integrations.calendar.base import CalendarAdapter
from integrations.calendar.builtin import BuiltinCalendar
from integrations.calendar.cache import CachingCalendar
from integrations.calendar.caldav_adapter import CalDAVCalendar, CalDAVConfig
from integrations.calendar.google import GoogleCalendar, GoogleCalendarConfig
from integrations.calendar.google_auth import RefreshingToken, ServiceAccountToken, StaticToken, TokenSource
from integrations.crm.hubspot import HubSpotDestination
from integrations.crm.sink import Destination, EventSink, NullSink, QueueSink
from integrations.crm.webhook import WebhookDestination
from integrations.payments.idempotency import SeenEvents
from integrations.payments.links import host_allowed
from integrations.payments.stripe import StripePayments, StripeWebhook
from integrations.settings import IntegrationSettings
from textdesk.business import Business
from textdesk.clock import Clock
from textdesk.errors import ConfigurationError

__all__ = ["make_calendar", "make_event_sink", "make_payments", "make_stripe_webhook"]


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else None


def _google_tokens(cfg: IntegrationSettings, http: httpx.AsyncClient, clock: Clock | None) -> TokenSource:
    if cfg.google_service_account_file is not None:
        try:
            info = json.loads(Path(cfg.google_service_account_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the Google service account key: {exc}") from exc
        return ServiceAccountToken(http, info, subject=cfg.google_subject, clock=clock)
    refresh = _secret(cfg.google_refresh_token)
    if refresh:
        client_id, client_secret = cfg.google_client_id, _secret(cfg.google_client_secret)
        if not client_id or not client_secret:
            raise ConfigurationError(
                "TEXTDESK_GOOGLE_REFRESH_TOKEN needs TEXTDESK_GOOGLE_CLIENT_ID and "
                "TEXTDESK_GOOGLE_CLIENT_SECRET"
            )
        return RefreshingToken(
            http,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh,
            access_token=_secret(cfg.google_token),
            clock=clock,
        )
    token = _secret(cfg.google_token)
    if token:
        return StaticToken(token)
    raise ConfigurationError(
        "TEXTDESK_CALENDAR=google needs TEXTDESK_GOOGLE_REFRESH_TOKEN (with client id "
        "and secret), TEXTDESK_GOOGLE_SERVICE_ACCOUNT_FILE or TEXTDESK_GOOGLE_TOKEN"
    )


def make_calendar(
    cfg: IntegrationSettings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    business: Business,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
) -> CalendarAdapter:
    unknown = [
        p
        for p in {**cfg.caldav_provider_calendars, **cfg.google_provider_calendars}
        if business.provider(p) is None
    ]
    if unknown:
        raise ConfigurationError(f"provider calendars name unknown providers: {', '.join(sorted(unknown))}")
    if cfg.calendar == "builtin":
        return BuiltinCalendar(sessions)
    if cfg.calendar == "caldav":
        if not cfg.caldav_url:
            raise ConfigurationError("TEXTDESK_CALENDAR=caldav needs TEXTDESK_CALDAV_URL")
        config = CalDAVConfig(
            url=cfg.caldav_url,
            username=cfg.caldav_username,
            password=_secret(cfg.caldav_password),
            calendar=cfg.caldav_calendar,
            provider_calendars=dict(cfg.caldav_provider_calendars),
            timeout=cfg.integration_timeout_s,
        )
        return _cached(
            CalDAVCalendar(config, business.tz, providers=business.providers, clock=clock), cfg, clock
        )
    client = http or make_client(cfg.integration_timeout_s)
    google = GoogleCalendar(
        GoogleCalendarConfig(cfg.google_calendar_id, dict(cfg.google_provider_calendars)),
        _google_tokens(cfg, client, clock),
        business.tz,
        providers=business.providers,
        http=client,
    )
    return _cached(google, cfg, clock)


def _cached(calendar: CalendarAdapter, cfg: IntegrationSettings, clock: Clock | None) -> CalendarAdapter:
    if cfg.calendar_cache_s <= 0:
        return calendar
    return CachingCalendar(calendar, ttl=dt.timedelta(seconds=cfg.calendar_cache_s), clock=clock)


def make_event_sink(cfg: IntegrationSettings, *, clock: Clock | None = None) -> EventSink:
    destinations: list[Destination] = []
    if cfg.crm_webhook_url:
        secret = _secret(cfg.crm_webhook_secret)
        if not secret:
            raise ConfigurationError("TEXTDESK_CRM_WEBHOOK_URL needs TEXTDESK_CRM_WEBHOOK_SECRET")
        destinations.append(
            WebhookDestination(
                cfg.crm_webhook_url, secret, clock=clock, http=make_client(cfg.integration_timeout_s)
            )
        )
    hubspot = _secret(cfg.hubspot_token)
    if hubspot:
        destinations.append(HubSpotDestination(hubspot, http=make_client(cfg.integration_timeout_s)))
    if not destinations:
        return NullSink()
    return QueueSink(destinations, maxsize=cfg.crm_queue_size)


def make_payments(
    cfg: IntegrationSettings, *, business: Business, public_url: str, clock: Clock | None = None
) -> StripePayments | None:
    key = _secret(cfg.stripe_secret_key)
    if not key and not cfg.stripe_payment_link:
        return None
    link_host = (
        urlsplit(cfg.stripe_payment_link).hostname if cfg.stripe_payment_link else "checkout.stripe.com"
    )
    if not link_host or not host_allowed(link_host, business.allowed_link_hosts):
        raise ConfigurationError(
            f"Stripe links are on {link_host}, which the business file's allowed_link_hosts does not list: "
            "add it, or textdesk would refuse to send every deposit link"
        )
    base = public_url.rstrip("/")
    return StripePayments(
        key,
        allowed_hosts=business.allowed_link_hosts,
        success_url=cfg.stripe_success_url or f"{base}/paid?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=cfg.stripe_cancel_url,
        payment_link=cfg.stripe_payment_link,
        currency=cfg.stripe_currency,
        clock=clock,
        http=make_client(cfg.integration_timeout_s),
    )


def make_stripe_webhook(
    cfg: IntegrationSettings, *, seen: SeenEvents | None = None, clock: Clock | None = None
) -> StripeWebhook | None:
    secret = _secret(cfg.stripe_webhook_secret)
    if not secret:
        return None
    return StripeWebhook(secret, seen, clock=clock)
