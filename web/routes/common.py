"""Small helpers the route modules share."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from web.auth import Staff

__all__ = ["MAX_ID", "client_ip", "in_range", "page", "safe_next", "see_other"]

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


def page(name: str, staff: Staff | None, status_code: int = 200, **context: Any) -> Template:
    """A full page: every template gets the signed-in user for the navigation."""
    return Template(template_name=name, context={"staff": staff, **context}, status_code=status_code)


def see_other(path: str) -> Redirect:
    """Post/redirect/get; with hx-boost, htmx follows it inside the XHR and pushes the new URL."""
    return Redirect(path=path, status_code=303)


def safe_next(value: str | None) -> str | None:
    """Only local paths: ``/inbox`` yes, ``//evil.example`` and ``https://...`` no."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    return value


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The peer address. Behind a reverse proxy run uvicorn with --proxy-headers so this is the
    client, not the proxy (otherwise every login shares one per-IP budget)."""
    return request.client.host if request.client else "unknown"


def in_range(row_id: int | None) -> bool:
    """A larger id cannot exist, and would be a driver error (500) rather than a 404."""
    return row_id is not None and 0 < row_id <= MAX_ID
