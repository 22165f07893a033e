"""The Litestar application: provider webhooks, health checks, the staff app and its JSON API.

Layers, outermost first: security headers -> request id -> CSRF (double-submit cookie, every
unsafe method except the signed provider and Stripe webhooks) -> session authentication (every
route except /login, static files, webhooks, health, metrics and the schema) -> role guards on
each router/controller -> handlers with a per-request transaction. Exceptions become responses
in ``web.errors``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.response import Response
from litestar.static_files import create_static_files_router
from sqlalchemy import text

from channels.registry import ROUTERS, WEBHOOK_PREFIXES
from integrations.payments.routes import stripe_webhook
from textdesk.metrics import CONTENT_TYPE_LATEST
from textdesk.services import Services
from web.auth import SessionAuthMiddleware, SessionCodec
from web.deps import DEPENDENCIES
from web.errors import EXCEPTION_HANDLERS
from web.request_id import request_id_middleware
from web.routes.admin import AdminController
from web.routes.api import api_router
from web.routes.canned import CannedAdminController, CannedController
from web.routes.deliverability import DeliverabilityController
from web.routes.desk import DeskController
from web.routes.inbox import InboxController
from web.routes.reports import ReportsController
from web.routes.rules import RulesController
from web.routes.session import session_router
from web.routes.traces import TracesController
from web.security import security_headers
from web.slack import SlackNotifier
from web.staff_sessions import SessionPolicy
from web.telemetry import TurnSpans, otlp_provider
from web.templating import template_config
from web.throttle import LoginThrottle

__all__ = ["PUBLIC_PATHS", "create_app"]

log = logging.getLogger("textdesk.web")
STATIC = Path(__file__).parent / "static"
# Reachable without a session (everything else needs one).
PUBLIC_PATHS = [
    *(f"^{prefix}" for prefix in WEBHOOK_PREFIXES),
    "^/healthz$",
    "^/readyz$",
    "^/static/",
    "^/schema",
    "^/login$",
    "^/logout$",
    "^/favicon.ico$",
    "^/stripe/webhook$",
    "^/metrics$",
]


@get("/metrics", opt={"exclude_from_auth": True}, include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Prometheus exposition (scrape from inside your network; it carries no customer data)."""
    # As a header: a text/ media type would get litestar's "; charset=utf-8" on top of Prometheus's own.
    return Response(state.services.pipeline.metrics.render(), headers={"content-type": CONTENT_TYPE_LATEST})


@get("/healthz", sync_to_thread=False, opt={"exclude_from_auth": True}, include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", opt={"exclude_from_auth": True}, include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, str]]:
    try:
        async with state.services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # the database is the only hard dependency
        return Response({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
    return Response({"status": "ready"})


def _derive(secret: str, purpose: str) -> str:
    """Independent keys per use from the one configured secret."""
    return hashlib.sha256(f"textdesk:{purpose}:{secret}".encode()).hexdigest()


def create_app(services: Services, *, debug: bool = False) -> Litestar:
    settings = services.settings
    secret = settings.secret_key.get_secret_value()
    secure = settings.public_url.startswith("https://")

    notifier = (
        SlackNotifier(settings.slack_webhook_url, settings.public_url) if settings.slack_webhook_url else None
    )
    spans = (
        TurnSpans(services.sessions, otlp_provider(settings.otlp_endpoint))
        if settings.otlp_endpoint
        else None
    )
    if notifier is not None:
        services.pipeline.escalation_hooks.append(notifier)
        services.scheduler.alert_hooks.append(notifier)
    if spans is not None:
        services.pipeline.message_hooks.append(spans)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        await services.start()  # crash recovery and the job loop (reminders, retries)
        try:
            yield
        finally:
            if notifier is not None:
                await notifier.aclose()
            if spans is not None:
                await spans.shutdown()
            await services.close()

    state = State(
        {
            "services": services,
            "session_codec": SessionCodec(secret),
            "session_policy": SessionPolicy.from_settings(settings),
            "throttle": LoginThrottle(
                settings.login_max_failures,
                settings.login_ip_max_failures,
                dt.timedelta(minutes=settings.login_lockout_minutes),
            ),
            "autoreplies": services.pipeline.auto_replies,  # the pipeline answers with the same store
            "secure_cookies": secure,
            "slack": notifier,
            "spans": spans,
        }
    )
    return Litestar(
        route_handlers=[
            *ROUTERS,
            stripe_webhook,
            metrics,
            healthz,
            readyz,
            session_router,
            InboxController,
            TracesController,
            ReportsController,
            RulesController,
            AdminController,
            CannedAdminController,
            DeliverabilityController,
            CannedController,
            DeskController,
            api_router,
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False, opt={"exclude_from_auth": True}
            ),
        ],
        state=state,
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        middleware=[request_id_middleware, DefineMiddleware(SessionAuthMiddleware, exclude=PUBLIC_PATHS)],
        before_send=[security_headers],
        csrf_config=CSRFConfig(
            secret=_derive(secret, "csrf"),
            cookie_secure=secure,
            cookie_httponly=True,
            cookie_samesite="lax",
            exclude=[*WEBHOOK_PREFIXES, "/stripe/webhook"],
        ),
        template_config=template_config(
            services.clock, services.business, attempt_limit=services.dispatcher.attempt_limit
        ),
        openapi_config=OpenAPIConfig(
            title="textdesk staff API",
            version="1.0.0",
            path="/schema",
            description="Session-cookie authenticated; log in at /login first.",
        ),
        exception_handlers=EXCEPTION_HANDLERS,
        debug=debug,
        logging_config=None,  # textdesk.logs configures JSON logs; Litestar's default would replace them
        request_max_body_size=64 * 1024,
    )
