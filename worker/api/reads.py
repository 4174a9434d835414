"""What the API reads, read-only, over the schema (`worker/adapters/tables.py`).

A Service Mail is read as the repository reads it for a request: its row, A counted from
its addresses, and whether a change awaits payment (at most one, by a unique partial
index), here in one statement and without a lock, since nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, bindparam, func, select

from domain.mail import ServiceMail
from domain.model import ChangeState
from worker.adapters import tables as t
from worker.adapters.db import Database, reading

_sm, _qc = t.service_mails.c, t.quota_changes.c
PENDING_FIELDS = ("request_id", "order_id", "new_address_limit", "amount_due", "currency",
                  "expires_at")  # fmt: skip

MAIL_WITH_PENDING = (
    select(
        t.service_mails,
        select(func.count())
        .where(t.addresses.c.service_mail_id == _sm.id)
        .scalar_subquery()
        .label("in_use"),
        *(_qc[name].label(f"pending_{name}") for name in PENDING_FIELDS),
    )
    .select_from(
        t.service_mails.outerjoin(
            t.quota_changes,
            and_(_qc.service_mail_id == _sm.id, _qc.state == ChangeState.AWAITING_PAYMENT.value),
        )
    )
    .where(_sm.id == bindparam("id"))
)


@dataclass(frozen=True)
class MailRead:
    mail: ServiceMail
    pending: dict[str, Any] | None
    """The change awaiting payment: PENDING_FIELDS, or None."""


@dataclass(frozen=True)
class ChangeRead:
    change: dict[str, Any]
    payments: list[dict[str, Any]]
    events: list[dict[str, Any]]


@contextmanager
def _reading(database: Database) -> Iterator[Connection]:
    """One connection, one snapshot for every statement of the read, no write lock."""
    with database.engine.connect() as conn, reading(conn).begin():
        yield conn


def service_mail(database: Database, service_mail_id: str) -> MailRead | None:
    with _reading(database) as conn:
        row = conn.execute(MAIL_WITH_PENDING, {"id": service_mail_id}).first()
    if row is None:
        return None
    mail = ServiceMail(
        id=row.id,
        account_id=row.account_id,
        plan=row.plan,
        address_limit=row.address_limit,
        ksuite_id=row.ksuite_id,
        version=row.version,
        addresses_in_use=row.in_use,
    )
    pending = None
    if row.pending_request_id is not None:
        pending = {name: row._mapping[f"pending_{name}"] for name in PENDING_FIELDS}
    return MailRead(mail, pending)


def change(
    database: Database, key: Literal["request_id", "order_id"], value: str
) -> ChangeRead | None:
    """A change by its request id or its order id, with its order's payments and events."""
    with _reading(database) as conn:
        row = conn.execute(select(t.quota_changes).where(_qc[key] == value)).first()
        if row is None:
            return None
        order = row.order_id
        payments = conn.execute(
            select(t.payments)
            .where(t.payments.c.order_id == order)
            .order_by(t.payments.c.received_at, t.payments.c.payment_id)
        ).all()
        events = conn.execute(
            select(t.outbox.c.event_id, t.outbox.c.type, t.outbox.c.body)
            .where(t.outbox.c.order_id == order)
            .order_by(t.outbox.c.id)
        ).all()
    return ChangeRead(
        change=dict(row._mapping),
        payments=[dict(p._mapping) for p in payments],
        events=[
            {"id": e.event_id, "type": e.type, "time": json.loads(e.body)["time"]} for e in events
        ],
    )
