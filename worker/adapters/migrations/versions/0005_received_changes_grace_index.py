"""a request for a Service Mail not yet provisioned waits in state received: the sweep
reads those past their grace through a partial index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RECEIVED = sa.text("state = 'received'")


def upgrade() -> None:
    # A new index only: no table is rebuilt, so SQLite needs no batch mode here.
    op.create_index(
        "ix_quota_changes_received_grace",
        "quota_changes",
        ["expires_at"],
        postgresql_where=_RECEIVED,
        sqlite_where=_RECEIVED,
    )


def downgrade() -> None:
    op.drop_index("ix_quota_changes_received_grace", table_name="quota_changes")
