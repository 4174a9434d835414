"""Every SQL statement of the message path and the sweep, built once.

SQLAlchemy then skips building each statement and its cache key per call, and
psycopg prepares them server-side. The constant states are literals in the SQL so
that a prepared statement's generic plan can use the partial indexes (issue 19;
tests/integration/test_plans.py).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    Table,
    and_,
    any_,
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

from domain.addresses import AddressChanges, AddressSnapshot
from domain.model import ChangeState
from domain.payment import PaymentStatus
from worker.adapters import tables as t


def _constant(value: str) -> Any:
    """A state as a constant in the SQL text, never a bind parameter: a prepared statement's
    generic plan can then use a partial index whose predicate names it (issue 19; the
    plans are tested in tests/integration/test_plans.py)."""
    assert value.isidentifier(), value  # an enum's value: nothing to quote
    return literal_column(f"'{value}'")


AWAITING_PAYMENT = _constant(ChangeState.AWAITING_PAYMENT.value)
RECEIVED = _constant(ChangeState.RECEIVED.value)
PENDING = _constant(PaymentStatus.PENDING.value)

# The hot path's statements, built once: SQLAlchemy then skips building each
# statement and its cache key per call, and psycopg prepares them server-side.
LOCK_ORDER = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("order_id"), 0)))
MAIL_FOR_UPDATE = (
    select(t.service_mails).where(t.service_mails.c.id == bindparam("id")).with_for_update()
)
ADDRESSES_IN_USE = (
    select(func.count()).where(t.addresses.c.service_mail_id == bindparam("id")).scalar_subquery()
)
AWAITING = exists().where(
    t.quota_changes.c.service_mail_id == bindparam("id"),
    t.quota_changes.c.state == AWAITING_PAYMENT,
)
# Run after the row lock: A alone, or A and whether another change awaits payment.
MAIL_IN_USE = select(ADDRESSES_IN_USE.label("in_use"), literal(False).label("awaiting"))
MAIL_FACTS = select(ADDRESSES_IN_USE.label("in_use"), AWAITING.label("awaiting"))
ONE_ROW = select(literal(1).label("one")).subquery()
# An order's held payments and early cancel, in one statement: one row at least
# (the LEFT JOIN), the payment's columns NULL when none is held.
ORDER_FACTS = (
    select(
        t.payments,
        select(t.early_cancels.c.reason)
        .where(t.early_cancels.c.order_id == bindparam("o"))
        .scalar_subquery()
        .label("early_cancel"),
    )
    .select_from(
        ONE_ROW.outerjoin(
            t.payments,
            and_(
                t.payments.c.order_id == bindparam("o"),
                t.payments.c.status == PENDING,
            ),
        )
    )
    .order_by(t.payments.c.received_at, t.payments.c.payment_id)
)
# A payment's Service Mail, through its order's change, only while that change awaits
# payment (the only case in which paying changes the Service Mail): row-locked, then A.
AWAITING_MAIL_OF_ORDER = (
    select(t.quota_changes.c.service_mail_id)
    .where(
        t.quota_changes.c.order_id == bindparam("o"),
        t.quota_changes.c.state == AWAITING_PAYMENT,
    )
    .scalar_subquery()
)
AWAITING_MAIL_FOR_UPDATE = (
    select(t.service_mails)
    .where(t.service_mails.c.id == AWAITING_MAIL_OF_ORDER)
    .with_for_update(of=t.service_mails)
)
AWAITING_MAIL_IN_USE = select(
    select(func.count())
    .where(t.addresses.c.service_mail_id == AWAITING_MAIL_OF_ORDER)
    .scalar_subquery()
    .label("in_use"),
    literal(False).label("awaiting"),
)
SAVE_MAIL = update(t.service_mails).where(t.service_mails.c.id == bindparam("b_id"))
CHANGE_BY_ORDER = select(t.quota_changes).where(t.quota_changes.c.order_id == bindparam("o"))
CHANGE_BY_REQUEST_OR_ORDER = select(t.quota_changes).where(
    or_(
        t.quota_changes.c.request_id == bindparam("r"), t.quota_changes.c.order_id == bindparam("o")
    )
)
# A provisioning's: the open changes of a Service Mail (ix_quota_changes_service_mail_id;
# a Service Mail has few), their orders first to lock them before the Service Mail.
_OPEN = or_(t.quota_changes.c.state == RECEIVED, t.quota_changes.c.state == AWAITING_PAYMENT)
OPEN_ORDERS_OF_MAIL = select(t.quota_changes.c.order_id).where(
    t.quota_changes.c.service_mail_id == bindparam("id"), _OPEN
)
OPEN_CHANGES_OF_MAIL = (
    select(t.quota_changes)
    .where(t.quota_changes.c.service_mail_id == bindparam("id"), _OPEN)
    .order_by(t.quota_changes.c.created_at, t.quota_changes.c.request_id)
)
SAVE_CHANGE = update(t.quota_changes).where(t.quota_changes.c.request_id == bindparam("b_id"))
PAYMENT = select(t.payments).where(t.payments.c.payment_id == bindparam("id"))
SAVE_PAYMENT = update(t.payments).where(t.payments.c.payment_id == bindparam("b_id"))
# Each table's plain insert, needing no generated key back (no RETURNING on PostgreSQL).
INSERT = {table: insert(table).inline() for table in t.metadata.tables.values()}
DELETE_ADDRESS = (
    delete(t.addresses)
    .where(
        t.addresses.c.service_mail_id == bindparam("id"),
        t.addresses.c.address == bindparam("address"),
    )
    .returning(t.addresses.c.address)
)
# A snapshot's, after LOCK_SNAPSHOTS (PostgreSQL) and the Service Mail's row lock.
LAST_SNAPSHOT = select(t.address_snapshots.c.taken_at).where(
    t.address_snapshots.c.service_mail_id == bindparam("id")
)
ADDRESSES_OF_MAIL = select(t.addresses.c.address).where(
    t.addresses.c.service_mail_id == bindparam("id")
)
# Snapshots of one Service Mail, one at a time, even before it is provisioned (no row to
# lock yet): an advisory lock in the two-key space, which never meets the orders' one-key
# locks; taken first, before the Service Mail's row, by snapshots only.
SNAPSHOT_LOCKS = 1
LOCK_SNAPSHOTS = select(
    func.pg_advisory_xact_lock(literal_column(str(SNAPSHOT_LOCKS)), func.hashtext(bindparam("id")))
)
# PostgreSQL: a snapshot's removed and added addresses as one array each, one statement
# each, whatever their number.
_ADDRESS_ARRAY = postgresql.ARRAY(String(254))
REMOVE_ADDRESSES_PG = delete(t.addresses).where(
    t.addresses.c.service_mail_id == bindparam("id"),
    t.addresses.c.address == any_(bindparam("addresses", type_=_ADDRESS_ARRAY)),
)
ADD_ADDRESSES_PG = (
    postgresql.insert(t.addresses)
    .from_select(
        ["service_mail_id", "address", "created_at"],
        select(
            bindparam("id", type_=t.ID),
            func.unnest(bindparam("addresses", type_=_ADDRESS_ARRAY)),
            bindparam("now", type_=t.UTCDateTime()),
        ),
    )
    .on_conflict_do_nothing()
)
# SQLite (in-process, no round trip to save): one prepared statement run per address
# (executemany), so no statement ever holds more than three bind variables.
REMOVE_ADDRESS_EACH = delete(t.addresses).where(
    t.addresses.c.service_mail_id == bindparam("id"),
    t.addresses.c.address == bindparam("address"),
)
ADD_ADDRESS_EACH = sqlite.insert(t.addresses).on_conflict_do_nothing()
IS_PROCESSED = select(exists().where(t.processed_messages.c.message_id == bindparam("id")))
# A batch's messages processed already (redeliveries), in one read; on PostgreSQL an
# array parameter (the statement queue's pipeline sends no expanding IN list).
_IDS = postgresql.ARRAY(String(255))
_PROCESSED = t.processed_messages.c.message_id
PROCESSED_AMONG = {
    True: select(_PROCESSED).where(_PROCESSED == any_(bindparam("ids", type_=_IDS))),  # noqa: SIM300
    False: select(_PROCESSED).where(_PROCESSED.in_(bindparam("ids", expanding=True))),
}
# A batch's Service Mails row-locked in one order (by id), so batches never deadlock:
# those its messages name and those its orders' awaiting changes are for (PostgreSQL).
_ORDERS_AWAITING_MAILS = (
    select(func.array_agg(t.quota_changes.c.service_mail_id))
    .where(t.quota_changes.c.order_id == any_(bindparam("orders", type_=_IDS)))
    .where(t.quota_changes.c.state == AWAITING_PAYMENT)
    .scalar_subquery()
)
_BATCH_MAILS = func.array_cat(bindparam("mails", type_=_IDS), _ORDERS_AWAITING_MAILS)
LOCK_MAILS_IN_ORDER = (
    select(t.service_mails.c.id).where(t.service_mails.c.id == any_(_BATCH_MAILS))
    .order_by(t.service_mails.c.id).with_for_update()
)  # fmt: skip
# The sweep's: bounded, and each served by a partial index (ix_quota_changes_awaiting_expiry,
# ix_payments_pending).
DUE_CHANGES = (
    select(t.quota_changes.c.request_id, t.quota_changes.c.order_id)
    .where(
        t.quota_changes.c.state == AWAITING_PAYMENT,
        t.quota_changes.c.expires_at <= bindparam("now"),
    )
    .order_by(t.quota_changes.c.expires_at)
    .limit(bindparam("n"))
)
# Changes received for an unknown Service Mail: past their grace, or provisioned meanwhile
# (a request that committed after its provisioning read; ix_quota_changes_received_grace).
UNPROVISIONED_CHANGES = (
    select(t.quota_changes.c.request_id, t.quota_changes.c.order_id)
    .where(
        t.quota_changes.c.state == RECEIVED,
        or_(
            t.quota_changes.c.expires_at <= bindparam("now"),
            exists().where(t.service_mails.c.id == t.quota_changes.c.service_mail_id),
        ),
    )
    .order_by(t.quota_changes.c.expires_at)
    .limit(bindparam("n"))
)
UNMATCHED_PAYMENTS = (
    select(t.payments.c.payment_id, t.payments.c.order_id)
    .where(
        t.payments.c.status == PENDING,
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


@functools.cache
def record_snapshot_statement(postgres: bool) -> Any:
    """Upsert of a Service Mail's last snapshot applied."""
    upsert = (postgresql.insert if postgres else sqlite.insert)(t.address_snapshots)
    return upsert.on_conflict_do_update(
        index_elements=[t.address_snapshots.c.service_mail_id],
        set_={"taken_at": upsert.excluded.taken_at, "applied_at": upsert.excluded.applied_at},
    )


def snapshot_reads(service_mail_id: str, postgres: bool) -> list[tuple[Any, dict[str, Any]]]:
    """A snapshot's locks (its Service Mail's snapshots, then its row), then what it is
    decided on: the last one's `taken_at` and the addresses counted."""
    params = {"id": service_mail_id}
    locks = [LOCK_SNAPSHOTS, MAIL_FOR_UPDATE] if postgres else [MAIL_FOR_UPDATE]
    return [(statement, params) for statement in [*locks, LAST_SNAPSHOT, ADDRESSES_OF_MAIL]]


def snapshot_writes(
    snapshot: AddressSnapshot, changes: AddressChanges, now: datetime, *, postgres: bool
) -> list[tuple[Any, Any]]:
    """A snapshot's statements: the removed addresses, the added ones (sorted, so two
    writers meet the rows in one order), then the snapshot's `taken_at`."""
    mail, removed, added = snapshot.service_mail_id, sorted(changes.removed), sorted(changes.added)
    writes: list[tuple[Any, Any]] = []
    if postgres:
        if removed:
            writes.append((REMOVE_ADDRESSES_PG, {"id": mail, "addresses": removed}))
        if added:
            writes.append((ADD_ADDRESSES_PG, {"id": mail, "addresses": added, "now": now}))
    else:
        writes.append((REMOVE_ADDRESS_EACH, [{"id": mail, "address": a} for a in removed]))
        new = [{"service_mail_id": mail, "address": a, "created_at": now} for a in added]
        writes.append((ADD_ADDRESS_EACH, new))
    last: dict[str, Any] = {
        "service_mail_id": mail,
        "taken_at": snapshot.taken_at,
        "applied_at": now,
    }
    writes.append((record_snapshot_statement(postgres), last))
    return writes


def locked_mail_reads(
    facts: Any, params: dict[str, Any], lock: Any = MAIL_FOR_UPDATE
) -> list[tuple[Any, dict[str, Any]]]:
    # A is counted after the row lock is held, in a statement of its own: a subquery of
    # the locking SELECT would see the snapshot taken before waiting for the lock.
    return [(lock, params), (facts, params)]
