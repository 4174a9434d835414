"""`events republish`: the stored events published again, in their original order and
with their original CloudEvents `id`s (a consumer's id check makes a second copy
harmless): after a stream was lost, or to backfill a new consumer's own stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select

from events.stream import StreamPublisher
from worker.adapters import tables as t
from worker.adapters.db import Database

BATCH = 500


class BeyondRetention(ValueError):
    """The window starts before what the outbox is sure to hold."""


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime | None = None
    service_mail_id: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        found = [t.outbox.c.created_at >= self.since, t.outbox.c.sent_at.is_not(None)]
        if self.until is not None:
            found.append(t.outbox.c.created_at < self.until)
        if self.service_mail_id is not None:
            found.append(t.outbox.c.subject == self.service_mail_id)
        return found


def check_window(window: Window, kept_since: datetime) -> None:
    if window.since < kept_since:
        raise BeyondRetention(
            f"--since {window.since.isoformat()} reaches past what the outbox still holds: "
            f"published events are kept from {kept_since.isoformat()} on "
            "(QUOTA_OUTBOX_RETENTION_SECONDS); ask from then, or restore the stream from a "
            "backup for what is older"
        )


def count_query(window: Window) -> Any:
    return select(func.count()).where(*window.where())


def count(database: Database, window: Window) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(count_query(window)).scalar_one())


def republish(
    database: Database,
    publisher: StreamPublisher,
    window: Window,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Publish the window's published events again, in id (commit) order; how many."""
    sent = 0
    for rows in _batches(database, window):
        publisher.publish([{"type": r.type, "subject": r.subject, "event": r.body} for r in rows])
        sent += len(rows)
        progress(sent)
    return sent


def batch_query(window: Window, after: int) -> Any:
    """The window's next batch of events after id `after`, in id (commit) order."""
    columns = (t.outbox.c.id, t.outbox.c.type, t.outbox.c.subject, t.outbox.c.body)
    return (
        select(*columns)
        .where(*window.where(), t.outbox.c.id > after)
        .order_by(t.outbox.c.id)
        .limit(BATCH)
    )


def _batches(database: Database, window: Window) -> Iterator[list[Any]]:
    after = 0
    while True:
        with database.engine.connect() as conn:
            rows = list(conn.execute(batch_query(window, after)))
        if not rows:
            return
        yield rows
        after = rows[-1].id
