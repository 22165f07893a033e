"""Role guards, declared on routers and controllers (never checked inside handler bodies)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from web.auth import Staff

__all__ = ["ADMIN", "ANY_STAFF", "INBOX", "REVIEW", "requires"]

ADMIN = ("admin",)
INBOX = ("agent", "admin")  # who works conversations
REVIEW = ("reviewer", "admin")  # who reads traces and reports
ANY_STAFF = ("admin", "agent", "reviewer")


def requires(*roles: str) -> Guard:
    """A guard admitting only users whose role is one of ``roles`` (403 otherwise)."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user = connection.scope.get("user")
        if not isinstance(user, Staff):
            raise NotAuthorizedException("login required")
        if user.role not in allowed:
            raise PermissionDeniedException(f"this page needs the {' or '.join(sorted(allowed))} role")

    guard.__name__ = f"requires_{'_'.join(sorted(allowed))}"
    return guard
