"""The aggregates' store as the handlers see it, and what it saves at the commit.

A handler gets aggregates from the repository, calls the domain, and adds what is
new; the repository remembers every aggregate it handed out as it was read, and the
unit of work's commit saves what changed, always in the same order. The reads lock
as the contract needs: anything read for an order first takes that order's lock,
and a Service Mail is row-locked when read. Two implementations: the SQL one
(`worker.adapters.repository`) and the in-memory one (`worker.adapters.memory`), held
to the same tests (tests/integration/test_repository_contract.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from domain.addresses import AddressChanges, AddressSnapshot
from domain.events import DomainEvent, QuotaChanged
from domain.mail import ServiceMail
from domain.model import QuotaChange
from domain.payment import Payment
from domain.provisioning import OpenChange
from events.outbound import OutboundEvent
from worker.adapters.deliveries import StoredBody

Aggregate = ServiceMail | QuotaChange | Payment
A = TypeVar("A", ServiceMail, QuotaChange, Payment)


@dataclass(frozen=True)
class RequestFacts:
    """What a change request is decided on (read in one round trip on PostgreSQL)."""

    existing: QuotaChange | None  # the change with this request id, else with this order id
    mail: ServiceMail | None  # row-locked, with A counted
    other_change_awaiting: bool
    early_cancel: str | None  # an order's cancel that came before its request
    held_payments: list[Payment]  # payments that came before it, oldest first


@dataclass(frozen=True)
class PaymentFacts:
    """What a payment is decided on (read in one round trip on PostgreSQL)."""

    existing: Payment | None  # the payment received before with this id
    change: QuotaChange | None  # the order's change
    mail: ServiceMail | None  # row-locked with A counted, only while the change awaits payment


@dataclass(frozen=True)
class ProvisioningFacts:
    """What a provisioning is decided on: the Service Mail (row-locked, A counted; None if
    new) and its open changes (received or awaiting payment), their orders locked first:
    the one awaiting payment first, then those received, oldest first."""

    mail: ServiceMail | None
    open_changes: list[OpenChange]


@dataclass(frozen=True)
class Processed:
    """A message handled in the unit of work, recorded at its commit (a redelivery's
    record fails on the key)."""

    message_id: str
    task: str
    outcome: str
    order_id: str | None


@dataclass(frozen=True)
class SnapshotFacts:
    """What an address snapshot is decided on: when the last one applied to the Service Mail
    was taken (None if none was) and the addresses counted now."""

    last_taken_at: datetime | None
    addresses: frozenset[str]


def _key(aggregate: Aggregate) -> tuple[type, str]:
    match aggregate:
        case ServiceMail():
            return ServiceMail, aggregate.id
        case QuotaChange():
            return QuotaChange, aggregate.request_id
        case Payment():
            return Payment, aggregate.payment_id


def _state(aggregate: Aggregate) -> dict[str, Any]:
    """What is saved of an aggregate (a change's transitions are saved as they come)."""
    return {
        f.name: getattr(aggregate, f.name) for f in fields(aggregate) if f.name != "transitions"
    }


class Repository(ABC):
    def __init__(self) -> None:
        self._read: dict[tuple[type, str], tuple[Aggregate, dict[str, Any]]] = {}
        self._added: dict[tuple[type, str], Aggregate] = {}

    # -- what the handlers call ------------------------------------------
    @abstractmethod
    def request_facts(self, change: QuotaChange) -> RequestFacts:
        """Everything `change` is decided on; locks its order, then its Service Mail."""

    @abstractmethod
    def payment_facts(self, payment_id: str, order_id: str) -> PaymentFacts:
        """Everything a payment is decided on; locks its order, then the Service Mail."""

    @abstractmethod
    def provisioning_facts(self, service_mail_id: str) -> ProvisioningFacts:
        """Everything a provisioning is decided on; locks the orders of the Service Mail's
        open changes, then the Service Mail."""

    @abstractmethod
    def change_of_order(self, order_id: str) -> QuotaChange | None:
        """The order's change (an order holds one at most); locks the order."""

    @abstractmethod
    def payment(self, payment_id: str, order_id: str) -> Payment | None:
        """A payment of `order_id`; locks the order."""

    @abstractmethod
    def service_mail(self, service_mail_id: str) -> ServiceMail | None:
        """The Service Mail, row-locked, with A counted."""

    @abstractmethod
    def add_service_mail_if_absent(self, mail: ServiceMail, now: datetime) -> bool:
        """Store a Service Mail not known yet (at once); False if it was."""

    @abstractmethod
    def add_address(self, service_mail_id: str, address: str, now: datetime) -> bool:
        """Count an address (False if known), under its Service Mail's row lock: a decrease
        being decided sees it or waits."""

    @abstractmethod
    def delete_address(self, service_mail_id: str, address: str) -> bool:
        """Remove an address (False if unknown), under its Service Mail's row lock."""

    @abstractmethod
    def snapshot_facts(self, service_mail_id: str) -> SnapshotFacts:
        """Locks the Service Mail's snapshots (even of a Service Mail not provisioned yet),
        then its row, so a snapshot serialises with the address facts and the requests."""

    @abstractmethod
    def apply_snapshot(
        self, snapshot: AddressSnapshot, changes: AddressChanges, now: datetime
    ) -> None:
        """Add and remove the addresses in a few set-based statements, and record the
        snapshot's `taken_at` as the last one applied."""

    @abstractmethod
    def hold_early_cancel(self, order_id: str, reason: str, now: datetime) -> None:
        """Keep a cancel until its request comes; a repeated cancel keeps the first."""

    def add(self, aggregate: Aggregate) -> None:
        """A new aggregate, inserted at the commit."""
        self._added[_key(aggregate)] = aggregate

    # -- what the bus and the sweep call ---------------------------------
    @abstractmethod
    def is_processed(self, message_id: str) -> bool: ...

    @abstractmethod
    def processed_among(self, message_ids: Sequence[str]) -> set[str]:
        """Those of `message_ids` processed already (a batch's redeliveries), in one read."""

    @abstractmethod
    def lock_in_order(self, order_ids: Sequence[str], service_mail_ids: Sequence[str]) -> None:
        """A batch's locks up front, in one global order: the orders (sorted), then the
        Service Mails (sorted): those named, and those the orders' changes awaiting
        payment are for. The handlers' own reads then take locks already held."""

    @abstractmethod
    def due_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(request id, order id) of changes past their deadline, oldest first."""

    @abstractmethod
    def unprovisioned_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(request id, order id) of changes received for a Service Mail not provisioned,
        whose grace ended by `now` or whose Service Mail exists meanwhile; oldest first."""

    @abstractmethod
    def unmatched_payments(self, received_before: datetime, limit: int) -> list[tuple[str, str]]:
        """(payment id, order id) of payments still pending, oldest first."""

    @abstractmethod
    def add_dead_letter(
        self,
        *,
        message_id: str | None,
        task: str | None,
        body: StoredBody,
        content_type: str | None,
        error: str,
        now: datetime,
    ) -> None: ...

    # -- what the unit of work's commit calls ----------------------------
    def save_changed(self, message_id: str | None, now: datetime) -> list[Aggregate]:
        """Write what was added or changed: changes (with their transitions, recorded
        as caused by `message_id`), then payments, then Service Mails; what was written."""
        written: list[Aggregate] = []
        for kind in (QuotaChange, Payment, ServiceMail):
            for key, aggregate in self._added.items():
                if key[0] is kind:
                    self._insert(aggregate, message_id, now)
                    written.append(aggregate)
            for key, (aggregate, as_read) in self._read.items():
                if key[0] is kind and key not in self._added and _state(aggregate) != as_read:
                    self._update(aggregate, message_id, now)
                    written.append(aggregate)
        for aggregate in written:
            self._read[_key(aggregate)] = (aggregate, _state(aggregate))
        self._added.clear()
        return written

    @abstractmethod
    def mark_processed(self, messages: Sequence[Processed], now: datetime) -> None:
        """Record the messages as processed; the commit fails if one already was."""

    @abstractmethod
    def add_to_outbox(
        self, events: Sequence[tuple[DomainEvent, OutboundEvent]], now: datetime
    ) -> None:
        """The events as the relay will publish them, in the same transaction."""

    @abstractmethod
    def add_limit_history(self, changes: Sequence[QuotaChanged]) -> None:
        """The history of a Service Mail's limit, one row per applied change."""

    # -- for the implementations -----------------------------------------
    def _seen(self, aggregate: A) -> A:
        """The aggregate as read; the one handed out before, if read twice."""
        key = _key(aggregate)
        if key in self._added:
            return self._added[key]  # type: ignore[return-value]
        if key not in self._read:
            self._read[key] = (aggregate, _state(aggregate))
        return self._read[key][0]  # type: ignore[return-value]

    @abstractmethod
    def _insert(self, aggregate: Aggregate, message_id: str | None, now: datetime) -> None: ...

    @abstractmethod
    def _update(self, aggregate: Aggregate, message_id: str | None, now: datetime) -> None: ...
