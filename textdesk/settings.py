"""Settings: one object built at the entry point (CLI) and passed down.

Nothing below the CLI reads environment variables; everything comes from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from integrations.settings import IntegrationSettings

__all__ = ["DEMO_BUSINESSES", "DEMO_BUSINESS_FILE", "PLACEHOLDER_SECRETS", "Settings", "business_path"]

DEMO_DIR = Path(__file__).parent / "demo"
# The demo businesses that ship with textdesk, each its own kind: any of these names works where
# a business file path does (TEXTDESK_BUSINESS_FILE=wellness, textdesk serve --business clinic).
DEMO_BUSINESSES = ("salon", "wellness", "clinic", "repair")
DEMO_BUSINESS_FILE = DEMO_DIR / "salon.yaml"


def business_path(value: str | Path) -> Path:
    """A business file path, or the name of a shipped demo business."""
    text = str(value)
    if text in DEMO_BUSINESSES:
        return DEMO_DIR / f"{text}.yaml"
    return Path(value)


# Secrets whose shipped default is a placeholder anyone can read here: left as is, anyone can sign
# staff sessions (secret_key) or forge Twilio webhooks (twilio_auth_token). `serve` warns.
PLACEHOLDER_SECRETS = ("secret_key", "twilio_auth_token")


class Settings(IntegrationSettings):
    """Every ``TEXTDESK_*`` setting (see the README; integrations' own in docs/integrations.md)."""

    model_config = SettingsConfigDict(env_prefix="TEXTDESK_", env_file=None, extra="ignore")

    def placeholder_secrets(self) -> list[str]:
        """The environment variables of PLACEHOLDER_SECRETS still at their shipped placeholder."""
        return [f"TEXTDESK_{name.upper()}" for name in PLACEHOLDER_SECRETS
                if getattr(self, name) == type(self).model_fields[name].default]

    @field_validator("business_file", mode="before")
    @classmethod
    def _demo_name(cls, v: object) -> object:
        return business_path(v) if isinstance(v, (str, Path)) else v

    database_url: str = "sqlite+aiosqlite:///textdesk.db"
    business_file: Path = DEMO_BUSINESS_FILE  # a path, or a demo name: salon | wellness | clinic | repair
    public_url: str = "http://127.0.0.1:8000"
    validate_signatures: bool = True

    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("dev-auth-token")
    twilio_from: str = "+15005550006"
    twilio_api_base: str = "https://api.twilio.com"
    # Which provider carries SMS that textdesk starts (reminders, notices, an agent's first text);
    # replies always go back through the provider the customer wrote to.
    sms_provider: Literal["twilio", "vonage", "plivo", "messagebird"] = "twilio"
    # Vonage SMS API: signed webhooks (signature secret + method) and sending with the key/secret.
    vonage_api_key: str = ""
    vonage_api_secret: SecretStr = SecretStr("")
    vonage_signature_secret: SecretStr = SecretStr("")
    vonage_signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512"] = "sha256"
    vonage_from: str = ""
    vonage_rest_host: str = "rest.nexmo.com"
    # Plivo: X-Plivo-Signature-V3 is an HMAC with the auth token; sending with id + token.
    plivo_auth_id: str = ""
    plivo_auth_token: SecretStr = SecretStr("")
    plivo_from: str = ""
    plivo_api_base: str = "https://api.plivo.com"
    # MessageBird (Bird): webhooks carry a JWT signed with the signing key; sending with the access key.
    messagebird_access_key: SecretStr = SecretStr("")
    messagebird_signing_key: SecretStr = SecretStr("")
    messagebird_from: str = ""
    messagebird_api_base: str = "https://rest.messagebird.com"
    # Web chat: pages allowed to embed the widget (CORS origins); empty = same origin only.
    webchat_origins: list[str] = Field(default_factory=list)
    webchat_token_days: int = 30  # how long a visitor's token (their conversation) lasts

    llm_provider: Literal["offline", "openai", "replay", "hybrid"] = "offline"
    llm_base_url: str = "https://api.openai.com/v1"
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TEXTDESK_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_timeout_s: float = 7.0
    llm_temperature: float = 0.0
    llm_max_retries: int = 2
    prompt: str = "understand@v1"
    cassette_dir: Path = Path("evals/cassettes")

    clarify_threshold: float = 0.55
    hybrid_threshold: float = 0.80
    injection_threshold: float = 0.80
    blocked_escalate_after: int = 3

    turn_budget_s: float = 12.0
    rate_limit_per_minute: int = 8
    rate_limit_per_hour: int = 60
    global_rate_limit_per_minute: int = 600
    max_body_chars: int = 1600
    # Turns processed at once per process; keep it below the database pool size (10 + 20).
    max_concurrent_turns: int = 12
    # Worker processes sharing the database (`textdesk serve --workers N` sets it). On SQLite,
    # above 1 each contact's turn also takes a lease row so processes answer one contact at a
    # time; one process needs only its own in-memory lock (the lease costs ~25% of the rule path).
    workers: int = Field(default=1, ge=1)

    secret_key: SecretStr = SecretStr("change-me-in-production-please")
    slack_webhook_url: str | None = None
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    retention_days: int = 0
    # Cost guard: daily LLM tokens per contact and overall; past either, understanding degrades
    # to the offline provider (0 = no limit).
    llm_daily_tokens_per_contact: int = 20_000
    llm_daily_tokens_total: int = 2_000_000
    # Messages textdesk starts: reminders (hours before the appointment), follow-ups, caps.
    reminder_offsets_h: list[float] = Field(default_factory=lambda: [24.0, 2.0])
    no_show_followup: bool = True
    started_messages_per_day: int = 3
    scheduler_poll_s: float = 5.0
    scheduler_enabled: bool = True
    # A conversation a person holds whose customer has waited this long gets the team alerted (and,
    # after hours, a holding message to the customer). 0 turns it off.
    idle_claim_minutes: int = Field(default=15, ge=0)

    # Staff web app (web/).
    session_hours: int = 12  # absolute lifetime of a staff session
    # A session unused this long ends. Last use is recorded at most once a minute, hence >= 2.
    session_idle_minutes: int = Field(default=60, ge=2)
    login_max_failures: int = 5  # per account, within login_lockout_minutes
    login_ip_max_failures: int = 20  # per client IP (offices share one), within login_lockout_minutes
    login_lockout_minutes: int = 15
    saved_cases_dir: Path = Path("evals/saved")  # reviewers' "save as eval case" files
    auto_replies_file: Path | None = None  # admin-edited keyword auto-replies (JSON); None = next to the DB
    # LLM: cassettes record/replay model responses by request fingerprint (agent/providers/cassette.py);
    # the whole understanding step (retries + one repair) must end within llm_total_budget_s.
    # turn_budget_s is how long an inline-answering webhook waits (a channel caps it to its window).
    cassette_mode: Literal["off", "record", "replay"] = "off"
    llm_total_budget_s: float = 10.0
