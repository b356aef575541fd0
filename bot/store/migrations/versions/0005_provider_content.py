"""Provider content: content resources made once per shape of message (Twilio's Content API
templates for WhatsApp buttons, lists, cards and links), reused across restarts and processes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_content",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("shape", sa.String(), nullable=False),
        sa.Column("content_sid", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "shape"),
    )


def downgrade() -> None:
    op.drop_table("provider_content")
