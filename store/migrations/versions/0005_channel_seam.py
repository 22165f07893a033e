"""messages carry channel + provider + provider_message_id; contacts a visitor id; webhook nonces

The provider's message id was a Twilio-only column. Existing rows keep their ids and their
idempotency: every stored id came from Twilio, so those rows get provider 'twilio', and the
unique key moves from the id alone to (provider, id).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 05:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('uq_message_twilio_sid', type_='unique')
        batch_op.alter_column('twilio_sid', new_column_name='provider_message_id',
                              existing_type=sa.String(length=64), existing_nullable=True)
        batch_op.add_column(sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16),
                                      nullable=False, server_default='sms'))
        batch_op.add_column(sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True))
        batch_op.create_unique_constraint('uq_message_provider_id', ['provider', 'provider_message_id'])
    op.execute("UPDATE message SET provider = 'twilio' WHERE provider_message_id IS NOT NULL")
    op.execute("UPDATE message SET channel = (SELECT c.channel FROM conversation c "
               "WHERE c.id = message.conversation_id)")
    op.execute("UPDATE message SET error = 'opted_out' WHERE error_code = 21610")
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('reply_from', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.execute("UPDATE conversation SET provider = 'twilio' WHERE channel IN ('sms', 'whatsapp')")
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visitor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_contact_visitor_id', ['visitor_id'])
    op.create_table('webhooknonce',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'nonce', name='uq_webhook_nonce')
    )
    op.create_index(op.f('ix_webhooknonce_seen_at'), 'webhooknonce', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_webhooknonce_seen_at'), table_name='webhooknonce')
    op.drop_table('webhooknonce')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_constraint('uq_contact_visitor_id', type_='unique')
        batch_op.drop_column('visitor_id')
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_column('reply_from')
        batch_op.drop_column('provider')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_constraint('uq_message_provider_id', type_='unique')
        batch_op.drop_column('error')
        batch_op.drop_column('provider')
        batch_op.drop_column('channel')
        batch_op.alter_column('provider_message_id', new_column_name='twilio_sid',
                              existing_type=sa.String(length=64), existing_nullable=True)
        batch_op.create_unique_constraint('uq_message_twilio_sid', ['twilio_sid'])
