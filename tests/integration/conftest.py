from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.conftest import Services
from tests.integration.api_client import READ_TOKEN, TOKENS, bearer
from worker.api.app import create_app
from worker.bootstrap import Container, build
from worker.settings import Settings


class Clock:
    """The bus's notion of now, moved by hand."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(services: Services) -> Settings:
    return Settings(
        database_url=services.database_url,
        redis_url=services.redis_url,
        broker_url=services.broker_url,
        events_stream=services.stream,
        payment_timeout_seconds=3600,
        # No grace unless a test asks for it (tests/integration/test_arrivals.py does).
        expiry_grace_seconds=0,
        provisioning_grace_seconds=0,
        data_dir=services.data_dir,
        api_tokens=SecretStr(TOKENS),
    )


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[Container]:
    container = build(settings, now=clock)
    yield container
    container.database.dispose()


@pytest.fixture
def api(app: Container, clock: Clock) -> Iterator[TestClient]:
    """The HTTP API over the suite's database, called with the `read` token."""
    with TestClient(create_app(app, now=clock), headers=bearer(READ_TOKEN)) as client:
        yield client
