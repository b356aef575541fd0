"""CSAT after conversations the bot handled alone: an answer needs no ticket, and says where it
came from ("handoff" or "bot").

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("csatanswer", schema=None) as batch_op:
        batch_op.alter_column("ticket_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("source", sa.String(), server_default="handoff", nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM csatanswer WHERE ticket_id IS NULL")
    with op.batch_alter_table("csatanswer", schema=None) as batch_op:
        batch_op.drop_column("source")
        batch_op.alter_column("ticket_id", existing_type=sa.Integer(), nullable=False)
