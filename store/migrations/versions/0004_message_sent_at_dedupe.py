"""outbound messages: when they were handed to the provider, and a dedupe key for started ones

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 03:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=160),
                                      nullable=True))
        batch_op.create_unique_constraint('uq_message_dedupe_key', ['dedupe_key'])


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('uq_message_dedupe_key', type_='unique')
        batch_op.drop_column('dedupe_key')
        batch_op.drop_column('sent_at')
