"""The reliability suite: its own database and stream; a worker per scenario."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from tests.conftest import Services, make_services, migrated_database, own_redis
from tests.reliability.invariants import Report
from worker.adapters.embedded import EmbeddedRedis

# CI runs the quick form; `make reliability` sets QUOTA_RELIABILITY_ORDERS=1000.
ORDERS = int(os.environ.get("QUOTA_RELIABILITY_ORDERS", "120"))
REPORTS: list[Report] = []


@pytest.fixture(scope="session")
def embedded_redis(data_dir: Path) -> Iterator[EmbeddedRedis | None]:
    """A Redis of the suite's own (its queues apart from any e2e worker's), which it may restart."""
    with own_redis(data_dir / "redis-reliability") as embedded:
        yield embedded


@pytest.fixture(scope="session")
def redis_urls(embedded_redis: EmbeddedRedis | None) -> tuple[str, str]:
    if embedded_redis is None:
        # The machine's Redis: the next database number, so no e2e worker shares the queues.
        url = make_url(os.environ["QUOTA_TEST_REDIS_URL"])
        own = url.set(database=str(int(url.database or 0) + 1)).render_as_string(False)
        return own, own
    return embedded_redis.redis_url, embedded_redis.broker_url


@pytest.fixture(scope="session")
def services(redis_urls: tuple[str, str], data_dir: Path) -> Iterator[Services]:
    with migrated_database(data_dir, "reliability") as url:
        yield make_services(url, redis_urls, data_dir, "reliability")


@pytest.fixture(scope="session", autouse=True)
def report_table() -> Iterator[list[Report]]:
    yield REPORTS
    target = os.environ.get("QUOTA_RELIABILITY_REPORT")
    if target and REPORTS:
        lines = [
            "| scenario | messages | faults injected | lost | duplicated | invariant violations |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(r.row() for r in REPORTS),
        ]
        Path(target).write_text("\n".join(lines) + "\n")
