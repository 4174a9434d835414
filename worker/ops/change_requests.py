"""Change requests as operators find them: a filtered list, one by id, and its whole trail."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, Table, or_, select

from worker.adapters import tables as t
from worker.bootstrap import Container, utcnow


def list_requests(
    container: Container,
    *,
    state: str | None = None,
    service_mail: str | None = None,
    account: str | None = None,
    older_than: timedelta | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    c = t.quota_changes.c
    query = select(t.quota_changes).order_by(c.created_at.desc()).limit(limit)
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
    c = t.quota_changes.c
    return conn.execute(
        select(t.quota_changes).where(or_(c.request_id == key, c.order_id == key))
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
