"""Dependencies handed out with ``Provide``: services, a per-request transaction, the user."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotAuthorizedException
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from textdesk.services import Services
from web.auth import Staff

__all__ = ["DEPENDENCIES", "CurrentStaff", "Db", "Svc", "provide_db", "provide_services", "provide_staff"]


async def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


async def provide_db(state: State) -> AsyncGenerator[AsyncSession, None]:
    """One session per request: committed when the handler succeeds, rolled back when it raises;
    an integrity error (a unique key lost to a concurrent request) becomes 409."""
    async with state.services.sessions() as session:
        try:
            yield session
        except IntegrityError as exc:
            await session.rollback()
            raise ClientException(status_code=409, detail="conflict with a concurrent change") from exc
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def provide_staff(request: Request[Any, Any, Any]) -> Staff:
    user = request.scope.get("user")
    if not isinstance(user, Staff):
        raise NotAuthorizedException("login required")
    return user


DEPENDENCIES = {
    "services": Provide(provide_services),
    "db": Provide(provide_db),
    "staff": Provide(provide_staff),
}

# Handler parameter types: the dependency is named explicitly (Litestar 3 drops inference).
Db = NamedDependency[AsyncSession]
Svc = NamedDependency[Services]
CurrentStaff = NamedDependency[Staff]
