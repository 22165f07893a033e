"""Administration: staff accounts (list, create, change role, deactivate, see and end their
sessions) and settings (read-only, secrets masked). Admins only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from pydantic import SecretStr

from store import repo
from store.models import User
from textdesk.settings import Settings
from web.auth import ROLES, add_user
from web.deps import CurrentStaff, Db, Svc
from web.guards import ADMIN, requires
from web.queries import active_admins, list_users
from web.routes.common import in_range, page, see_other
from web.staff_sessions import active_sessions, revoke_user_sessions

__all__ = ["AdminController", "masked_settings"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
_SECRET_NAME = re.compile(r"token|secret|password|api_key|webhook", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]+@")


@dataclass
class NewUserForm:
    email: str = ""
    role: str = "agent"
    password: str = ""


@dataclass
class RoleForm:
    role: str = ""


@dataclass
class ActiveForm:
    active: str = ""


def masked_settings(settings: Settings) -> list[tuple[str, str]]:
    """Every setting as text; secrets shown only as set / not set, URL passwords hidden."""
    out = []
    for name in type(settings).model_fields:
        value: Any = getattr(settings, name)
        if isinstance(value, SecretStr) or (_SECRET_NAME.search(name) and value):
            text = "•••••• (set)" if value else "(not set)"
        elif value is None:
            text = "(not set)"
        else:
            text = _URL_PASSWORD.sub(r"\1••••••@", str(value))
        out.append((f"TEXTDESK_{name.upper()}", text))
    return out


class AdminController(Controller):
    path = "/admin"
    guards = [requires(*ADMIN)]  # noqa: RUF012
    include_in_schema = False

    @get("/", name="admin")
    async def index(self) -> Redirect:
        return see_other("/admin/users")

    async def _users(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        state: State,
        *,
        error: str | None = None,
        form: NewUserForm | None = None,
        status_code: int = 200,
    ) -> Template:
        return page(
            "admin/users.html",
            staff,
            status_code=status_code,
            users=await list_users(db),
            sessions=await active_sessions(db, services.clock.now(), state.session_policy),
            roles=ROLES,
            error=error,
            form=form or NewUserForm(),
        )

    @get("/users", name="users")
    async def users(self, db: Db, staff: CurrentStaff, services: Svc, state: State) -> Template:
        return await self._users(db, staff, services, state)

    @post("/users", status_code=303)
    async def create(
        self, db: Db, staff: CurrentStaff, services: Svc, state: State, data: Annotated[NewUserForm, Form]
    ) -> Redirect | Template:
        try:
            user = await add_user(db, data.email, data.role, data.password)
        except ValueError as exc:
            await db.rollback()
            data.password = ""
            return await self._users(db, staff, services, state, error=str(exc), form=data, status_code=400)
        await repo.audit(
            db,
            "staff.user_created",
            actor=staff.actor,
            at=services.clock.now(),
            user_id=user.id,
            role=user.role,
        )
        return see_other("/admin/users")

    async def _target(self, db: Db, uid: FromPath[int]) -> User:
        user = await db.get(User, uid) if in_range(uid) else None
        if user is None:
            raise NotFoundException(f"no user {uid}")
        return user

    async def _would_orphan(self, db: Db, user: User) -> bool:
        """True when ``user`` is the last active admin (removing them locks everyone out)."""
        return user.role == "admin" and user.active and await active_admins(db) <= 1

    @post("/users/{uid:int}/role", status_code=303)
    async def set_role(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        state: State,
        uid: FromPath[int],
        data: Annotated[RoleForm, Form],
    ) -> Redirect | Template:
        user = await self._target(db, uid)
        if data.role not in ROLES:
            return await self._users(
                db, staff, services, state, error=f"Unknown role {data.role!r}.", status_code=400
            )
        if data.role != "admin" and await self._would_orphan(db, user):
            return await self._users(
                db, staff, services, state, error="There must be at least one active admin.", status_code=409
            )
        if data.role == user.role:
            return see_other("/admin/users")
        now = services.clock.now()
        old, user.role = user.role, data.role
        db.add(user)
        await repo.audit(
            db,
            "staff.role_changed",
            actor=staff.actor,
            at=now,
            user_id=uid,
            old=old,
            new=data.role,
            sessions_revoked=await revoke_user_sessions(db, uid, now),
        )
        return see_other("/admin/users")

    @post("/users/{uid:int}/active", status_code=303)
    async def set_active(
        self,
        db: Db,
        staff: CurrentStaff,
        services: Svc,
        state: State,
        uid: FromPath[int],
        data: Annotated[ActiveForm, Form],
    ) -> Redirect | Template:
        user = await self._target(db, uid)
        active = data.active == "true"
        if not active and (uid == staff.id or await self._would_orphan(db, user)):
            return await self._users(
                db,
                staff,
                services,
                state,
                status_code=409,
                error="You cannot deactivate yourself or the last active admin.",
            )
        now = services.clock.now()
        user.active = active
        db.add(user)
        if active:
            await repo.audit(db, "staff.user_activated", actor=staff.actor, at=now, user_id=uid)
        else:
            await repo.audit(
                db,
                "staff.user_deactivated",
                actor=staff.actor,
                at=now,
                user_id=uid,
                sessions_revoked=await revoke_user_sessions(db, uid, now),
            )
        return see_other("/admin/users")

    @post("/users/{uid:int}/sessions/revoke", status_code=303)
    async def sign_out_everywhere(
        self, db: Db, staff: CurrentStaff, services: Svc, uid: FromPath[int]
    ) -> Redirect:
        """Ends every session of the user, on every device (yours too, if it is you)."""
        await self._target(db, uid)
        now = services.clock.now()
        await repo.audit(
            db,
            "staff.sessions_revoked",
            actor=staff.actor,
            at=now,
            user_id=uid,
            sessions_revoked=await revoke_user_sessions(db, uid, now),
        )
        return see_other("/admin/users")

    @get("/settings", name="settings")
    async def settings(self, staff: CurrentStaff, services: Svc) -> Template:
        return page(
            "admin/settings.html",
            staff,
            settings=masked_settings(services.settings),
            business=services.business.name,
        )
