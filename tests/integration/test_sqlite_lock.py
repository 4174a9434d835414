"""The embedded default's write lock: every transaction begins with BEGIN IMMEDIATE, and one
waiting for the lock tries again each millisecond rather than by SQLite's backoff."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from worker.adapters import db


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "lock.sqlite"


@pytest.fixture
def engine(sqlite_file: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{sqlite_file}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def hold_write_lock(path: Path, started: threading.Event, release: threading.Event) -> None:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    started.set()
    release.wait(10)
    other.execute("COMMIT")
    other.close()


def test_a_transaction_holds_the_write_lock_from_its_start(
    engine: Engine, sqlite_file: Path
) -> None:
    other = sqlite3.connect(sqlite_file, isolation_level=None, timeout=0)
    with engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM t"))  # a read only, yet the lock is taken
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        # Inside the transaction statements wait SQLite's way again.
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    other.execute("BEGIN IMMEDIATE")  # released by the commit
    other.execute("ROLLBACK")
    other.close()


def test_a_transaction_waits_for_the_lock_and_sees_what_its_holder_committed(
    engine: Engine, sqlite_file: Path
) -> None:
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(sqlite_file, started, release))
    holder.start()
    assert started.wait(10)
    waited = threading.Timer(0.3, release.set)
    waited.start()
    with engine.begin() as conn:
        assert release.is_set()  # it began only once the holder let go
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        conn.execute(text("INSERT INTO t VALUES (2)"))
    holder.join(10)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_lock_held_past_the_busy_timeout_is_a_transient_error(
    engine: Engine, sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(sqlite_file, started, release))
    holder.start()
    assert started.wait(10)
    try:
        with pytest.raises(OperationalError, match="locked") as caught, engine.begin():
            pass
        assert db.transient(caught.value)  # retried with the backoff, not dead-lettered
    finally:
        release.set()
        holder.join(10)
    with engine.begin() as conn:  # the same engine serves once the lock is free
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200


def test_a_reading_connection_takes_no_write_lock_and_reads_the_last_commit(
    engine: Engine, sqlite_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 0)  # a writer's BEGIN would fail at once
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(sqlite_file, started, release))
    holder.start()
    assert started.wait(10)
    try:
        with engine.connect() as conn, db.reading(conn).begin():
            # The holder's insert is not committed yet: the read sees the table as it was.
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
        with pytest.raises(OperationalError, match="locked"), engine.begin():
            pass
    finally:
        release.set()
        holder.join(10)
