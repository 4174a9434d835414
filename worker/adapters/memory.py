"""The repository and unit of work in memory: the handlers, the bus and the tasks tested
with no I/O, on a store held to the same contract tests as the database
(tests/integration/test_repository_contract.py).

One unit of work at a time holds the store (as SQLite's BEGIN IMMEDIATE does); it works
on a copy, which its commit puts in place.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from domain.addresses import AddressChanges, AddressSnapshot
from domain.events import DomainEvent, QuotaChanged
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment, PaymentStatus
from domain.provisioning import OpenChange
from events.outbound import OutboundEvent
from worker.adapters import rows
from worker.adapters.deliveries import StoredBody
from worker.service.repository import (
    Aggregate,
    PaymentFacts,
    Processed,
    ProvisioningFacts,
    Repository,
    RequestFacts,
    SnapshotFacts,
)
from worker.service.uow import OnCommitted, UnitOfWork


@dataclass
class Tables:
    service_mails: dict[str, dict[str, Any]] = field(default_factory=dict)
    addresses: dict[str, set[str]] = field(default_factory=dict)
    address_snapshots: dict[str, datetime] = field(default_factory=dict)  # taken_at
    quota_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    early_cancels: dict[str, str] = field(default_factory=dict)
    processed_messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    limit_history: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class InMemoryStore:
    def __init__(self) -> None:
        self.tables = Tables()
        self.lock = threading.Lock()


def _row(values: dict[str, Any]) -> Any:
    return SimpleNamespace(**values)


class InMemoryRepository(Repository):
    def __init__(self, tables: Tables) -> None:
        super().__init__()
        self.t = tables
        self.processed_now: list[str] = []

    def _changes(self) -> list[dict[str, Any]]:
        return list(self.t.quota_changes.values())

    def _change_where(self, **match: Any) -> QuotaChange | None:
        for row in self._changes():
            if all(row[k] == v for k, v in match.items()):
                return self._seen(rows.change(_row(row)))
        return None

    def _mail(self, service_mail_id: str | None) -> ServiceMail | None:
        row = self.t.service_mails.get(service_mail_id or "")
        if row is None:
            return None
        in_use = len(self.t.addresses.get(row["id"], ()))
        mail, _awaiting = rows.mail([_row(row)], [_row({"in_use": in_use, "awaiting": False})])
        return None if mail is None else self._seen(mail)

    def _held_payments(self, order_id: str) -> list[Payment]:
        held = sorted(
            (p for p in self.t.payments.values() if p["order_id"] == order_id),
            key=lambda p: (p["received_at"], p["payment_id"]),
        )
        return [
            self._seen(rows.payment(_row(p)))
            for p in held
            if p["status"] == PaymentStatus.PENDING.value
        ]

    def provisioning_facts(self, service_mail_id: str) -> ProvisioningFacts:
        open_states = {ChangeState.RECEIVED.value, ChangeState.AWAITING_PAYMENT.value}
        changes = [
            self._seen(rows.change(_row(c)))
            for c in self._changes()
            if c["service_mail_id"] == service_mail_id and c["state"] in open_states
        ]
        return ProvisioningFacts(
            mail=self._mail(service_mail_id),
            open_changes=[
                OpenChange(c)
                if c.state is ChangeState.AWAITING_PAYMENT
                else OpenChange(
                    c, self.t.early_cancels.get(c.order_id), self._held_payments(c.order_id)
                )
                for c in sorted(changes, key=lambda c: c.state is ChangeState.RECEIVED)
            ],
        )

    def request_facts(self, change: QuotaChange) -> RequestFacts:
        existing = self._change_where(request_id=change.request_id) or self._change_where(
            order_id=change.order_id
        )
        return RequestFacts(
            existing=existing,
            mail=self._mail(change.service_mail_id),
            other_change_awaiting=any(
                c["service_mail_id"] == change.service_mail_id
                and c["state"] == ChangeState.AWAITING_PAYMENT.value
                for c in self._changes()
            ),
            early_cancel=self.t.early_cancels.get(change.order_id),
            held_payments=self._held_payments(change.order_id),
        )

    def payment_facts(self, payment_id: str, order_id: str) -> PaymentFacts:
        change = self._change_where(order_id=order_id)
        awaiting = change is not None and change.state is ChangeState.AWAITING_PAYMENT
        return PaymentFacts(
            existing=self.payment(payment_id, order_id),
            change=change,
            mail=self._mail(change.service_mail_id) if awaiting and change else None,
        )

    def change_of_order(self, order_id: str) -> QuotaChange | None:
        return self._change_where(order_id=order_id)

    def payment(self, payment_id: str, order_id: str) -> Payment | None:
        row = self.t.payments.get(payment_id)
        return None if row is None else self._seen(rows.payment(_row(row)))

    def service_mail(self, service_mail_id: str) -> ServiceMail | None:
        return self._mail(service_mail_id)

    def add_service_mail_if_absent(self, mail: ServiceMail, now: datetime) -> bool:
        if mail.id in self.t.service_mails:
            return False
        self.t.service_mails[mail.id] = {**rows.mail_row(mail), "updated_at": now}
        return True

    def add_address(self, service_mail_id: str, address: str, now: datetime) -> bool:
        known = self.t.addresses.setdefault(service_mail_id, set())
        if address in known:
            return False
        known.add(address)
        return True

    def delete_address(self, service_mail_id: str, address: str) -> bool:
        known = self.t.addresses.get(service_mail_id, set())
        if address not in known:
            return False
        known.discard(address)
        return True

    def snapshot_facts(self, service_mail_id: str) -> SnapshotFacts:
        counted = frozenset(self.t.addresses.get(service_mail_id, ()))
        return SnapshotFacts(self.t.address_snapshots.get(service_mail_id), counted)

    def apply_snapshot(
        self, snapshot: AddressSnapshot, changes: AddressChanges, now: datetime
    ) -> None:
        known = self.t.addresses.setdefault(snapshot.service_mail_id, set())
        known -= changes.removed
        known |= changes.added
        self.t.address_snapshots[snapshot.service_mail_id] = snapshot.taken_at

    def hold_early_cancel(self, order_id: str, reason: str, now: datetime) -> None:
        self.t.early_cancels.setdefault(order_id, reason)

    def is_processed(self, message_id: str) -> bool:
        return message_id in self.t.processed_messages

    def processed_among(self, message_ids: Sequence[str]) -> set[str]:
        return {m for m in message_ids if m in self.t.processed_messages}

    def lock_in_order(self, order_ids: Sequence[str], service_mail_ids: Sequence[str]) -> None:
        pass  # one unit of work at a time in memory

    def due_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = [
            c
            for c in self._changes()
            if c["state"] == ChangeState.AWAITING_PAYMENT.value and c["expires_at"] <= now
        ]
        due.sort(key=lambda c: c["expires_at"])
        return [(c["request_id"], c["order_id"]) for c in due[:limit]]

    def unprovisioned_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        waiting = [
            c
            for c in self._changes()
            if c["state"] == ChangeState.RECEIVED.value
            and (c["expires_at"] <= now or c["service_mail_id"] in self.t.service_mails)
        ]
        waiting.sort(key=lambda c: c["expires_at"])
        return [(c["request_id"], c["order_id"]) for c in waiting[:limit]]

    def unmatched_payments(self, received_before: datetime, limit: int) -> list[tuple[str, str]]:
        pending = [
            p
            for p in self.t.payments.values()
            if p["status"] == PaymentStatus.PENDING.value and p["received_at"] <= received_before
        ]
        pending.sort(key=lambda p: p["received_at"])
        return [(p["payment_id"], p["order_id"]) for p in pending[:limit]]

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
        self.t.dead_letters.append(
            {"message_id": message_id, "task": task, "body": body.text, "error": error}
        )

    def _insert(self, aggregate: Aggregate, message_id: str | None, now: datetime) -> None:
        self._update(aggregate, message_id, now)

    def _update(self, aggregate: Aggregate, message_id: str | None, now: datetime) -> None:
        match aggregate:
            case QuotaChange():
                self.t.quota_changes[aggregate.request_id] = rows.change_row(aggregate)
                self.t.transitions += rows.transition_rows(aggregate, message_id)
                aggregate.transitions.clear()
            case Payment():
                self.t.payments[aggregate.payment_id] = rows.payment_row(aggregate)
            case ServiceMail():
                self.t.service_mails[aggregate.id] = {**rows.mail_row(aggregate), "updated_at": now}

    def mark_processed(self, messages: Sequence[Processed], now: datetime) -> None:
        for m in messages:
            self.processed_now.append(m.message_id)
            self.t.processed_messages[m.message_id] = {"task": m.task, "outcome": m.outcome}

    def add_to_outbox(
        self, events: Sequence[tuple[DomainEvent, OutboundEvent]], now: datetime
    ) -> None:
        self.t.outbox += [rows.outbox_row(*pair, now) for pair in events]

    def add_limit_history(self, changes: Sequence[QuotaChanged]) -> None:
        self.t.limit_history += [rows.history_row(e) for e in changes]


class InMemoryUnitOfWork(UnitOfWork):
    def __init__(
        self, store: InMemoryStore, event_source: str, on_events_committed: OnCommitted
    ) -> None:
        super().__init__(event_source, on_events_committed)
        self.store = store
        self._working: InMemoryRepository | None = None

    def _begin(self) -> InMemoryRepository:
        self.store.lock.acquire()
        self._working = InMemoryRepository(copy.deepcopy(self.store.tables))
        return self._working

    def _commit(self, *, redelivery_possible: bool) -> bool:
        assert self._working is not None
        before = self.store.tables.processed_messages
        if any(m in before for m in self._working.processed_now):
            return False
        self.store.tables = self._working.t
        self._working = None
        return True

    def _end(self) -> None:
        self._working = None
        self.store.lock.release()
