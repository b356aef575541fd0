"""An order waiting for its payment link (the payment provider or commerce platform was down or
throttling when it was placed) keeps its tries on its own row: how many failed, when the next is
due, until when a try under way holds it, and when the shop gave up and called a person.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("link_retry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("link_held_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("link_gave_up_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_column("link_gave_up_at")
        batch_op.drop_column("link_held_until")
        batch_op.drop_column("link_retry_at")
        batch_op.drop_column("link_attempts")
