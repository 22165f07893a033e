"""Staff accounts: argon2id password hashes, server-side sessions, the authentication middleware.

A session is a row of ``staffsession`` (``web.staff_sessions``); the cookie carries only its
random token, HMAC-SHA256-signed with a key derived from ``settings.secret_key`` so a forged or
mangled cookie is refused without a database read. Every request looks the row up with its user:
it must not be revoked, past its absolute expiry (``settings.session_hours``) or unused for
``settings.session_idle_minutes``, and the user must be active with the password the session
began with. Logout revokes the row, so a copy of the cookie taken earlier is refused from then on,
by every worker; a role change, deactivation, a password change (by any path) and an admin's
"sign out everywhere" end all of a user's sessions. The cost is one indexed read per request and
one write per session per minute at most (``last_seen_at``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import User
from textdesk.settings import Settings
from web.staff_sessions import check_session

__all__ = [
    "ROLES",
    "SESSION_COOKIE",
    "SessionAuthMiddleware",
    "SessionCodec",
    "Staff",
    "add_user",
    "cookie_token",
    "create_user",
    "hash_password",
    "user_for_cookie",
    "validate_email",
    "verify_password",
]

ROLES = ("admin", "agent", "reviewer")
SESSION_COOKIE = "textdesk_session"
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("textdesk-dummy-password")


@dataclass(frozen=True)
class Staff:
    """The signed-in user, as handlers and guards see it (``request.user``)."""

    id: int
    email: str
    role: str

    @property
    def home(self) -> str:
        return "/traces" if self.role == "reviewer" else "/inbox"

    @property
    def actor(self) -> str:
        return f"staff:{self.id}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """Constant-work check: an unknown user still pays for one argon2 verification."""
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(user: User) -> bool:
    try:
        return _hasher.check_needs_rehash(user.password_hash)
    except InvalidHashError:
        return False


def validate_email(email: str) -> str:
    clean = email.strip().lower()
    if not _EMAIL.match(clean) or len(clean) > 254:
        raise ValueError(f"not a valid email address: {email!r}")
    return clean


def _validate(email: str, role: str, password: str) -> str:
    clean = validate_email(email)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must be at least {MIN_PASSWORD} characters")
    return clean


async def add_user(session: AsyncSession, email: str, role: str, password: str) -> User:
    """Insert a user (the caller commits). ValueError on bad input or an email already taken."""
    clean = _validate(email, role, password)
    taken = await session.exec(select(func.count()).select_from(User).where(User.email == clean))
    if taken.one():
        raise ValueError(f"a user with email {clean} already exists")
    user = User(email=clean, password_hash=hash_password(password), role=role, active=True)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent insert of the same email
        raise ValueError(f"a user with email {clean} already exists") from exc
    return user


async def create_user(settings: Settings, email: str, role: str, password: str) -> User:
    """``textdesk user create``: migrate (so a fresh database works), then insert the user."""
    from store.db import make_engine, make_sessionmaker, migrate_async

    _validate(email, role, password)  # fail before touching the database
    await migrate_async(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            user = await add_user(session, email, role, password)
            await session.commit()
            return user
    finally:
        await engine.dispose()


# -- session cookies -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SessionCodec:
    """Signs and checks session cookie values: ``token.base64(hmac(token))``."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"textdesk-session\x00" + secret.encode()).digest()

    def _sign(self, token: str) -> str:
        return _b64(hmac.new(self._key, token.encode(), hashlib.sha256).digest())

    def encode(self, token: str) -> str:
        return f"{token}.{self._sign(token)}"

    def decode(self, value: str | None) -> str | None:
        """The token of a well-signed value, else None."""
        token, _, sig = (value or "").partition(".")
        if not token or not sig or not hmac.compare_digest(sig, self._sign(token)):
            return None
        return token


def cookie_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The session token of the request's cookie, if it carries a well-signed one."""
    codec: SessionCodec = connection.app.state.session_codec
    return codec.decode(connection.cookies.get(SESSION_COOKIE))


async def user_for_cookie(connection: ASGIConnection[Any, Any, Any, Any]) -> Staff | None:
    """The user of the request's live session, or None."""
    token = cookie_token(connection)
    if token is None:
        return None
    services = connection.app.state.services
    async with services.sessions() as db:
        found = await check_session(db, token, services.clock.now(), connection.app.state.session_policy)
        await db.commit()  # a touched last_seen_at, or a session revoked under a changed user
    if found is None:
        return None
    _, user = found
    return Staff(id=user.id or 0, email=user.email, role=user.role)


class SessionAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route not excluded needs a live session; otherwise NotAuthorizedException (turned
    into a redirect to /login for pages and a 401 for /api by the exception handlers)."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        staff = await user_for_cookie(connection)
        if staff is None:
            raise NotAuthorizedException("login required")
        return AuthenticationResult(user=staff, auth=None)
