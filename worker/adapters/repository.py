"""Reads and writes of the aggregates, inside the unit of work's connection."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from domain.model import ChangeState, Payment, PaymentStatus, QuotaChange, ServiceMail
from worker.adapters import tables as t
from worker.adapters.deliveries import StoredBody
from worker.adapters.pipeline import StatementQueue


def _constant(value: str) -> Any:
    """A state as a constant in the SQL text, never a bind parameter: a prepared statement's
    generic plan can then use a partial index whose predicate names it (issue 19; the
    plans are tested in tests/integration/test_plans.py)."""
    assert value.isidentifier(), value  # an enum's value: nothing to quote
    return literal_column(f"'{value}'")


_AWAITING_PAYMENT = _constant(ChangeState.AWAITING_PAYMENT.value)
_PENDING = _constant(PaymentStatus.PENDING.value)

# The hot path's statements, built once: SQLAlchemy then skips building each
# statement and its cache key per call, and psycopg prepares them server-side.
_LOCK_ORDER = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("order_id"), 0)))
_MAIL_FOR_UPDATE = (
    select(t.service_mails).where(t.service_mails.c.id == bindparam("id")).with_for_update()
)
_ADDRESSES_IN_USE = (
    select(func.count()).where(t.addresses.c.service_mail_id == bindparam("id")).scalar_subquery()
)
_AWAITING = exists().where(
    t.quota_changes.c.service_mail_id == bindparam("id"),
    t.quota_changes.c.state == _AWAITING_PAYMENT,
)
# Run after the row lock: A alone, or A and whether another change awaits payment.
_MAIL_IN_USE = select(_ADDRESSES_IN_USE.label("in_use"), literal(False).label("awaiting"))
_MAIL_FACTS = select(_ADDRESSES_IN_USE.label("in_use"), _AWAITING.label("awaiting"))
_ONE_ROW = select(literal(1).label("one")).subquery()
# An order's held payments and early cancel, in one statement: one row at least
# (the LEFT JOIN), the payment's columns NULL when none is held.
_ORDER_FACTS = (
    select(
        t.payments,
        select(t.early_cancels.c.reason)
        .where(t.early_cancels.c.order_id == bindparam("o"))
        .scalar_subquery()
        .label("early_cancel"),
    )
    .select_from(
        _ONE_ROW.outerjoin(
            t.payments,
            and_(
                t.payments.c.order_id == bindparam("o"),
                t.payments.c.status == _PENDING,
            ),
        )
    )
    .order_by(t.payments.c.received_at, t.payments.c.payment_id)
)
# A payment's Service Mail, through its order's change, only while that change awaits
# payment (the only case in which paying changes the Service Mail): row-locked, then A.
_AWAITING_MAIL_OF_ORDER = (
    select(t.quota_changes.c.service_mail_id)
    .where(
        t.quota_changes.c.order_id == bindparam("o"),
        t.quota_changes.c.state == _AWAITING_PAYMENT,
    )
    .scalar_subquery()
)
_AWAITING_MAIL_FOR_UPDATE = (
    select(t.service_mails)
    .where(t.service_mails.c.id == _AWAITING_MAIL_OF_ORDER)
    .with_for_update(of=t.service_mails)
)
_AWAITING_MAIL_IN_USE = select(
    select(func.count())
    .where(t.addresses.c.service_mail_id == _AWAITING_MAIL_OF_ORDER)
    .scalar_subquery()
    .label("in_use"),
    literal(False).label("awaiting"),
)
_SAVE_MAIL = update(t.service_mails).where(t.service_mails.c.id == bindparam("b_id"))
_CHANGE_BY_REQUEST = select(t.quota_changes).where(t.quota_changes.c.request_id == bindparam("r"))
_CHANGE_BY_ORDER = select(t.quota_changes).where(t.quota_changes.c.order_id == bindparam("o"))
_CHANGE_BY_REQUEST_OR_ORDER = select(t.quota_changes).where(
    or_(
        t.quota_changes.c.request_id == bindparam("r"), t.quota_changes.c.order_id == bindparam("o")
    )
)
_SAVE_CHANGE = update(t.quota_changes).where(t.quota_changes.c.request_id == bindparam("b_id"))
_PAYMENT = select(t.payments).where(t.payments.c.payment_id == bindparam("id"))
_SAVE_PAYMENT = update(t.payments).where(t.payments.c.payment_id == bindparam("b_id"))
# Each table's plain insert, needing no generated key back (no RETURNING on PostgreSQL).
INSERT = {table: insert(table).inline() for table in t.metadata.tables.values()}
_DELETE_ADDRESS = (
    delete(t.addresses)
    .where(
        t.addresses.c.service_mail_id == bindparam("id"),
        t.addresses.c.address == bindparam("address"),
    )
    .returning(t.addresses.c.address)
)
_IS_PROCESSED = select(exists().where(t.processed_messages.c.message_id == bindparam("id")))
# The sweep's: bounded, and each served by a partial index (ix_quota_changes_awaiting_expiry,
# ix_payments_pending).
DUE_CHANGES = (
    select(t.quota_changes.c.request_id, t.quota_changes.c.order_id)
    .where(
        t.quota_changes.c.state == _AWAITING_PAYMENT,
        t.quota_changes.c.expires_at <= bindparam("now"),
    )
    .order_by(t.quota_changes.c.expires_at)
    .limit(bindparam("n"))
)
UNMATCHED_PAYMENTS = (
    select(t.payments.c.payment_id, t.payments.c.order_id)
    .where(
        t.payments.c.status == _PENDING,
        t.payments.c.received_at <= bindparam("before"),
    )
    .order_by(t.payments.c.received_at)
    .limit(bindparam("n"))
)


@functools.cache
def insert_ignore_statement(table: Table, postgres: bool) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING 1, built once per table and dialect."""
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT DO NOTHING.
    return dialect_insert(table).on_conflict_do_nothing().returning(literal_column("1"))


@dataclass(frozen=True)
class RequestFacts:
    """What a change request is decided on, read in one round trip."""

    existing: QuotaChange | None  # the change with this request id, else with this order id
    mail: ServiceMail | None  # row-locked, with A counted
    other_change_awaiting: bool
    early_cancel: str | None  # an order's cancel that came before its request
    held_payments: list[Payment]  # payments that came before it, oldest first


@dataclass(frozen=True)
class PaymentFacts:
    """What a payment is decided on, read in one round trip."""

    known: bool  # this payment id was received before
    change: QuotaChange | None  # the order's change
    mail: ServiceMail | None  # row-locked with A counted, only while the change awaits payment


class Repository:
    """Writes are queued (`StatementQueue`); each read sends them ahead of it, and the
    unit of work's commit sends the rest: on PostgreSQL a handler's reads and its commit
    are a round trip each, however many statements they hold."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self.queue = StatementQueue(conn)
        # Each Service Mail's row as read: saving it unchanged writes nothing.
        self._mails_as_read: dict[str, dict[str, Any]] = {}

    def _rows(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        return self.queue.read((statement, params))[0]

    def _one_or_none(self, statement: Any, params: dict[str, Any]) -> Any:
        rows = self._rows(statement, params)
        return rows[0] if rows else None

    # -- locks -----------------------------------------------------------
    def lock_order(self, order_id: str) -> None:
        """Serialize every message of one order (request, payments, cancel, expiry).

        SQLite needs nothing more: BEGIN IMMEDIATE already holds the write lock.
        """
        if self.is_postgres:
            self.queue.write(_LOCK_ORDER, {"order_id": order_id})  # sent with the next read

    # -- service mails ---------------------------------------------------
    def service_mail_for_update(self, service_mail_id: str) -> ServiceMail | None:
        """The Service Mail, row-locked, with A counted."""
        return self._locked_mail(service_mail_id, _MAIL_IN_USE)[0]

    def _locked_mail(self, service_mail_id: str, facts: Any) -> tuple[ServiceMail | None, bool]:
        return self._read_mail(
            *self.queue.read(*_locked_mail_reads(facts, {"id": service_mail_id}))
        )

    def _read_mail(self, rows: list[Any], counted: list[Any]) -> tuple[ServiceMail | None, bool]:
        mail, awaiting = _mail(rows, counted)
        if mail is not None:
            self._mails_as_read[mail.id] = _mail_row(mail)
        return mail, awaiting

    def request_facts(self, request_id: str, order_id: str, service_mail_id: str) -> RequestFacts:
        """Everything a change request is decided on, after the order's lock (queued first)."""
        changes, *mail_reads, order_rows = self.queue.read(
            (_CHANGE_BY_REQUEST_OR_ORDER, {"r": request_id, "o": order_id}),
            *_locked_mail_reads(_MAIL_FACTS, {"id": service_mail_id}),
            (_ORDER_FACTS, {"o": order_id}),
        )
        found = sorted(changes, key=lambda r: r.request_id != request_id)
        mail, awaiting = self._read_mail(*mail_reads)
        return RequestFacts(
            existing=_change(found[0]) if found else None,
            mail=mail,
            other_change_awaiting=awaiting,
            early_cancel=order_rows[0].early_cancel,
            held_payments=[_payment(r) for r in order_rows if r.payment_id is not None],
        )

    def payment_facts(self, payment_id: str, order_id: str) -> PaymentFacts:
        """Everything a payment is decided on, after the order's lock (queued first)."""
        known, changes, *mail_reads = self.queue.read(
            (_PAYMENT, {"id": payment_id}),
            (_CHANGE_BY_ORDER, {"o": order_id}),
            *_locked_mail_reads(_AWAITING_MAIL_IN_USE, {"o": order_id}, _AWAITING_MAIL_FOR_UPDATE),
        )
        return PaymentFacts(
            known=bool(known),
            change=_change(changes[0]) if changes else None,
            mail=self._read_mail(*mail_reads)[0],
        )

    def add_service_mail_if_absent(self, mail: ServiceMail, now: datetime) -> bool:
        return self._insert_ignore(t.service_mails, {**_mail_row(mail), "updated_at": now})

    def save_service_mail(self, mail: ServiceMail, now: datetime) -> None:
        row = _mail_row(mail)
        if self._mails_as_read.get(mail.id) == row:
            return  # unchanged (a request awaiting payment, say): no UPDATE, no new row version
        self._mails_as_read[mail.id] = row
        self.queue.write(_SAVE_MAIL, {"b_id": mail.id, **row, "updated_at": now})

    def add_address(self, service_mail_id: str, address: str, now: datetime) -> bool:
        return self._insert_ignore(
            t.addresses, {"service_mail_id": service_mail_id, "address": address, "created_at": now}
        )

    def delete_address(self, service_mail_id: str, address: str) -> bool:
        return bool(self._rows(_DELETE_ADDRESS, {"id": service_mail_id, "address": address}))

    # -- changes ---------------------------------------------------------
    def change_by_request(self, request_id: str) -> QuotaChange | None:
        row = self._one_or_none(_CHANGE_BY_REQUEST, {"r": request_id})
        return None if row is None else _change(row)

    def change_by_order(self, order_id: str) -> QuotaChange | None:
        row = self._one_or_none(_CHANGE_BY_ORDER, {"o": order_id})
        return None if row is None else _change(row)

    def due_changes(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        rows = self._rows(DUE_CHANGES, {"now": now, "n": limit})
        return [(r.request_id, r.order_id) for r in rows]

    def add_change(self, change: QuotaChange, now: datetime, message_id: str | None) -> None:
        self.queue.write(
            INSERT[t.quota_changes], {**_change_row(change), "created_at": now, "updated_at": now}
        )
        self._record_transitions(change, message_id)

    def save_change(self, change: QuotaChange, now: datetime, message_id: str | None) -> None:
        if not change.transitions:
            return
        self.queue.write(
            _SAVE_CHANGE, {"b_id": change.request_id, **_change_row(change), "updated_at": now}
        )
        self._record_transitions(change, message_id)

    def _record_transitions(self, change: QuotaChange, message_id: str | None) -> None:
        if change.transitions:
            self.queue.write(
                INSERT[t.transitions],
                [
                    {
                        "request_id": change.request_id,
                        "from_state": tr.from_state.value,
                        "to_state": tr.to_state.value,
                        "reason": tr.reason,
                        "message_id": message_id,
                        "at": tr.at,
                    }
                    for tr in change.transitions
                ],
            )
            change.transitions.clear()

    # -- payments --------------------------------------------------------
    def payment(self, payment_id: str) -> Payment | None:
        row = self._one_or_none(_PAYMENT, {"id": payment_id})
        return None if row is None else _payment(row)

    def unmatched_payments(self, received_before: datetime, limit: int) -> list[tuple[str, str]]:
        rows = self._rows(UNMATCHED_PAYMENTS, {"before": received_before, "n": limit})
        return [(r.payment_id, r.order_id) for r in rows]

    def add_payment(self, payment: Payment) -> None:
        self.queue.write(INSERT[t.payments], _payment_row(payment))

    def save_payment(self, payment: Payment) -> None:
        self.queue.write(
            _SAVE_PAYMENT,
            {
                "b_id": payment.payment_id,
                "status": payment.status.value,
                "refund_reason": payment.refund_reason,
            },
        )

    # -- early cancels ---------------------------------------------------
    def add_early_cancel(self, order_id: str, reason: str, now: datetime) -> None:
        """Kept until the request comes; a repeated cancel keeps the first (queued)."""
        self.queue.write(
            insert_ignore_statement(t.early_cancels, self.is_postgres),
            {"order_id": order_id, "reason": reason, "received_at": now},
        )

    # -- idempotency -----------------------------------------------------
    def is_processed(self, message_id: str) -> bool:
        return bool(self._rows(_IS_PROCESSED, {"id": message_id})[0][0])

    def mark_processed(
        self, message_id: str, task: str, outcome: str, order_id: str | None, now: datetime
    ) -> None:
        """Record the message as processed (queued): if it already was, the commit fails
        on the primary key (`already_processed` tells that error)."""
        self.queue.write(
            INSERT[t.processed_messages],
            {
                "message_id": message_id,
                "task": task[:64],  # a refused message's task may be any name
                "outcome": outcome[:40],
                "order_id": order_id,
                "processed_at": now,
            },
        )

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
            INSERT[t.dead_letters],
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

    def _insert_ignore(self, table: Table, values: dict[str, Any]) -> bool:
        return bool(self._rows(insert_ignore_statement(table, self.is_postgres), values))


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
    ) == "SQLITE_CONSTRAINT_PRIMARYKEY" and f"{t.processed_messages.name}.message_id" in str(orig)


def _locked_mail_reads(
    facts: Any, params: dict[str, Any], lock: Any = _MAIL_FOR_UPDATE
) -> list[tuple[Any, dict[str, Any]]]:
    # A is counted after the row lock is held, in a statement of its own: a subquery of
    # the locking SELECT would see the snapshot taken before waiting for the lock.
    return [(lock, params), (facts, params)]


def _mail(rows: list[Any], counted: list[Any]) -> tuple[ServiceMail | None, bool]:
    if not rows:
        return None, False
    row, facts = rows[0], counted[0]
    mail = ServiceMail(
        id=row.id,
        account_id=row.account_id,
        plan=row.plan,
        address_limit=row.address_limit,
        ksuite_id=row.ksuite_id,
        version=row.version,
        addresses_in_use=facts.in_use,
    )
    return mail, bool(facts.awaiting)


def _mail_row(mail: ServiceMail) -> dict[str, Any]:
    return {
        "id": mail.id,
        "account_id": mail.account_id,
        "plan": mail.plan,
        "address_limit": mail.address_limit,
        "ksuite_id": mail.ksuite_id,
        "version": mail.version,
    }


def _change_row(change: QuotaChange) -> dict[str, Any]:
    return {
        "request_id": change.request_id,
        "order_id": change.order_id,
        "account_id": change.account_id,
        "service_mail_id": change.service_mail_id,
        "expected_address_limit": change.expected_address_limit,
        "new_address_limit": change.new_address_limit,
        "amount_due": change.amount_due,
        "currency": change.currency,
        "requested_at": change.requested_at,
        "state": change.state.value,
        "reason": change.reason,
        "detail": change.detail,
        "expires_at": change.expires_at,
        "payment_id": change.payment_id,
    }


def _payment_row(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "order_id": payment.order_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "paid_at": payment.paid_at,
        "received_at": payment.received_at,
        "status": payment.status.value,
        "refund_reason": payment.refund_reason,
    }


def _change(row: Any) -> QuotaChange:
    return QuotaChange(
        request_id=row.request_id,
        order_id=row.order_id,
        account_id=row.account_id,
        service_mail_id=row.service_mail_id,
        expected_address_limit=row.expected_address_limit,
        new_address_limit=row.new_address_limit,
        amount_due=row.amount_due,
        currency=row.currency,
        requested_at=row.requested_at,
        state=ChangeState(row.state),
        reason=row.reason,
        detail=row.detail,
        expires_at=row.expires_at,
        payment_id=row.payment_id,
    )


def _payment(row: Any) -> Payment:
    return Payment(
        payment_id=row.payment_id,
        order_id=row.order_id,
        amount=row.amount,
        currency=row.currency,
        paid_at=row.paid_at,
        received_at=row.received_at,
        status=PaymentStatus(row.status),
        refund_reason=row.refund_reason,
    )
