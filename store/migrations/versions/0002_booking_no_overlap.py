"""a slot is sold once: the database refuses overlapping active bookings of one provider

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 02:00:00

Bookings that already overlap (sold twice before this rule existed) are reported, never deleted:
each later booking of an overlapping pair is set to status ``overlap`` (kept, visible, out of the
rule's scope so the constraint can be created), an ``booking.overlap_found`` audit row names both
bookings, and the migration logs the list. Staff then call one of the customers
(``textdesk booking overlaps`` lists them).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.no_overlap import ddl, drop_ddl, find_overlaps

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("textdesk.migrations")
_AUDIT = sa.table("auditevent", sa.column("contact_id", sa.Integer), sa.column("kind", sa.String),
                  sa.column("actor", sa.String), sa.column("data", sa.JSON),
                  sa.column("at", sa.DateTime(timezone=True)))


def _quarantine_overlaps(conn: sa.engine.Connection) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    now = dt.datetime.now(dt.UTC)
    while True:  # one pair at a time: quarantining a booking may resolve other pairs too
        pairs = find_overlaps(conn)
        if not pairs:
            return found
        p = pairs[0]
        contact_id = conn.execute(sa.text("SELECT contact_id FROM booking WHERE id = :id"),
                                  {"id": p.other}).scalar()
        conn.execute(sa.text("UPDATE booking SET status = 'overlap' WHERE id = :id"), {"id": p.other})
        conn.execute(_AUDIT.insert().values(
            contact_id=contact_id, kind="booking.overlap_found", actor="migration", at=now,
            data={"booking_id": p.other, "overlaps": p.kept, "provider": p.provider, "start": p.start},
        ))
        found.append((p.other, p.kept))


def upgrade() -> None:
    conn = op.get_bind()
    found = _quarantine_overlaps(conn)
    for other, kept in found:
        log.warning("booking %s overlaps %s (same provider and time, sold before the no-overlap rule): "
                    "set to status 'overlap' for staff to resolve", other, kept)
    if found:
        log.warning("%d overlapping booking(s) found; see `textdesk booking overlaps`", len(found))
    for statement in ddl(conn.dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_ddl(op.get_bind().dialect.name):
        op.execute(statement)
