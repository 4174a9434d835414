"""Nothing grows without bound: published events past QUOTA_OUTBOX_RETENTION_SECONDS,
processed-message ids past QUOTA_DEDUP_RETENTION_SECONDS and discarded dead letters past
the same are deleted, oldest first, in small batches of their own short transactions, so
no lock is held long and the message path is never kept waiting.

What is never pruned: the history of changes, transitions, payments and limits, and the
business keys they hold (a request, order or payment id seen again long after its
message id was pruned is still recognised by them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, literal_column, select

from worker.adapters import tables as t
from worker.adapters.db import Database

BATCH = 500


@dataclass(frozen=True)
class Retention:
    outbox: timedelta
    dedup: timedelta


@dataclass(frozen=True)
class _Kind:
    name: str  # as reported (`published_events`)
    table: Table
    key: Any  # the primary key column
    age: Any  # the column the age is read from (indexed)
    retention: Callable[[Retention], timedelta]
    only: Callable[[], list[ColumnElement[bool]]]  # which rows may go at all


KINDS = (
    _Kind(
        "published_events", t.outbox, t.outbox.c.id, t.outbox.c.created_at,
        lambda r: r.outbox, lambda: [t.outbox.c.sent_at.is_not(None)],
    ),
    _Kind(
        "processed_message_ids", t.processed_messages, t.processed_messages.c.message_id,
        t.processed_messages.c.processed_at, lambda r: r.dedup, lambda: [],
    ),
    _Kind(
        "discarded_dead_letters", t.dead_letters, t.dead_letters.c.id,
        t.dead_letters.c.resolved_at, lambda r: r.dedup,
        # A constant in the SQL, so the partial index serves the generic plan (issue 19).
        lambda: [t.dead_letters.c.status == literal_column("'discarded'")],
    ),
)  # fmt: skip


def prune(
    database: Database,
    retention: Retention,
    now: datetime,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    max_batches: int | None = None,
    progress: Callable[[str, int], None] = lambda kind, n: None,
) -> dict[str, int]:
    """Rows removed (or, with `dry_run`, that would be) per kind; `max_batches` bounds one
    pass of each kind (the worker's own passes), None runs until nothing is left."""
    done: dict[str, int] = {}
    for kind in KINDS:
        where = expired(kind, retention, now)
        if dry_run:
            with database.engine.connect() as conn:
                done[kind.name] = conn.execute(select(func.count()).where(*where)).scalar_one()
            continue
        done[kind.name] = _delete_in_batches(database, kind, where, batch, max_batches, progress)
    return done


def expired(kind: _Kind, retention: Retention, now: datetime) -> list[ColumnElement[bool]]:
    return [kind.age < now - kind.retention(retention), *kind.only()]


def oldest(kind: _Kind, where: list[ColumnElement[bool]], batch: int) -> Any:
    """A batch of the oldest rows that may go (served by the index on the age column)."""
    return select(kind.key).where(*where).order_by(kind.age).limit(batch)


def remove(kind: _Kind, keys: list[Any]) -> Any:
    return delete(kind.table).where(kind.key.in_(keys))


def _delete_in_batches(
    database: Database,
    kind: _Kind,
    where: list[ColumnElement[bool]],
    batch: int,
    max_batches: int | None,
    progress: Callable[[str, int], None],
) -> int:
    first = oldest(kind, where, batch)
    removed = batches = 0
    while max_batches is None or batches < max_batches:
        with database.engine.begin() as conn:
            keys = list(conn.scalars(first))
            if keys:
                conn.execute(remove(kind, keys))
        removed, batches = removed + len(keys), batches + 1
        if keys:
            progress(kind.name, removed)
        if len(keys) < batch:
            break
    return removed
