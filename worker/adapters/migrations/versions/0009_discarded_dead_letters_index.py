"""discarded dead letters are pruned by age: a partial index on resolved_at serves the
pruner's batch, which otherwise read the whole table every pass (tests/integration/test_plans.py)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DISCARDED = sa.text("status = 'discarded'")


def upgrade() -> None:
    op.create_index(
        "ix_dead_letters_discarded",
        "dead_letters",
        ["resolved_at"],
        postgresql_where=_DISCARDED,
        sqlite_where=_DISCARDED,
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_discarded", table_name="dead_letters")
