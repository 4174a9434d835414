"""the last address snapshot applied to each Service Mail (mail.addresses_snapshot):
one not newer than it changes nothing

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.adapters.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "address_snapshots",
        sa.Column("service_mail_id", sa.String(length=64), nullable=False),
        sa.Column("taken_at", worker.adapters.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", worker.adapters.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service_mail_id", name=op.f("pk_address_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("address_snapshots")
