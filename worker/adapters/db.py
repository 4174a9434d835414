"""Engines: one per process (never shared across fork), tuned per backend."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Each connection's page cache (negative: KiB): SQLite's default of 2 MiB holds too little
# of the indexes once the history is large, and every miss is a read system call
# (docs/PERFORMANCE.md, the history row).
SQLITE_CACHE_KIB = 32 * 1024

# Worth another try: the database was briefly away, locked, or a transaction
# lost a serialization or deadlock check (OperationalError on both drivers), a
# concurrent transaction won a unique key (the retry then sees its result), or
# the connection broke under the driver (InterfaceError, or any error SQLAlchemy
# marks as having invalidated the connection). Not ProgrammingError, DataError
# or NotSupportedError: the same statement would fail again, so retrying only
# delays the dead letter.
_TRANSIENT_CLASSES = (OperationalError, IntegrityError, InterfaceError)


def transient(exc: BaseException) -> bool:
    """Whether a database error is worth another try."""
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_size=5, max_overflow=5)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred BEGIN that upgrades later
        # fails with "database is locked" instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """Hands out this process's engine; a forked child builds its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    if self._engine is not None:
                        # Inherited from the parent: drop its connections unclosed.
                        self._engine.dispose(close=False)
                    self._engine = make_engine(self.url)
                    self._pid = os.getpid()
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None


# The processed-messages primary key, as the migrations name it.
PROCESSED_KEY = "pk_processed_messages"


def already_processed(exc: IntegrityError) -> bool:
    """Whether a failed commit failed on the processed-messages key (a redelivery).

    PostgreSQL names the constraint (psycopg's `diag`); SQLite names none, but tells a
    primary-key violation by its extended code and the column in its message.
    """
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None) == PROCESSED_KEY
    return getattr(
        orig, "sqlite_errorname", None
    ) == "SQLITE_CONSTRAINT_PRIMARYKEY" and "processed_messages.message_id" in str(orig)
