"""One transaction per message: state, outbox rows and processed id commit together."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType

from sqlalchemy import Connection, RootTransaction
from sqlalchemy.exc import IntegrityError

from domain.events import DomainEvent, QuotaChanged
from events.outbound import to_cloudevent
from worker.adapters import tables as t
from worker.adapters.db import Database
from worker.adapters.repository import INSERT, Repository, already_processed


class UnitOfWork:
    def __init__(
        self,
        database: Database,
        event_source: str,
        on_events_committed: Callable[[list[DomainEvent]], None],
    ) -> None:
        self._database = database
        self._event_source = event_source
        self._on_events_committed = on_events_committed
        self._events: list[DomainEvent] = []
        self._conn: Connection | None = None
        self._tx: RootTransaction | None = None
        self._published = False
        # The inbound message being handled, recorded on every transition.
        self.message_id: str | None = None

    def __enter__(self) -> UnitOfWork:
        self._conn = self._database.engine.connect()
        self._tx = self._conn.begin()
        self.repo = Repository(self._conn)
        self._events = []
        self._published = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None and self._tx is not None
        try:
            if self._tx.is_active:
                self._tx.rollback()
        finally:
            self._conn.close()
        if self._published:
            self._on_events_committed(self._events)

    def emit(self, events: Iterable[DomainEvent]) -> None:
        self._events.extend(events)

    @property
    def emitted(self) -> list[DomainEvent]:
        return list(self._events)

    def commit(
        self,
        now: datetime,
        *,
        message_id: str | None = None,
        task: str = "",
        outcome: str = "",
        order_id: str | None = None,
    ) -> bool:
        """Commit everything at once; False, with nothing written, if `message_id` was
        already processed (a redelivery: its processed row is already there)."""
        assert self._conn is not None and self._tx is not None
        if message_id is not None:
            self.repo.mark_processed(message_id, task, outcome, order_id, now)
        if self._events:
            self._write_outbox(now)
        try:
            self.repo.queue.commit(self._tx)
        except IntegrityError as exc:
            if message_id is None or not already_processed(exc):
                raise
            self._events = []
            return False
        self._published = bool(self._events)
        return True

    def _write_outbox(self, now: datetime) -> None:
        rows = []
        for event in self._events:
            out = to_cloudevent(event, self._event_source, now)
            rows.append(
                {
                    "event_id": out.id,
                    "type": out.type,
                    "subject": out.subject,
                    "body": out.body,
                    "order_id": event.order_id,
                    "created_at": now,
                }
            )
        self.repo.queue.write(INSERT[t.outbox], rows)
        history = [e for e in self._events if isinstance(e, QuotaChanged)]
        if history:
            self.repo.queue.write(
                INSERT[t.limit_history],
                [
                    {
                        "service_mail_id": e.service_mail_id,
                        "version": e.version,
                        "request_id": e.request_id,
                        "previous_address_limit": e.previous_address_limit,
                        "address_limit": e.address_limit,
                        "addresses_in_use": e.addresses_in_use,
                        "plan": e.plan,
                        "applied_at": e.applied_at,
                    }
                    for e in history
                ],
            )
