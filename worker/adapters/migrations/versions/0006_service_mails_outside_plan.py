"""a provisioning that leaves a Service Mail's limit outside its plan's bounds is
recorded (service_mails.outside_plan) for `quota-worker status`

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OUTSIDE = sa.text("outside_plan IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("service_mails") as batch:
        batch.add_column(sa.Column("outside_plan", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_service_mails_outside_plan",
        "service_mails",
        ["id"],
        postgresql_where=_OUTSIDE,
        sqlite_where=_OUTSIDE,
    )


def downgrade() -> None:
    op.drop_index("ix_service_mails_outside_plan", table_name="service_mails")
    with op.batch_alter_table("service_mails") as batch:
        batch.drop_column("outside_plan")
