"""Statements sent to the database in as few round trips as the backend allows.

A unit of work queues its writes (and statements whose result it ignores, such
as taking a lock); each read sends what is queued together with the read, and
the commit sends what is left together with the COMMIT. The order is the order
the handler asked for, so a read always sees the writes queued before it.

On PostgreSQL a send is one round trip whatever the number of statements: they
go out in psycopg's pipeline mode, and the server still runs them one after the
other, each in its own statement snapshot (so a read queued after a lock sees
what the lock's previous holder committed). The SQL is SQLAlchemy's, compiled
once per statement; bind and result values pass through the columns' types as
SQLAlchemy would pass them. On SQLite, an in-process library, there is no
round trip to save: the same statements run one after the other through
SQLAlchemy.

This is the one module that drives SQLAlchemy's compiler (`bind_names`,
`construct_params`, the types' processors) and psycopg's pipeline behind
SQLAlchemy's back; importing it refuses an SQLAlchemy or psycopg version it was
not tested with (`worker.adapters.versions`), whatever the backend.
"""

from __future__ import annotations

import contextlib
import functools
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Dialect, RootTransaction
from sqlalchemy.exc import DBAPIError, StatementError

from worker.adapters import versions

versions.check("sqlalchemy", "psycopg")

Executable = Any  # a SQLAlchemy Core statement: select, insert, update or delete

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    compiled: Any
    binds: dict[str, Processor]
    results: tuple[Processor | None, ...]


@functools.lru_cache(maxsize=512)
def _compile(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
    binds = {}
    for bind, name in compiled.bind_names.items():
        processor = bind.type.bind_processor(dialect)
        if processor is not None:
            binds[name] = processor
    # A SELECT's columns, or a DML statement's RETURNING columns (none without one).
    results = tuple(getattr(c, "type", None) for c in statement.exported_columns)
    return _Compiled(
        compiled.string,
        compiled,
        binds,
        tuple(None if t is None else t.result_processor(dialect, None) for t in results),
    )


class StatementQueue:
    """The statements of one transaction, queued until a read or the commit sends them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # psycopg 3 on PostgreSQL; any other driver runs the statements one by one.
        self.pipelined = conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"
        self._queued: list[tuple[Executable, Params]] = []

    def write(self, statement: Executable, params: Params) -> None:
        """Queue a statement whose result is not needed (a list of params: one per row)."""
        if isinstance(params, Sequence) and not params:
            return
        self._queued.append((statement, params))

    def read(self, *reads: tuple[Executable, Mapping[str, Any]]) -> list[list[Any]]:
        """Send what is queued and `reads`, in that order; the rows of each read."""
        queued, self._queued = self._queued, []
        if not self.pipelined:
            self._one_by_one(queued)
            return [list(self.conn.execute(s, p).all()) for s, p in reads]
        return self._pipeline(queued, list(reads))

    def commit(self, tx: RootTransaction) -> None:
        """Send what is queued and commit, in one round trip on PostgreSQL."""
        queued, self._queued = self._queued, []
        if not self.pipelined:
            self._one_by_one(queued)
            tx.commit()
            return
        self._pipeline(queued, [], commit=tx.commit)

    def _one_by_one(self, statements: list[tuple[Executable, Params]]) -> None:
        for statement, params in statements:
            self.conn.execute(statement, params)

    def _pipeline(
        self,
        writes: list[tuple[Executable, Params]],
        reads: list[tuple[Executable, Mapping[str, Any]]],
        commit: Callable[[], None] | None = None,
    ) -> list[list[Any]]:
        raw = self.conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        sent: list[tuple[psycopg.Cursor[Any], _Compiled]] = []
        try:
            with raw.pipeline():
                for statement, params in writes:
                    self._send(raw, statement, params)
                for statement, params in reads:
                    sent.append(self._send(raw, statement, params))
                if commit is not None:
                    commit()  # inside the pipeline: COMMIT goes with the rest, then a sync
            return [_rows(cursor, compiled) for cursor, compiled in sent]
        except Exception as exc:
            if commit is not None:
                _end_failed_transaction(raw)
            if not isinstance(exc, psycopg.Error):
                raise  # already SQLAlchemy's (the COMMIT goes through SQLAlchemy)
            # Which statement failed is in the server's message; the batch is named here.
            batch = "; ".join(str(s).split("\n")[0] for s, _p in [*writes, *reads])
            raise self._wrapped(exc, raw, batch) from exc

    def _send(
        self, raw: psycopg.Connection[Any], statement: Executable, params: Params
    ) -> tuple[psycopg.Cursor[Any], _Compiled]:
        many = not isinstance(params, Mapping)
        rows: Sequence[Mapping[str, Any]] = [params] if isinstance(params, Mapping) else params
        compiled = _compile(statement, self.conn.dialect, tuple(rows[0]))
        values = [_bound(compiled, row) for row in rows]
        cursor = raw.cursor()
        if many:
            cursor.executemany(compiled.sql, values)
        else:
            cursor.execute(compiled.sql, values[0])
        return cursor, compiled

    def _wrapped(self, exc: Any, raw: Any, batch: str) -> StatementError:
        """The error as SQLAlchemy raises it (IntegrityError, OperationalError, ...); a
        connection that is gone is invalidated, so the pool never hands it out again."""
        gone = self.conn.dialect.is_disconnect(exc, raw, None)
        if gone:
            self.conn.invalidate(exc)
        error: StatementError = DBAPIError.instance(
            batch,
            None,
            exc,
            psycopg.Error,
            connection_invalidated=gone,
            dialect=self.conn.dialect,
        )
        return error


def _end_failed_transaction(raw: psycopg.Connection[Any]) -> None:
    """A statement before the COMMIT failed, so the server skipped the COMMIT and the
    transaction is still open (aborted). SQLAlchemy counts its transaction as ended
    once commit() was called and would hand the connection back to the pool as it is:
    roll back here. A connection that is gone needs nothing (the pool drops it)."""
    with contextlib.suppress(psycopg.Error):
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.rollback()


def _bound(compiled: _Compiled, row: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = compiled.compiled.construct_params(row)
    for name, processor in compiled.binds.items():
        values[name] = processor(values[name])
    return values


# A statement's row type and value processors, by its SQL: psycopg builds a cursor's
# description afresh on every access, which costs more than the rows of a small result.
_ROW_SHAPES: dict[str, tuple[Any, tuple[Processor | None, ...]]] = {}


def _rows(cursor: psycopg.Cursor[Any], compiled: _Compiled) -> list[Any]:
    shape = _ROW_SHAPES.get(compiled.sql)
    if shape is None:
        description = cursor.description
        assert description is not None
        processors = compiled.results
        if len(processors) != len(description):
            processors = (None,) * len(description)
        shape = _ROW_SHAPES[compiled.sql] = (
            namedtuple("Row", [c.name for c in description], rename=True),
            processors,
        )
    row, processors = shape
    return [
        row(*(v if p is None else p(v) for v, p in zip(values, processors, strict=True)))
        for values in cursor.fetchall()
    ]
