"""Change requests as operators find them: a filtered list, one by id, and its whole trail."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Table, case, or_, select

from domain import commands
from domain.model import ChangeState
from domain.payment import PaymentStatus
from worker.adapters import tables as t
from worker.bootstrap import Container, utcnow
from worker.ops.safe_text import printable as p

Entry = tuple[datetime, str, str]  # when, what, detail: one line of a change's trail


def list_requests(
    container: Container,
    *,
    state: str | None = None,
    service_mail: str | None = None,
    account: str | None = None,
    older_than: timedelta | None = None,
    limit: int = 50,
    oldest_first: bool = False,
) -> list[dict[str, Any]]:
    """Newest first, or (`oldest_first`) the longest waits first, as the console lists them."""
    c = t.quota_changes.c
    order = (c.created_at.asc(), c.request_id) if oldest_first else (c.created_at.desc(),)
    query = select(t.quota_changes).order_by(*order).limit(limit)
    if state:
        query = query.where(c.state == state)
    if service_mail:
        query = query.where(c.service_mail_id == service_mail)
    if account:
        query = query.where(c.account_id == account)
    if older_than:
        query = query.where(c.created_at <= utcnow() - older_than)
    with container.database.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def request_trail(container: Container, key: str) -> dict[str, Any] | None:
    """A change's whole story, by request_id or order_id, from what was recorded as it happened."""
    with container.database.engine.connect() as conn:
        row = _change_row(conn, key)
        order_id = row.order_id if row else key
        messages = _rows_of(conn, t.processed_messages, "order_id", order_id, "processed_at")
        if row is None and not messages:
            return None
        transitions = (
            _rows_of(conn, t.transitions, "request_id", row.request_id, "id") if row else []
        )
        payments = _rows_of(conn, t.payments, "order_id", order_id, "received_at")
        events = _rows_of(conn, t.outbox, "order_id", order_id, "id")
    return {
        "change": dict(row._mapping) if row else None,
        "messages": [dict(m._mapping) for m in messages],
        "transitions": [dict(tr._mapping) for tr in transitions],
        "payments": [dict(p._mapping) for p in payments],
        "events": [_event(e) for e in events],
    }


def _change_row(conn: Connection, key: str) -> Row[Any] | None:
    """The change whose request_id is `key`, else the one whose order_id is: ids are the
    publishers', so a request id may be another change's order id, and the request id wins."""
    c = t.quota_changes.c
    return conn.execute(
        select(t.quota_changes)
        .where(or_(c.request_id == key, c.order_id == key))
        .order_by(case((c.request_id == key, 0), else_=1))
    ).first()


def _rows_of(
    conn: Connection, table: Table, key: str, value: str, order: str
) -> Sequence[Row[Any]]:
    """The rows of `table` whose column `key` is `value`, in the order of column `order`."""
    return conn.execute(select(table).where(table.c[key] == value).order_by(table.c[order])).all()


def _event(row: Row[Any]) -> dict[str, Any]:
    """An outbox row as the trail shows it: its id, type, times and the event's data."""
    return {
        "id": row.event_id,
        "type": row.type,
        "created_at": row.created_at,
        "published_at": row.sent_at,
        "data": json.loads(row.body)["data"],
    }


def find_change(container: Container, key: str) -> dict[str, Any] | None:
    with container.database.engine.connect() as conn:
        row = _change_row(conn, key)
    return dict(row._mapping) if row else None


def held_payments(container: Container, limit: int = 200) -> list[dict[str, Any]]:
    """Payments neither used nor refunded yet, the longest held first, with their change's
    request and state (None where no change names their order)."""
    pay, qc = t.payments.c, t.quota_changes.c
    query = (
        select(t.payments, qc.request_id, qc.state, qc.service_mail_id)
        .select_from(t.payments.outerjoin(t.quota_changes, qc.order_id == pay.order_id))
        .where(pay.status == PaymentStatus.PENDING.value)
        .order_by(pay.received_at, pay.payment_id)
        .limit(limit)
    )
    with container.database.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def timeline(trail: dict[str, Any]) -> list[Entry]:
    """The trail's messages, transitions, payments and events, each as one escaped line, in
    the order they happened (what `requests show` prints, and the console shows)."""
    entries = [
        *(_message_entry(m) for m in trail["messages"]),
        *(_transition_entry(tr) for tr in trail["transitions"]),
        *(_payment_entry(pay) for pay in trail["payments"]),
        *(_event_entry(e) for e in trail["events"]),
    ]
    return sorted(entries, key=lambda x: x[0])


def _message_entry(m: dict[str, Any]) -> Entry:
    return m["processed_at"], f"message {p(m['task'])}", f"{p(m['message_id'])} → {p(m['outcome'])}"


def _transition_entry(tr: dict[str, Any]) -> Entry:
    detail = f"by {p(tr['message_id'])}" if tr["message_id"] else ""
    if tr["reason"]:
        detail = f"{p(tr['reason'])} {detail}".strip()
    return tr["at"], f"{p(tr['from_state'])} → {p(tr['to_state'])}", detail


def _payment_entry(pay: dict[str, Any]) -> Entry:
    detail = f"{p(pay['amount'])} {p(pay['currency'])} · {p(pay['status'])}"
    if pay["refund_reason"]:
        detail += f" ({p(pay['refund_reason'])})"
    return pay["received_at"], f"payment {p(pay['payment_id'])}", detail


def _event_entry(e: dict[str, Any]) -> Entry:
    published = e["published_at"].isoformat(timespec="seconds") if e["published_at"] else "NOT YET"
    return e["created_at"], f"event {p(e['type'])}", f"{p(e['id'])} · published {published}"


class NotAwaiting(Exception):
    """The change is unknown, or not awaiting payment: there is nothing to end."""


EXPIRE_PREFIX = "operator: "
# Where the reasons go: a cancel's is the contract's `quota.cancel_change` reason (at most
# 200, events/inbound.py), repeated in .cancelled and the transition; an expiry's is
# recorded as the transition's reason (200) after EXPIRE_PREFIX.
REASON_MAX = {"cancel": 200, "expire": 200 - len(EXPIRE_PREFIX)}


def reason_too_long(how: str, reason: str) -> str | None:
    """Why `reason` cannot end a change by `how` (expire|cancel), or None if it can."""
    if len(reason) <= REASON_MAX[how]:
        return None
    return f"the reason has {len(reason)} characters: at most {REASON_MAX[how]} for {how}"


def end_stuck_change(
    container: Container,
    key: str,
    how: str,
    reason: str,
    actor: str,
    *,
    order_id_too: bool = False,
) -> bool:
    """`expire` or `cancel` the change awaiting payment whose request_id is `key` (or, with
    `order_id_too`, as `quota-worker expire|cancel` take it, its order_id): the automatic
    path's events, recorded as `actor`. False if it ended meanwhile. The console names a
    change by request_id only, so an action never reaches another change."""
    if order_id_too:
        change = find_change(container, key)
    else:
        with container.database.engine.connect() as conn:
            c = t.quota_changes.c
            row = conn.execute(select(t.quota_changes).where(c.request_id == key)).first()
        change = dict(row._mapping) if row else None
    if change is None:
        raise NotAwaiting(f"no change request {p(key)}")
    if change["state"] != ChangeState.AWAITING_PAYMENT:
        raise NotAwaiting(
            f"change {p(change['request_id'])} is {p(change['state'])}, "
            "not awaiting payment: nothing to end"
        )
    if (too_long := reason_too_long(how, reason)) is not None:
        raise ValueError(too_long)
    if how == "expire":
        ids = (change["request_id"], change["order_id"], f"{EXPIRE_PREFIX}{reason}")
        return container.bus.as_operator(actor, expire=ids)
    return container.bus.as_operator(actor, commands.CancelQuotaChange(change["order_id"], reason))
