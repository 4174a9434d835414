"""The Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from tests.helpers import new_id
from worker.adapters.migrate import (
    alembic_config,
    current_head,
    current_revision,
    scratch_database,
    upgrade,
)
from worker.adapters.tables import metadata


def test_the_migrated_database_is_at_the_latest_revision(database_url: str) -> None:
    assert current_revision(database_url) == current_head()


def test_the_migrated_schema_matches_the_declared_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_every_migration_downgrades_to_the_first_and_upgrades_again(tmp_path: Path) -> None:
    server = os.environ.get("QUOTA_TEST_DATABASE_URL")
    name = new_id("qt_migrations").replace("-", "_").lower()
    with scratch_database(server, tmp_path / "migrations.sqlite3", name) as url:
        command.downgrade(alembic_config(url), "0001")
        assert current_revision(url) == "0001"
        upgrade(url)
        assert current_revision(url) == current_head()
        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
    assert diff == []
