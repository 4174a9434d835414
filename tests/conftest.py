"""Real services for the integration and end-to-end tests.

By default everything is embedded (a private redis-server, an SQLite file),
so `make test` needs nothing installed. CI points the same tests at this
machine's services with QUOTA_TEST_DATABASE_URL (a PostgreSQL server: a
fresh database is created and dropped), QUOTA_TEST_REDIS_URL and
QUOTA_TEST_BROKER_URL (Redis or RabbitMQ).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import RUN, short_tmp
from worker.adapters.embedded import EmbeddedRedis
from worker.adapters.migrate import scratch_database


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    broker_url: str
    stream: str
    data_dir: Path

    @property
    def on_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def worker_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
        env.update(
            QUOTA_DATABASE_URL=self.database_url,
            QUOTA_BROKER_URL=self.broker_url,
            QUOTA_REDIS_URL=self.redis_url,
            QUOTA_EVENTS_STREAM=self.stream,
            QUOTA_DATA_DIR=str(self.data_dir),
            QUOTA_LOG_FORMAT="json",
        )
        if os.environ.get("QUOTA_TEST_BATCH_MAX"):  # every worker the tests start batches so
            env["QUOTA_BATCH_MAX"] = os.environ["QUOTA_TEST_BATCH_MAX"]
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = short_tmp("qt-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def own_redis(directory: Path) -> Iterator[EmbeddedRedis | None]:
    """A redis-server of the suite's own, unless QUOTA_TEST_REDIS_URL points elsewhere."""
    if os.environ.get("QUOTA_TEST_REDIS_URL"):
        yield None
        return
    embedded = EmbeddedRedis(directory).start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def embedded_redis(data_dir: Path) -> Iterator[EmbeddedRedis | None]:
    with own_redis(data_dir / "redis") as embedded:
        yield embedded


@pytest.fixture(scope="session")
def redis_urls(embedded_redis: EmbeddedRedis | None) -> tuple[str, str]:
    """(stream Redis URL, Redis broker URL)."""
    if embedded_redis is None:
        url = os.environ["QUOTA_TEST_REDIS_URL"]
        return url, url
    return embedded_redis.redis_url, embedded_redis.broker_url


@contextmanager
def migrated_database(data_dir: Path, suite: str) -> Iterator[str]:
    """A fresh, migrated database for one suite: an SQLite file, or a new PostgreSQL database."""
    with scratch_database(
        os.environ.get("QUOTA_TEST_DATABASE_URL"),
        data_dir / f"{suite}.sqlite3",
        f"quota_test_{RUN}_{suite}",
    ) as url:
        yield url


def make_services(
    database_url: str, redis_urls: tuple[str, str], data_dir: Path, suite: str
) -> Services:
    redis_url, redis_broker = redis_urls
    broker = os.environ.get("QUOTA_TEST_BROKER_URL") or redis_broker
    return Services(
        database_url=database_url,
        redis_url=redis_url,
        broker_url=broker,
        stream=f"quota.events.test.{RUN}.{suite}",
        data_dir=data_dir,
    )


# The integration suite's own database and stream: the end-to-end worker's
# relay must never publish (or race for) the integration tests' outbox.
@pytest.fixture(scope="session")
def database_url(data_dir: Path) -> Iterator[str]:
    with migrated_database(data_dir, "integration") as url:
        yield url


@pytest.fixture(scope="session")
def services(database_url: str, redis_urls: tuple[str, str], data_dir: Path) -> Services:
    return make_services(database_url, redis_urls, data_dir, "integration")
