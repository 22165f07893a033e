"""The Litestar application: channels' webhooks, health, and (later) the staff app and API."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.response import Response
from sqlalchemy import text

from channels.twilio_routes import twilio_router
from textdesk.services import Services

__all__ = ["create_app"]

log = logging.getLogger("textdesk.web")


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(state: State) -> Response[dict[str, str]]:
    try:
        async with state.services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # the database is the only hard dependency
        return Response({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
    return Response({"status": "ready"})


def _internal_error(request: Any, exc: Exception) -> Response[str]:
    """Last resort: log, and never leak a stack trace. Twilio gets an empty TwiML-compatible 500."""
    if isinstance(exc, HTTPException):
        return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
    log.exception("web.unhandled", exc_info=exc)
    return Response("internal error", status_code=500, media_type="text/plain")


def create_app(services: Services, *, debug: bool = False) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await services.close()

    return Litestar(
        route_handlers=[twilio_router, healthz, readyz],
        state=State({"services": services}),
        lifespan=[lifespan],
        exception_handlers={Exception: _internal_error},
        debug=debug,
        request_max_body_size=64 * 1024,
    )
