"""Which errors a task retries: the database adapter's transient errors, and the broker's."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

from worker.entrypoints.tasks import transient


def _error(kind: type[DBAPIError], invalidated: bool = False) -> DBAPIError:
    return kind("SELECT 1", {}, Exception("driver says no"), connection_invalidated=invalidated)


@pytest.mark.parametrize("kind", [OperationalError, IntegrityError, InterfaceError])
def test_a_database_away_locked_or_racing_is_retried(kind: type[DBAPIError]) -> None:
    assert transient(_error(kind))


@pytest.mark.parametrize("kind", [ProgrammingError, DataError, NotSupportedError, DBAPIError])
def test_an_error_the_same_statement_would_repeat_is_not_retried(kind: type[DBAPIError]) -> None:
    """Retried eight times before, it only delayed the dead letter by a minute."""
    assert not transient(_error(kind))


def test_any_database_error_that_broke_the_connection_is_retried() -> None:
    assert transient(_error(DBAPIError, invalidated=True))


@pytest.mark.parametrize("exc", [ConnectionError("broker"), TimeoutError("stream")])
def test_the_broker_or_stream_away_is_retried(exc: Exception) -> None:
    assert transient(exc)


@pytest.mark.parametrize("exc", [ValueError("bug"), KeyError("bug"), RuntimeError("bug")])
def test_a_bug_is_not_retried(exc: Exception) -> None:
    assert not transient(exc)
