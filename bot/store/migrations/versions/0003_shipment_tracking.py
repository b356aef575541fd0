"""Shipment tracking: an order's tracker at the carrier service and how far its parcel has got,
and a return's label and tracker.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracker_ref", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("tracking_status", sa.String(), nullable=True))
        batch_op.create_index(batch_op.f("ix_shop_order_tracker_ref"), ["tracker_ref"], unique=False)
    with op.batch_alter_table("returnrequest", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(), nullable=False, server_default="open"))
        batch_op.add_column(sa.Column("label_url", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("tracker_ref", sa.String(), nullable=True))
        batch_op.create_index(batch_op.f("ix_returnrequest_tracker_ref"), ["tracker_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("returnrequest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_returnrequest_tracker_ref"))
        batch_op.drop_column("tracker_ref")
        batch_op.drop_column("label_url")
        batch_op.drop_column("status")
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shop_order_tracker_ref"))
        batch_op.drop_column("tracking_status")
        batch_op.drop_column("tracker_ref")
