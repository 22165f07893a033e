"""message (provider, provider_message_id) unique again on SQLite

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:00:00

0005 renamed ``twilio_sid`` and added this key in one SQLite batch; the table copy SQLite's batch
mode makes came out without the key, so inbound idempotency on SQLite rested on the pipeline's
lookup alone (PostgreSQL kept it). Add it wherever it is missing; a no-op where 0005 worked.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 'uq_message_provider_id'
COLUMNS = ['provider', 'provider_message_id']


def _has_key() -> bool:
    inspector = sa.inspect(op.get_bind())
    keys = [u['column_names'] for u in inspector.get_unique_constraints('message')]
    keys += [i['column_names'] for i in inspector.get_indexes('message') if i.get('unique')]
    return COLUMNS in keys


def upgrade() -> None:
    if _has_key():
        return
    with op.batch_alter_table('message', schema=None, recreate='always') as batch_op:
        batch_op.create_unique_constraint(NAME, COLUMNS)


def downgrade() -> None:
    pass  # 0005's downgrade removes the key; leaving it here keeps the data as safe as before
