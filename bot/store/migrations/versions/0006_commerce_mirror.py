"""Commerce mirror: a platform's (Shopify's) ids of the products, variants and stock we keep a
copy of (and a product's picture there), with its `updated_at` so an older webhook never overwrites a newer one; and an order's
id on the platform.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commerce_product",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("product_sku", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "external_id"),
    )
    op.create_index(op.f("ix_commerce_product_product_sku"), "commerce_product", ["product_sku"], unique=False)
    op.create_table(
        "commerce_variant",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("variant_sku", sa.String(), nullable=False),
        sa.Column("product_external_id", sa.String(), nullable=False),
        sa.Column("inventory_item_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("platform", "external_id"),
    )
    op.create_index(op.f("ix_commerce_variant_variant_sku"), "commerce_variant", ["variant_sku"], unique=False)
    op.create_index(
        op.f("ix_commerce_variant_product_external_id"), "commerce_variant", ["product_external_id"], unique=False
    )
    op.create_index(
        op.f("ix_commerce_variant_inventory_item_id"), "commerce_variant", ["inventory_item_id"], unique=False
    )
    op.create_table(
        "commerce_stock",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("inventory_item_id", sa.String(), nullable=False),
        sa.Column("location_id", sa.String(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "inventory_item_id", "location_id"),
    )
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_url", sa.String(), nullable=True))
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_order_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("external_updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_shop_order_external_order_id"), ["external_order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shop_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shop_order_external_order_id"))
        batch_op.drop_column("external_updated_at")
        batch_op.drop_column("external_order_id")
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_column("image_url")
    op.drop_table("commerce_stock")
    op.drop_index(op.f("ix_commerce_variant_inventory_item_id"), table_name="commerce_variant")
    op.drop_index(op.f("ix_commerce_variant_product_external_id"), table_name="commerce_variant")
    op.drop_index(op.f("ix_commerce_variant_variant_sku"), table_name="commerce_variant")
    op.drop_table("commerce_variant")
    op.drop_index(op.f("ix_commerce_product_product_sku"), table_name="commerce_product")
    op.drop_table("commerce_product")
