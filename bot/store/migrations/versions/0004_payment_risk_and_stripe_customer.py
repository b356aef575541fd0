"""Stripe Radar's risk of an order's payment, and a shopper's Stripe Customer (saved cards).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 14:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_risk_level", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("payment_risk_score", sa.Integer(), nullable=True))
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_customer_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("stripe_customer_id")
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_column("payment_risk_score")
        batch_op.drop_column("payment_risk_level")
