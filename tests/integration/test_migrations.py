"""The Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from worker.adapters.migrate import current_head, current_revision
from worker.adapters.tables import metadata


def test_the_migrated_database_is_at_the_latest_revision(database_url: str) -> None:
    assert current_revision(database_url) == current_head()


def test_the_migrated_schema_matches_the_declared_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
