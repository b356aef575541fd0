"""Analytics events: one row per turn (intent, outcome, reply time) and per product recommended,
tapped or added, for the retailer's dashboard.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("intent", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_analytics_event_kind_at", "analytics_event", ["kind", "received_at"], unique=False)
    op.create_index(op.f("ix_analytics_event_customer_id"), "analytics_event", ["customer_id"], unique=False)
    op.create_index(op.f("ix_analytics_event_message_id"), "analytics_event", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_analytics_event_message_id"), table_name="analytics_event")
    op.drop_index(op.f("ix_analytics_event_customer_id"), table_name="analytics_event")
    op.drop_index("ix_analytics_event_kind_at", table_name="analytics_event")
    op.drop_table("analytics_event")
