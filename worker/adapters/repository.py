"""The repository on SQL: reads and writes of the aggregates in the unit of work's
transaction, each statement from `statements.py`, each row shape from `rows.py`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from domain.addresses import AddressChanges, AddressSnapshot
from domain.events import DomainEvent, QuotaChanged
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment
from domain.provisioning import OpenChange
from events.outbound import OutboundEvent
from worker.adapters import rows
from worker.adapters import statements as sql
from worker.adapters import tables as t
from worker.adapters.deliveries import StoredBody
from worker.adapters.pipeline import StatementQueue
from worker.service.repository import (
    Aggregate,
    PaymentFacts,
    Processed,
    ProvisioningFacts,
    Repository,
    RequestFacts,
    SnapshotFacts,
)


class SqlRepository(Repository):
    """Writes go into the unit of work's statement queue; each read sends them ahead of
    it, and the commit sends the rest: on PostgreSQL a handler's reads and its commit
    are a round trip each, however many statements they hold."""

    def __init__(self, queue: StatementQueue, *, postgres: bool) -> None:
        super().__init__()
        self.queue = queue
        self.is_postgres = postgres
        self._locked_orders: set[str] = set()

    def _rows(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        return self.queue.read((statement, params))[0]

    def _lock_order(self, order_id: str) -> None:
        """Serialize every message of one order (request, payments, cancel, expiry); sent
        with the next read. SQLite needs nothing: BEGIN IMMEDIATE holds the write lock."""
        if self.is_postgres and order_id not in self._locked_orders:
            self.queue.write(sql.LOCK_ORDER, {"order_id": order_id})
            self._locked_orders.add(order_id)

    def _lock_mail(self, service_mail_id: str) -> None:
        self.queue.write(sql.MAIL_FOR_UPDATE, {"id": service_mail_id})  # sent with the next read

    def _mail(self, reads: list[list[Any]]) -> tuple[ServiceMail | None, bool]:
        mail, awaiting = rows.mail(*reads)
        return (None if mail is None else self._seen(mail)), awaiting

    # -- reads -------------------------------------------------------------
    def request_facts(self, change: QuotaChange) -> RequestFacts:
        self._lock_order(change.order_id)
        changes, *mail_reads, order_rows = self.queue.read(
            (sql.CHANGE_BY_REQUEST_OR_ORDER, {"r": change.request_id, "o": change.order_id}),
            *sql.locked_mail_reads(sql.MAIL_FACTS, {"id": change.service_mail_id}),
            (sql.ORDER_FACTS, {"o": change.order_id}),
        )
        found = sorted(changes, key=lambda r: r.request_id != change.request_id)
        mail, awaiting = self._mail(mail_reads)
        early_cancel, held_payments = self._order(order_rows)
        return RequestFacts(
            existing=self._seen(rows.change(found[0])) if found else None,
            mail=mail,
            other_change_awaiting=awaiting,
            early_cancel=early_cancel,
            held_payments=held_payments,
        )

    def payment_facts(self, payment_id: str, order_id: str) -> PaymentFacts:
        self._lock_order(order_id)
        known, changes, *mail_reads = self.queue.read(
            (sql.PAYMENT, {"id": payment_id}),
            (sql.CHANGE_BY_ORDER, {"o": order_id}),
            *sql.locked_mail_reads(
                sql.AWAITING_MAIL_IN_USE, {"o": order_id}, sql.AWAITING_MAIL_FOR_UPDATE
            ),
        )
        return PaymentFacts(
            existing=self._seen(rows.payment(known[0])) if known else None,
            change=self._seen(rows.change(changes[0])) if changes else None,
            mail=self._mail(mail_reads)[0],
        )

    def provisioning_facts(self, service_mail_id: str) -> ProvisioningFacts:
        params = {"id": service_mail_id}
        orders = {r.order_id for r in self._rows(sql.OPEN_ORDERS_OF_MAIL, params)}
        while True:
            for order_id in sorted(orders):
                self._lock_order(order_id)
            *mail_reads, found = self.queue.read(
                *sql.locked_mail_reads(sql.MAIL_IN_USE, params), (sql.OPEN_CHANGES_OF_MAIL, params)
            )
            opened = {r.order_id for r in found} - orders
            if not opened or not self.is_postgres:
                break
            # Opened between the two reads (rare): its order is locked after the Service
            # Mail, which may deadlock with its payment; PostgreSQL ends one, retried.
            orders |= opened
        changes = [self._seen(rows.change(r)) for r in found]
        received = [c for c in changes if c.state is ChangeState.RECEIVED]
        order_reads = (
            self.queue.read(*[(sql.ORDER_FACTS, {"o": c.order_id}) for c in received])
            if received
            else []
        )
        held = {c.request_id: self._order(r) for c, r in zip(received, order_reads, strict=True)}
        return ProvisioningFacts(
            mail=self._mail(mail_reads)[0],
            open_changes=[
                OpenChange(c, *held.get(c.request_id, (None, [])))
                for c in sorted(changes, key=lambda c: c.state is ChangeState.RECEIVED)
            ],
        )

    def _order(self, order_rows: list[Any]) -> tuple[str | None, list[Payment]]:
        """An order's early cancel and held payments, from ORDER_FACTS."""
        payments = [self._seen(rows.payment(r)) for r in order_rows if r.payment_id is not None]
        return order_rows[0].early_cancel, payments

    def change_of_order(self, order_id: str) -> QuotaChange | None:
        self._lock_order(order_id)
        found = self._rows(sql.CHANGE_BY_ORDER, {"o": order_id})
        return self._seen(rows.change(found[0])) if found else None

    def payment(self, payment_id: str, order_id: str) -> Payment | None:
        self._lock_order(order_id)
        found = self._rows(sql.PAYMENT, {"id": payment_id})
        return self._seen(rows.payment(found[0])) if found else None

    def service_mail(self, service_mail_id: str) -> ServiceMail | None:
        reads = self.queue.read(*sql.locked_mail_reads(sql.MAIL_IN_USE, {"id": service_mail_id}))
        return self._mail(reads)[0]

    def is_processed(self, message_id: str) -> bool:
        return bool(self._rows(sql.IS_PROCESSED, {"id": message_id})[0][0])

    def processed_among(self, message_ids: Sequence[str]) -> set[str]:
        return {
            r.message_id
            for r in self._rows(sql.PROCESSED_AMONG[self.is_postgres], {"ids": list(message_ids)})
        }

    def lock_in_order(self, order_ids: Sequence[str], service_mail_ids: Sequence[str]) -> None:
        if not self.is_postgres or not (order_ids or service_mail_ids):
            return  # SQLite: BEGIN IMMEDIATE holds the one write lock
        for order_id in sorted(set(order_ids)):
            self._lock_order(order_id)
        params = {"mails": sorted(set(service_mail_ids)), "orders": sorted(set(order_ids))}
        self._rows(sql.LOCK_MAILS_IN_ORDER, params)

    def due_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        return [
            (r.request_id, r.order_id)
            for r in self._rows(sql.DUE_CHANGES, {"now": now, "n": limit})
        ]

    def unprovisioned_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        found = self._rows(sql.UNPROVISIONED_CHANGES, {"now": now, "n": limit})
        return [(r.request_id, r.order_id) for r in found]

    def unmatched_payments(self, received_before: datetime, limit: int) -> list[tuple[str, str]]:
        found = self._rows(sql.UNMATCHED_PAYMENTS, {"before": received_before, "n": limit})
        return [(r.payment_id, r.order_id) for r in found]

    # -- writes at once ----------------------------------------------------
    def add_service_mail_if_absent(self, mail: ServiceMail, now: datetime) -> bool:
        return self._insert_ignore(t.service_mails, {**rows.mail_row(mail), "updated_at": now})

    def add_address(self, service_mail_id: str, address: str, now: datetime) -> bool:
        self._lock_mail(service_mail_id)
        return self._insert_ignore(
            t.addresses, {"service_mail_id": service_mail_id, "address": address, "created_at": now}
        )

    def delete_address(self, service_mail_id: str, address: str) -> bool:
        self._lock_mail(service_mail_id)
        return bool(self._rows(sql.DELETE_ADDRESS, {"id": service_mail_id, "address": address}))

    def snapshot_facts(self, service_mail_id: str) -> SnapshotFacts:
        reads = self.queue.read(*sql.snapshot_reads(service_mail_id, self.is_postgres))
        return SnapshotFacts(*rows.snapshot(*reads[-2:]))

    def apply_snapshot(
        self, snapshot: AddressSnapshot, changes: AddressChanges, now: datetime
    ) -> None:
        for write in sql.snapshot_writes(snapshot, changes, now, postgres=self.is_postgres):
            self.queue.write(*write)

    def _insert_ignore(self, table: Table, values: dict[str, Any]) -> bool:
        return bool(self._rows(sql.insert_ignore_statement(table, self.is_postgres), values))

    # -- writes queued for the commit --------------------------------------
    def hold_early_cancel(self, order_id: str, reason: str, now: datetime) -> None:
        self.queue.write(
            sql.insert_ignore_statement(t.early_cancels, self.is_postgres),
            {"order_id": order_id, "reason": reason, "received_at": now},
        )

    def _insert(self, aggregate: Aggregate, message_id: str | None, now: datetime) -> None:
        match aggregate:
            case QuotaChange():
                row = {**rows.change_row(aggregate), "created_at": now, "updated_at": now}
                self.queue.write(sql.INSERT[t.quota_changes], row)
                self._record_transitions(aggregate, message_id)
            case Payment():
                self.queue.write(sql.INSERT[t.payments], rows.payment_row(aggregate))
            case ServiceMail():
                row = {**rows.mail_row(aggregate), "updated_at": now}
                self.queue.write(sql.INSERT[t.service_mails], row)

    def _update(self, aggregate: Aggregate, message_id: str | None, now: datetime) -> None:
        match aggregate:
            case QuotaChange():
                row = {"b_id": aggregate.request_id, **rows.change_row(aggregate)}
                self.queue.write(sql.SAVE_CHANGE, {**row, "updated_at": now})
                self._record_transitions(aggregate, message_id)
            case Payment():
                # Only the status moves; the rest is what the payment service sent.
                row = {"b_id": aggregate.payment_id, "status": aggregate.status.value}
                self.queue.write(
                    sql.SAVE_PAYMENT, {**row, "refund_reason": aggregate.refund_reason}
                )
            case ServiceMail():
                row = {"b_id": aggregate.id, **rows.mail_row(aggregate)}
                self.queue.write(sql.SAVE_MAIL, {**row, "updated_at": now})

    def _record_transitions(self, change: QuotaChange, message_id: str | None) -> None:
        self.queue.write(sql.INSERT[t.transitions], rows.transition_rows(change, message_id))
        change.transitions.clear()

    def mark_processed(self, messages: Sequence[Processed], now: datetime) -> None:
        """Queued: if a message already was processed, the commit fails on the primary
        key (`db.already_processed` tells that error)."""
        self.queue.write(
            sql.INSERT[t.processed_messages],
            [
                {
                    "message_id": m.message_id,
                    "task": m.task[:64],  # a refused message's task may be any name
                    "outcome": m.outcome,
                    "order_id": m.order_id,
                    "processed_at": now,
                }
                for m in messages
            ],
        )

    def add_to_outbox(
        self, events: Sequence[tuple[DomainEvent, OutboundEvent]], now: datetime
    ) -> None:
        self.queue.write(sql.INSERT[t.outbox], [rows.outbox_row(*pair, now) for pair in events])

    def add_limit_history(self, changes: Sequence[QuotaChanged]) -> None:
        self.queue.write(sql.INSERT[t.limit_history], [rows.history_row(e) for e in changes])

    def add_dead_letter(
        self,
        *,
        message_id: str | None,
        task: str | None,
        body: StoredBody,
        content_type: str | None,
        error: str,
        now: datetime,
    ) -> None:
        self.queue.write(
            sql.INSERT[t.dead_letters],
            {
                "message_id": message_id,
                "task": task,
                "body": body.text,
                "body_size": body.size,
                "body_sha256": body.sha256,
                "content_type": content_type,
                "error": error,
                "created_at": now,
                "status": "stored",
            },
        )
