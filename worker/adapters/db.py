"""Engines: one per process (never shared across fork), tuned per backend."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How often a transaction waiting for SQLite's write lock tries again, at most. SQLite's
# own busy handler sleeps up to 100 ms between tries, so under steady contention a writer
# that has waited longest keeps losing the lock to newer ones that try after 1-5 ms (the
# relay's p99 was 1.2 s at half the embedded default's peak); a short constant step is fairer.
SQLITE_LOCK_STEP_S = 0.001
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


# The execution option of a connection that only reads (the read API): on SQLite its
# transaction begins deferred and takes no write lock.
READ_ONLY = "quota_read_only"


def reading(conn: Connection) -> Connection:
    """The connection marked as one that only reads, with one snapshot for every statement
    of its transaction (PostgreSQL's REPEATABLE READ; SQLite's transactions are
    serializable already)."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn.execution_options(**{READ_ONLY: True})


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
        if connection.get_execution_options().get(READ_ONLY):
            # A reader in WAL mode has its snapshot from its first read and never waits
            # for the writer (nor makes it wait).
            connection.exec_driver_sql("BEGIN")
            return
        # Take the write lock up front: a deferred BEGIN that upgrades later
        # fails with "database is locked" instead of waiting its turn.
        dbapi_connection = connection.connection.dbapi_connection
        if not _begin_immediate(dbapi_connection):
            # Its error, wrapped as SQLAlchemy wraps it (judged transient or not).
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        # Inside the transaction, statements wait SQLite's way again (the rare busy
        # reader, e.g. while another connection recovers the WAL index).
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    return engine


def _begin_immediate(dbapi_connection: Any) -> bool:
    """BEGIN IMMEDIATE, tried every millisecond while another writer holds the lock, for
    up to the busy timeout; False if it did not begin (busy_timeout is then 0, so the
    caller's own try fails at once)."""
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                return False
        time.sleep(SQLITE_LOCK_STEP_S)


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
