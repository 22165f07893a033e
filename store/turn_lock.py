"""One turn at a time per contact, across every worker process that shares the database.

The pipeline takes an in-process asyncio lock first (cheap, no polling); this is the part that
holds between processes:

- PostgreSQL: a session-level advisory lock keyed by a hash of the phone number, held on its own
  pooled connection for the whole turn. A crashed worker's connection dies and the lock with it.
- SQLite with several serving processes: a lease row in ``turnlock``. Taking it is one short
  ``BEGIN IMMEDIATE`` transaction; a waiter polls with a growing pause. A lease left by a crashed
  process expires after ``lease_s`` seconds of wall-clock time (never the pipeline's injectable
  clock: this is about processes, not the business day). With one process the in-memory lock
  suffices, and the lease (two small write transactions per turn) is skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import TurnLock

__all__ = ["contact_turn"]

log = logging.getLogger("textdesk.store.turn_lock")
_OWNER = uuid.uuid4().hex[:16]  # this process


def _key(phone: str) -> int:
    return int.from_bytes(hashlib.blake2b(phone.encode(), digest_size=8).digest(), "big", signed=True)


@asynccontextmanager
async def contact_turn(
    sessions: async_sessionmaker[AsyncSession], phone: str, lease_s: float = 60.0, shared: bool = True
) -> AsyncIterator[None]:
    """Hold the contact's turn across processes. On SQLite with ``shared`` False (one serving
    process) the caller's in-process lock is all there is to it."""
    engine = sessions.kw.get("bind")
    if engine is None:
        yield
        return
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _key(phone)})
            try:
                yield
            finally:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(phone)})
                    await conn.commit()
                except Exception:  # a dead connection released the lock with its session
                    log.warning("turn_lock.advisory_unlock_failed", exc_info=True)
        return
    if not shared:
        yield
        return
    token = f"{_OWNER}:{uuid.uuid4().hex[:8]}"
    await _take_lease(sessions, phone, token, lease_s)
    try:
        yield
    finally:
        async with sessions() as s:
            await s.exec(delete(TurnLock).where(col(TurnLock.key) == phone, col(TurnLock.owner) == token))
            await s.commit()


async def _take_lease(
    sessions: async_sessionmaker[AsyncSession], key: str, token: str, lease_s: float
) -> None:
    pause = 0.002
    while True:
        now = dt.datetime.now(dt.UTC)
        async with sessions() as s:  # BEGIN IMMEDIATE: the read and the write below are one step
            row = await s.get(TurnLock, key)
            if row is None or row.expires_at <= now:
                if row is not None:
                    log.warning("turn_lock.expired_lease_taken", extra={"owner": row.owner})
                    await s.delete(row)
                    await s.flush()
                s.add(TurnLock(key=key, owner=token, expires_at=now + dt.timedelta(seconds=lease_s)))
                await s.commit()
                return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
