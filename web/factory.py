"""Entry point for `uvicorn --factory` (one per worker process): settings from the environment."""

from __future__ import annotations

from litestar import Litestar

from textdesk.logs import configure_logging
from textdesk.services import build_services
from textdesk.settings import Settings
from web.app import create_app

__all__ = ["app"]


def app() -> Litestar:
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(build_services(settings))
