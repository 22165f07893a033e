"""Logging in and out, and the landing redirect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template
from sqlmodel import select

from store import repo
from store.models import User
from web.auth import (
    SESSION_COOKIE,
    Staff,
    cookie_token,
    hash_password,
    needs_rehash,
    user_for_cookie,
    verify_password,
)
from web.deps import CurrentStaff, Db, Svc
from web.guards import ANY_STAFF, requires
from web.routes.common import client_ip, page, safe_next, see_other
from web.staff_sessions import revoke_session, start_session

__all__ = ["session_router"]

_PUBLIC = {"exclude_from_auth": True}
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class LoginForm:
    email: str = ""
    password: str = ""
    next: str = ""


@get("/login", opt=_PUBLIC, name="login")
async def login_page(
    request: Request[Any, Any, Any], next: FromQuery[str | None] = None
) -> Template | Redirect:
    staff = await user_for_cookie(request)
    if staff is not None:
        return see_other(safe_next(next) or staff.home)
    return page("login.html", None, next=safe_next(next) or "", email="", error=None)


@post("/login", opt=_PUBLIC, status_code=303)
async def login(
    request: Request[Any, Any, Any], data: Annotated[LoginForm, Form], db: Db, services: Svc
) -> Response[Any]:
    state = request.app.state
    now = services.clock.now()
    email, ip = data.email.strip().lower()[:254], client_ip(request)
    wait = state.throttle.retry_after(ip, email, now)
    if wait is not None:
        minutes = max(1, round(wait / 60))
        resp = page(
            "login.html",
            None,
            status_code=429,
            next=safe_next(data.next) or "",
            email=email,
            error=f"Too many failed attempts. Try again in about {minutes} minute(s).",
        )
        resp.headers["Retry-After"] = str(wait)
        return resp
    user = (await db.exec(select(User).where(User.email == email))).first() if email else None
    if not verify_password(user, data.password) or user is None or not user.active:
        state.throttle.failed(ip, email, now)
        await repo.audit(db, "staff.login_failed", actor=email or "unknown", at=now, ip=ip)
        return page(
            "login.html",
            None,
            status_code=401,
            next=safe_next(data.next) or "",
            email=email,
            error="Wrong email or password.",
        )
    state.throttle.succeeded(email)
    if needs_rehash(user):  # before the session: it records the fingerprint of the new hash
        user.password_hash = hash_password(data.password)
        db.add(user)
    token = await start_session(
        db, user, now, state.session_policy, user_agent=request.headers.get("user-agent"), ip=ip
    )
    await repo.audit(db, "staff.login", actor=f"staff:{user.id}", at=now, ip=ip)
    staff = Staff(user.id or 0, user.email, user.role)
    redirect = see_other(safe_next(data.next) or staff.home)
    redirect.set_cookie(
        key=SESSION_COOKIE,
        value=state.session_codec.encode(token),
        max_age=int(state.session_policy.lifetime.total_seconds()),
        path="/",
        httponly=True,
        secure=state.secure_cookies,
        samesite="lax",
    )
    return redirect


@post("/logout", opt=_PUBLIC, status_code=303)
async def logout(request: Request[Any, Any, Any], db: Db, services: Svc) -> Redirect:
    """Ends the session in the table, so a copy of the cookie is refused too, then clears it."""
    token = cookie_token(request)
    if token is not None:
        await revoke_session(db, token, services.clock.now())
    resp = see_other("/login")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@get("/", guards=[requires(*ANY_STAFF)], name="home")
async def home(staff: CurrentStaff) -> Redirect:
    return see_other(staff.home)


session_router = Router(path="/", route_handlers=[login_page, login, logout, home], include_in_schema=False)
