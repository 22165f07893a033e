"""Integration settings (``TEXTDESK_*``), meant to become part of textdesk's one Settings object.

``textdesk.settings.Settings`` can inherit them (``class Settings(IntegrationSettings)``) so the
CLI still builds one object; the factories in ``integrations.factory`` take any object with
these fields. Nothing here reads the environment by itself apart from pydantic-settings at the
entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["IntegrationSettings"]


class IntegrationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEXTDESK_", env_file=None, extra="ignore")

    # Calendar -------------------------------------------------------------------------------------
    calendar: Literal["builtin", "caldav", "google"] = "builtin"
    caldav_url: str | None = None
    caldav_username: str | None = None
    caldav_password: SecretStr | None = None
    caldav_calendar: str | None = None  # display name, when caldav_url is the server/principal URL
    caldav_provider_calendars: dict[str, str] = Field(default_factory=dict)  # JSON: provider -> URL/name

    google_calendar_id: str = "primary"
    google_token: SecretStr | None = None  # a pre-issued access token
    google_refresh_token: SecretStr | None = None
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_service_account_file: Path | None = None  # needs the 'cryptography' package
    google_subject: str | None = None  # domain-wide delegation: the user to act as
    google_provider_calendars: dict[str, str] = Field(default_factory=dict)  # JSON: provider -> calendar id
    calendar_cache_s: float = 60.0  # how old an external calendar's busy view may be when offering times

    # CRM ------------------------------------------------------------------------------------------
    crm_webhook_url: str | None = None
    crm_webhook_secret: SecretStr | None = None
    hubspot_token: SecretStr | None = None
    crm_queue_size: int = 1000

    # Payments -------------------------------------------------------------------------------------
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_payment_link: str | None = None  # a fixed https://buy.stripe.com/... link instead of Checkout
    stripe_currency: str = "usd"
    stripe_success_url: str | None = None  # default: <public_url>/paid
    stripe_cancel_url: str | None = None
    deposit_hold_minutes: int = 30

    # WhatsApp -------------------------------------------------------------------------------------
    whatsapp_from: str | None = None  # the WhatsApp sender, E.164 (with or without "whatsapp:")

    integration_timeout_s: float = 10.0
