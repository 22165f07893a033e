"""Staff accounts: argon2id password hashes, signed session cookies, the authentication middleware.

Sessions are stateless signed cookies (HMAC-SHA256 keyed from ``settings.secret_key``): the
cookie carries the user id, an absolute expiry and a fingerprint of the password hash. Every
request re-reads the user, so deactivating an account or changing its role takes effect at once,
and a password change invalidates every cookie issued before it. Logging out clears the cookie in
the browser; a copy of the cookie stolen before that stays valid until it expires
(``settings.session_hours``), the price of needing no session table.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
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

__all__ = [
    "ROLES",
    "SESSION_COOKIE",
    "SessionAuthMiddleware",
    "SessionCodec",
    "SessionData",
    "Staff",
    "add_user",
    "create_user",
    "hash_password",
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


@dataclass(frozen=True)
class SessionData:
    uid: int
    pv: str  # password fingerprint
    exp: int  # unix seconds


def password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookie values: ``base64(json).base64(hmac)``."""

    def __init__(self, secret: str, max_age: dt.timedelta) -> None:
        self._key = hashlib.sha256(b"textdesk-session\x00" + secret.encode()).digest()
        self.max_age = max_age

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def encode(self, user: User, now: dt.datetime) -> str:
        payload = {
            "uid": user.id,
            "pv": password_fingerprint(user),
            "exp": int((now + self.max_age).timestamp()),
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def decode(self, value: str, now: dt.datetime) -> SessionData | None:
        body, _, sig = value.partition(".")
        if not body or not sig or not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            raw: Any = json.loads(_unb64(body))
            data = SessionData(uid=int(raw["uid"]), pv=str(raw["pv"]), exp=int(raw["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        return data if data.exp > now.timestamp() else None


async def user_for_cookie(connection: ASGIConnection[Any, Any, Any, Any], value: str | None) -> Staff | None:
    """The active user a cookie value belongs to, or None."""
    if not value:
        return None
    services = connection.app.state.services
    data = connection.app.state.session_codec.decode(value, services.clock.now())
    if data is None:
        return None
    async with services.sessions() as session:
        user = await session.get(User, data.uid)
    if user is None or not user.active or not hmac.compare_digest(password_fingerprint(user), data.pv):
        return None
    return Staff(id=user.id or 0, email=user.email, role=user.role)


class SessionAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route not excluded needs a valid session cookie; otherwise NotAuthorizedException
    (turned into a redirect to /login for pages and a 401 for /api by the exception handlers)."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        staff = await user_for_cookie(connection, connection.cookies.get(SESSION_COOKIE))
        if staff is None:
            raise NotAuthorizedException("login required")
        return AuthenticationResult(user=staff, auth=None)
