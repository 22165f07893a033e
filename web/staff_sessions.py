"""Staff sessions kept server-side (the ``staffsession`` table): start, check, revoke, list.

The browser holds a random token (``web.auth`` signs it into the cookie); a row is keyed by the
token's SHA-256, so neither the table nor a backup of it can be turned back into a cookie. A
session is live while it is not revoked, before its absolute expiry, used within the idle
window, and its user is active with the password the session signed in with. Being a table, it
holds across worker processes. Callers own the transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import StaffSession, User
from textdesk.settings import Settings

__all__ = [
    "TOUCH_EVERY",
    "SessionPolicy",
    "active_sessions",
    "check_session",
    "password_fingerprint",
    "revoke_session",
    "revoke_user_sessions",
    "start_session",
]

# last_seen_at is written at most this often per session, not on every page: the idle timeout is
# accurate to this much, and a busy page costs no write.
TOUCH_EVERY = dt.timedelta(minutes=1)
_USER_AGENT_MAX = 200
_IP_MAX = 45  # the longest IPv6 text form


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionPolicy:
    lifetime: dt.timedelta  # absolute, from sign-in
    idle: dt.timedelta  # since last use

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(
            lifetime=dt.timedelta(hours=settings.session_hours),
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
        )

    def open_at(self, row: StaffSession, now: dt.datetime) -> bool:
        """Not revoked, not past its expiry, not idle too long (the user aside)."""
        return row.revoked_at is None and now < row.expires_at and now - row.last_seen_at < self.idle

    def live(self, row: StaffSession, user: User, now: dt.datetime) -> bool:
        return (
            self.open_at(row, now)
            and user.active
            and hmac.compare_digest(row.password_fp, password_fingerprint(user))
        )


async def start_session(
    db: AsyncSession,
    user: User,
    now: dt.datetime,
    policy: SessionPolicy,
    *,
    user_agent: str | None = None,
    ip: str | None = None,
) -> str:
    """A new session for ``user``; returns its token (shown to nobody but the cookie). Rows past
    their absolute expiry, anyone's, are deleted on the way: they can never be live again."""
    await db.exec(delete(StaffSession).where(col(StaffSession.expires_at) <= now))
    token = secrets.token_urlsafe(32)
    db.add(
        StaffSession(
            id=_token_id(token),
            user_id=user.id or 0,
            password_fp=password_fingerprint(user),
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.lifetime,
            user_agent=(user_agent or "")[:_USER_AGENT_MAX] or None,
            ip=(ip or "")[:_IP_MAX] or None,
        )
    )
    return token


async def check_session(
    db: AsyncSession, token: str, now: dt.datetime, policy: SessionPolicy
) -> tuple[StaffSession, User] | None:
    """The live session a token belongs to, and its user; None otherwise. Records the use when the
    last one is more than ``TOUCH_EVERY`` old. A session whose user was deactivated or changed
    password by any path (the CLI, the database) is revoked here, so it stays ended."""
    found = (
        await db.exec(
            select(StaffSession, User)
            .join(User, col(User.id) == col(StaffSession.user_id))
            .where(StaffSession.id == _token_id(token))
        )
    ).first()
    if found is None:
        return None
    row, user = found
    if not policy.live(row, user, now):
        if policy.open_at(row, now):  # the user changed under it: make the end final
            row.revoked_at = now
            db.add(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.add(row)
    return row, user


async def revoke_session(db: AsyncSession, token: str, now: dt.datetime) -> None:
    """End one session (logout). Unknown or already ended: nothing to do."""
    await db.exec(
        update(StaffSession)
        .where(col(StaffSession.id) == _token_id(token), col(StaffSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_sessions(db: AsyncSession, user_id: int, now: dt.datetime) -> int:
    """End every session of a user (password or role change, deactivation, "sign out
    everywhere"); returns how many were neither revoked nor past their expiry."""
    result = await db.exec(
        update(StaffSession)
        .where(
            col(StaffSession.user_id) == user_id,
            col(StaffSession.revoked_at).is_(None),
            col(StaffSession.expires_at) > now,
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)


async def active_sessions(
    db: AsyncSession, now: dt.datetime, policy: SessionPolicy
) -> dict[int, list[StaffSession]]:
    """Live sessions by user id, most recently used first (the admin users page)."""
    rows = await db.exec(
        select(StaffSession, User)
        .join(User, col(User.id) == col(StaffSession.user_id))
        .where(col(StaffSession.revoked_at).is_(None), col(StaffSession.expires_at) > now)
        .order_by(col(StaffSession.last_seen_at).desc())
    )
    out: dict[int, list[StaffSession]] = defaultdict(list)
    for row, user in rows:
        if policy.live(row, user, now):
            out[row.user_id].append(row)
    return dict(out)
