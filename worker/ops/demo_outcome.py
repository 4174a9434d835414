"""The demo's outcome, read back from the event stream as a downstream system would.

`waiter` pauses the story until a fact is true, `wait_all` until every order
has reached the outcome it expects, and `report` prints each order's outcome
and the stream itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis
from rich.table import Table

from domain.events import (
    ChangeAccepted,
    ChangeCancelled,
    ChangeExpired,
    ChangeRejected,
    QuotaChanged,
    RefundRequired,
)
from events.outbound import EVENT_TYPES
from worker.ops.demo_day import Day, Order, Wait, console
from worker.settings import EMBEDDED_DB_FILE

DEADLINE = 90


class Stream:
    """The event stream, read as a downstream system would."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        last = self.entries[-1][0] if self.entries else "0-0"
        reply: Any = self.client.xread({self.key: last}, count=1000)
        for _key, rows in reply or []:
            for entry_id, fields in rows:
                self.entries.append((entry_id.decode(), json.loads(fields[b"event"])))
        return self.entries

    def events(self) -> list[dict[str, Any]]:
        return [e for _, e in self.read()]


def _settle(orders: list[Order], events: list[dict[str, Any]]) -> None:
    final = {
        EVENT_TYPES[QuotaChanged]: "applied",
        EVENT_TYPES[ChangeExpired]: "expired",
        EVENT_TYPES[ChangeCancelled]: "cancelled",
    }
    for order in orders:
        order.refunds = []
        for event in events:
            data = event["data"]
            if data.get("order_id") != order.order_id:
                continue
            if event["type"] in final:
                order.outcome = final[event["type"]]
            elif event["type"] == EVENT_TYPES[ChangeRejected]:
                if data.get("request_id") == order.request_id:
                    order.outcome = f"rejected:{data['reason']}"
            elif event["type"] == EVENT_TYPES[RefundRequired]:
                order.refunds.append(data["reason"])


def _done(order: Order) -> bool:
    return order.outcome == order.expect and (order.refund is None or order.refund in order.refunds)


def waiter(day: Day, stream: Stream, data_dir: Path) -> Wait:
    """Pause the story until a fact is true, as a real checkout waits for its events."""
    import sqlite3

    def provisioned() -> bool:
        with sqlite3.connect(data_dir / EMBEDDED_DB_FILE) as db:
            mails = db.execute("SELECT count(*) FROM service_mails").fetchone()[0]
            addresses = db.execute("SELECT count(*) FROM addresses").fetchone()[0]
        return bool(mails == len(day.accounts) and addresses == 12)

    def wait(what: str) -> None:
        kind, _, order_id = what.partition(":")
        types = {"accepted": EVENT_TYPES[ChangeAccepted], "applied": EVENT_TYPES[QuotaChanged]}

        def seen() -> bool:
            if kind == "provisioned":
                return provisioned()
            return any(
                e["type"] == types[kind] and e["data"]["order_id"] == order_id
                for e in stream.events()
            )

        deadline = time.monotonic() + 30
        while not seen():
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the worker did not answer ({what}); see {data_dir / 'worker.log'}"
                )
            time.sleep(0.05)

    return wait


def wait_all(orders: list[Order], stream: Stream) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        _settle(orders, stream.events())
        if all(_done(o) for o in orders):
            return True
        time.sleep(0.2)
    return False


def report(orders: list[Order], stream: Stream) -> None:
    table = Table(title="each order's outcome", title_justify="left")
    for column in ("order", "Service Mail", "asked", "outcome", "refund", "as expected"):
        table.add_column(column)
    for o in orders:
        money = f"{o.amount / 100:.2f} CHF" if o.amount else "free"
        good = _done(o)
        table.add_row(
            o.order_id, o.mail, f"{o.expected} → {o.new}, {money}", o.outcome,
            ", ".join(o.refunds) or "—",
            "[green]yes[/green]" if good else f"[red]no: expected {o.expect}[/red]",
        )  # fmt: skip
    console.print(table)
    events = Table(title="the event stream (quota.events)", title_justify="left")
    for column in ("entry", "type", "subject", "data"):
        events.add_column(column)
    for entry_id, event in stream.read():
        data = event["data"]
        summary = ", ".join(
            f"{k}={data[k]}"
            for k in ("order_id", "address_limit", "version", "plan", "reason", "amount")
            if k in data
        )
        events.add_row(
            entry_id, event["type"].removeprefix("mail.quota."), event["subject"], summary
        )
    console.print(events)
