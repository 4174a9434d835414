"""The unit of work: one transaction per message, in which the changed aggregates, the
outbox rows, the limit history and the processed id commit together.

`UnitOfWork` is the whole behaviour; a subclass gives it a transaction (`SqlUnitOfWork`
here, `InMemoryUnitOfWork` in worker/adapters/memory.py for tests without I/O).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, RootTransaction
from sqlalchemy.exc import IntegrityError

from domain.events import DomainEvent, QuotaChanged
from domain.payment import Payment, PaymentStatus
from events.outbound import OutboundEvent, to_cloudevent
from worker.adapters.db import Database, already_processed
from worker.adapters.pipeline import StatementQueue
from worker.adapters.repository import SqlRepository
from worker.service.repository import Processed, Repository

# Told, after a commit that wrote events, what they were and which payments were used.
OnCommitted = Callable[[list[DomainEvent], list[Payment]], None]


class UnitOfWork(ABC):
    repo: Repository

    def __init__(self, event_source: str, on_events_committed: OnCommitted) -> None:
        self._event_source = event_source
        self._on_events_committed = on_events_committed
        self._events: list[DomainEvent] = []
        self._used: list[Payment] = []
        self._published = False
        self._processed: list[Processed] = []
        self._outbox: list[tuple[DomainEvent, OutboundEvent]] = []
        # The inbound message being handled, recorded on every transition.
        self.message_id: str | None = None

    def __enter__(self) -> Self:
        self.repo = self._begin()
        self._events, self._used, self._published = [], [], False
        self._processed, self._outbox = [], []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()
        if self._published:
            self._on_events_committed(self._events, self._used)

    def emit(self, events: Iterable[DomainEvent]) -> None:
        self._events.extend(events)

    @property
    def emitted(self) -> list[DomainEvent]:
        return list(self._events)

    def stage(self, now: datetime, processed: Processed | None = None) -> None:
        """Queue the writes of the message handled since the last stage: what it changed
        (its transitions recorded as caused by `self.message_id`), its processed id, its
        events' outbox rows and limit history. A batch stages each of its messages."""
        written = self.repo.save_changed(self.message_id, now)
        if processed is not None:
            self._processed.append(processed)
        # The events not yet staged: each staged one has its outbox pair.
        events = self._events[len(self._outbox) :]
        self._outbox += [(e, to_cloudevent(e, self._event_source, now)) for e in events]
        self._used += [
            p for p in written if isinstance(p, Payment) and p.status is PaymentStatus.USED
        ]

    def commit(
        self,
        now: datetime,
        *,
        message_id: str | None = None,
        task: str = "",
        outcome: str = "",
        order_id: str | None = None,
    ) -> bool:
        """Commit everything at once; False, with nothing written, if a staged message id
        (or `message_id`) was already processed (a redelivery: its processed row is
        already there)."""
        done = None if message_id is None else Processed(message_id, task, outcome, order_id)
        self.stage(now, done)
        # Written last, one statement each for the whole batch: nothing reads them back
        # before the commit (a batch reads its processed ids first).
        self.repo.mark_processed(self._processed, now)
        self.repo.add_to_outbox(self._outbox, now)
        self.repo.add_limit_history([e for e, _ in self._outbox if isinstance(e, QuotaChanged)])
        if not self._commit(redelivery_possible=bool(self._processed)):
            self._events, self._used = [], []
            return False
        self._published = bool(self._events)
        return True

    @abstractmethod
    def _begin(self) -> Repository:
        """Start the transaction; the repository working in it."""

    @abstractmethod
    def _commit(self, *, redelivery_possible: bool) -> bool:
        """Commit; False if the processed id was already there (nothing is written)."""

    @abstractmethod
    def _end(self) -> None:
        """Roll back whatever was not committed and let the transaction go."""


class SqlUnitOfWork(UnitOfWork):
    def __init__(
        self, database: Database, event_source: str, on_events_committed: OnCommitted
    ) -> None:
        super().__init__(event_source, on_events_committed)
        self._database = database
        self._conn: Connection | None = None
        self._tx: RootTransaction | None = None
        self._queue: StatementQueue | None = None

    def _begin(self) -> SqlRepository:
        self._conn = self._database.engine.connect()
        self._tx = self._conn.begin()
        self._queue = StatementQueue(self._conn)
        return SqlRepository(self._queue, postgres=self._conn.dialect.name == "postgresql")

    def _commit(self, *, redelivery_possible: bool) -> bool:
        assert self._queue is not None and self._tx is not None
        try:
            self._queue.commit(self._tx)
        except IntegrityError as exc:
            if redelivery_possible and already_processed(exc):
                return False
            raise
        return True

    def _end(self) -> None:
        assert self._conn is not None and self._tx is not None
        try:
            if self._tx.is_active:
                self._tx.rollback()
        finally:
            self._conn.close()
