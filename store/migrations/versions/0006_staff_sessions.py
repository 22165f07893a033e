"""staff sessions kept server-side, so a session can be revoked (logout, password or role change)

The cookie carries a random token; the table keeps only its SHA-256, so a copy of the table
does not hand out sessions. ``password_fp`` is a fingerprint of the password hash at sign-in: a
password changed by any path ends the session. Earlier (stateless) cookies carry no token and
stop working: staff sign in again once after the upgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('staffsession',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('password_fp', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_staffsession_user_id'), 'staffsession', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_staffsession_user_id'), table_name='staffsession')
    op.drop_table('staffsession')
