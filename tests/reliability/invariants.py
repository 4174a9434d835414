"""The promises, checked after a run from the database and the stream alone."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import Engine, text

from tests.reliability.batch import Ledger

TERMINAL = {"applied", "rejected", "expired", "cancelled"}


@dataclass
class Report:
    scenario: str
    messages: int
    faults: int = 0
    lost: int = 0
    duplicated: int = 0
    violations: list[str] = field(default_factory=list)
    # Messages that left no trace at all: counted in `lost`, judged by the scenario.
    lost_messages: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (
            f"| {self.scenario} | {self.messages} | {self.faults} | {self.lost} | "
            f"{self.duplicated} | {len(self.violations)} |"
        )


def _rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def stream_events(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """Every event on the stream, first occurrence of each id, in stream order."""
    seen: set[str] = set()
    events = []
    for _entry, fields in client.xrange(stream):
        event = json.loads(fields[b"event"])
        if event["id"] not in seen:
            seen.add(event["id"])
            events.append(event)
    return events


def unsettled(engine: Engine, ledger: Ledger) -> int:
    """Orders not yet in a terminal state, payments not yet settled, events not yet out,
    invalid messages not yet dead-lettered."""
    orders = [o for o, kind in ledger.orders.items() if kind != "invalid"]
    states = {
        r.order_id: r.state
        for r in _rows(engine, "SELECT order_id, state FROM quota_changes")
        if r.order_id in ledger.orders
    }
    open_orders = sum(1 for o in orders if states.get(o) not in TERMINAL)
    decided = {
        r.payment_id
        for r in _rows(engine, "SELECT payment_id FROM payments WHERE status <> 'pending'")
    }
    open_payments = sum(1 for p in ledger.payments if p not in decided)
    backlog = _rows(engine, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")[0].n
    # An invalid message is settled by its dead letter. One a killed worker held comes back
    # only after the visibility timeout, when the rest may long be done.
    lettered = {r.message_id for r in _rows(engine, "SELECT message_id FROM dead_letters")}
    unlettered = len(ledger.invalid_message_ids - lettered)
    return open_orders + open_payments + int(backlog) + unlettered


def check(
    engine: Engine, client: redis.Redis, stream: str, ledger: Ledger, report: Report
) -> Report:
    events = [e for e in stream_events(client, stream) if e["data"].get("order_id") in ledger.orders
              or e["data"].get("payment_id") in ledger.payments]  # fmt: skip
    v = report.violations
    changes = {
        r.order_id: r
        for r in _rows(
            engine, "SELECT order_id, request_id, state, service_mail_id FROM quota_changes"
        )
        if r.order_id in ledger.orders
    }
    # 1. every order reaches exactly one terminal state; none is lost
    for order_id, kind in ledger.orders.items():
        if kind == "invalid":
            continue
        change = changes.get(order_id)
        if change is None:
            report.lost += 1
            report.lost_messages.append(f"{order_id} ({kind}): no change recorded")
        elif change.state not in TERMINAL:
            v.append(f"{order_id} ({kind}): still {change.state}")
    # 2. each applied change has exactly one mail.quota.changed (by id), the others none
    changed = defaultdict(list)
    for e in events:
        if e["type"] == "mail.quota.changed":
            changed[e["data"]["order_id"]].append(e)
    for order_id, change in changes.items():
        n = len(changed.get(order_id, []))
        if change.state == "applied" and n != 1:
            report.duplicated += max(0, n - 1)
            report.lost += 1 if n == 0 else 0
            v.append(f"{order_id}: applied with {n} mail.quota.changed events")
        if change.state != "applied" and n:
            v.append(f"{order_id}: {change.state} but has a mail.quota.changed event")
    # 3. versions strictly increase with no gap; B within A and the plan at every version
    for mail in ledger.mails:
        history = _rows(
            engine,
            "SELECT version, address_limit, addresses_in_use, plan FROM limit_history "
            "WHERE service_mail_id = :m ORDER BY version",
            m=mail,
        )
        if [h.version for h in history] != list(range(1, len(history) + 1)):
            v.append(f"{mail}: versions {[h.version for h in history]} have a gap")
        for h in history:
            if h.address_limit < h.addresses_in_use or not 5 <= h.address_limit <= 10000:
                v.append(
                    f"{mail} v{h.version}: limit {h.address_limit}, {h.addresses_in_use} in use"
                )
        on_stream = [e["data"]["version"] for e in events
                     if e["type"] == "mail.quota.changed" and e["subject"] == mail]  # fmt: skip
        if on_stream != sorted(set(on_stream)):
            v.append(f"{mail}: versions on the stream out of order {on_stream}")
    # 4. every unusable payment has exactly one refund; a used one none
    refunds = defaultdict(int)
    for e in events:
        if e["type"] == "mail.quota.refund.required":
            refunds[e["data"]["payment_id"]] += 1
    status = {
        r.payment_id: r.status
        for r in _rows(engine, "SELECT payment_id, status FROM payments")
        if r.payment_id in ledger.payments
    }
    for payment_id in ledger.payments:
        state = status.get(payment_id)
        expected_refunds = 1 if state == "refunded" else 0
        if state is None:
            report.lost += 1
            report.lost_messages.append(f"payment {payment_id}: never recorded")
        elif state == "pending":
            v.append(f"payment {payment_id}: money kept without a decision")
        if state is not None and refunds[payment_id] != expected_refunds:
            v.append(f"payment {payment_id} ({state}): {refunds[payment_id]} refund events")
    # 5. the dead letters are exactly the invalid messages
    sent_ids = {m.task_id for m in ledger.messages} | {m.task_id for m in ledger.setup}
    lettered = {
        r.message_id
        for r in _rows(engine, "SELECT message_id FROM dead_letters")
        if r.message_id in sent_ids
    }
    if lettered - ledger.invalid_message_ids:
        v.append(f"dead letters: {len(lettered - ledger.invalid_message_ids)} unexpected")
    for missing in sorted(ledger.invalid_message_ids - lettered):
        report.lost += 1
        report.lost_messages.append(f"invalid message {missing}: no dead letter")
    return report
