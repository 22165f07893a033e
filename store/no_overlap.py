"""The database's own guarantee that a slot is sold once.

Two active bookings of one provider may not overlap in time. Application code checks this
before it writes (availability), but only the database can make it true for every worker,
code path and future bug, so the rule lives here as DDL:

- PostgreSQL: an exclusion constraint over ``(coalesce(provider, ''), tstzrange(start, end))``
  with ``=`` and ``&&`` (``btree_gist``), partial on ``status = 'active'``. A concurrent insert
  that would overlap waits for the other transaction and fails once it commits.
- SQLite: triggers that abort an overlapping insert or update (times compared with ``julianday``,
  so another text format of the same instant still compares right). SQLite transactions here take
  the write lock at BEGIN (``BEGIN IMMEDIATE``, see ``store.db``), so the availability check and
  the insert of one turn already run serialised; the triggers are the same rule as the last line.

Ranges are half-open, so back-to-back bookings (10:00-10:45, 10:45-11:30) are fine. A booking
without a provider counts as provider ``''``: in a business without providers every booking
competes for the one chair. The migration that adds the rule and ``create_all`` (eval fixtures,
unit tests) use the same statements below.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

__all__ = ["CONSTRAINT", "Overlap", "ddl", "drop_ddl", "find_overlaps", "is_overlap_error", "queue_for_slot"]

CONSTRAINT = "booking_no_overlap"

_PG_EXTENSION = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
        -- In public when there is one, so dropping an application schema never drops it.
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
            CREATE EXTENSION btree_gist WITH SCHEMA public;
        ELSE
            CREATE EXTENSION btree_gist;
        END IF;
    END IF;
END
$$;
"""

_PG_CONSTRAINT = f"""
ALTER TABLE booking ADD CONSTRAINT {CONSTRAINT}
    EXCLUDE USING gist ((coalesce(provider, '')) WITH =, tstzrange(start, "end", '[)') WITH &&)
    WHERE (status = 'active')
"""

_SQLITE_CLASH = """
    NEW.status = 'active' AND EXISTS (
        SELECT 1 FROM booking AS b
        WHERE b.id != NEW.id AND b.status = 'active'
          AND coalesce(b.provider, '') = coalesce(NEW.provider, '')
          AND julianday(b.start) < julianday(NEW."end") AND julianday(NEW.start) < julianday(b."end"))
"""

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER {CONSTRAINT}_insert BEFORE INSERT ON booking
WHEN {_SQLITE_CLASH}
BEGIN SELECT RAISE(ABORT, '{CONSTRAINT}'); END""",
    f"""CREATE TRIGGER {CONSTRAINT}_update BEFORE UPDATE OF start, "end", provider, status ON booking
WHEN {_SQLITE_CLASH}
BEGIN SELECT RAISE(ABORT, '{CONSTRAINT}'); END""",
]


def ddl(dialect: str) -> list[str]:
    """The statements that install the rule on ``dialect`` (``postgresql`` or ``sqlite``)."""
    if dialect == "postgresql":
        return [_PG_EXTENSION, _PG_CONSTRAINT]
    if dialect == "sqlite":
        return list(_SQLITE_TRIGGERS)
    return []


def drop_ddl(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"ALTER TABLE booking DROP CONSTRAINT IF EXISTS {CONSTRAINT}"]
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {CONSTRAINT}_insert", f"DROP TRIGGER IF EXISTS {CONSTRAINT}_update"]
    return []


def is_overlap_error(exc: BaseException) -> bool:
    """Did the database refuse a write because of this rule? A deadlock between two inserts
    checking the exclusion constraint against each other counts too: one of them wins."""
    if not isinstance(exc, DBAPIError):
        return False
    return CONSTRAINT in str(exc.orig) or getattr(exc.orig, "sqlstate", None) == "40P01"


async def queue_for_slot(session: Any, provider: str | None, start: dt.datetime) -> None:
    """Make writers for one provider's day wait in line (PostgreSQL, until the turn commits).

    Two transactions inserting overlapping rows each see the other's uncommitted row while
    checking the exclusion constraint and wait for each other: a deadlock the server breaks
    after a second. Queuing them on a transaction-scoped advisory lock first turns that into a
    plain wait. SQLite needs nothing: its writers are serialised already."""
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return
    name = f"booking:{provider or ''}:{start.astimezone(dt.UTC).date().isoformat()}"
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


@dataclass(frozen=True)
class Overlap:
    kept: str  # the booking sold first
    other: str  # a later booking of the same provider overlapping it
    provider: str | None
    start: str


def find_overlaps(conn: Connection) -> list[Overlap]:
    """Pairs of active bookings that break the rule (data from before it existed)."""
    rows = conn.execute(
        text(
            """
            SELECT a.id, b.id, a.provider, a.start
            FROM booking AS a JOIN booking AS b
              ON a.id != b.id
             AND coalesce(a.provider, '') = coalesce(b.provider, '')
             AND a.start < b."end" AND b.start < a."end"
             AND (a.created_at < b.created_at OR (a.created_at = b.created_at AND a.id < b.id))
            WHERE a.status = 'active' AND b.status = 'active'
            ORDER BY a.start, a.id, b.id
            """
        )
    )
    return [Overlap(str(r[0]), str(r[1]), r[2], str(r[3])) for r in rows]
