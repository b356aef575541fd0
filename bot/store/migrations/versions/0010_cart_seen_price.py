"""The price a cart item had when the shopper added it, so a price changed before the order is
confirmed (a platform's webhook or sync) is told before paying.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cartitem") as batch:
        batch.add_column(sa.Column("seen_price_cents", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cartitem") as batch:
        batch.drop_column("seen_price_cents")
