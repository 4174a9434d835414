"""`quota-worker demo`: a realistic day of orders through the real queues and worker.

It starts the embedded default in its own directory, runs `quota-worker run`
as a child process, publishes with a plain Celery producer (as checkout,
payments and the mail platform would), reads the outcome back from the event
stream, and checks every order ended as the scenario expects.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from rich.console import Console
from rich.table import Table

from worker.adapters.embedded import EmbeddedRedis, EmbeddedRedisError
from worker.adapters.migrate import upgrade
from worker.settings import EMBEDDED_DB_FILE

PAYMENT_TIMEOUT = 6  # short, so the never-paid order expires while you watch
DEADLINE = 90
NOW = "2026-11-24T09:00:00+01:00"
QUEUES = {"quota.": "quota.orders", "mail.": "quota.mail"}
console = Console()


@dataclass
class Order:
    """One line of the day: what was sent, and the outcome it must reach."""

    key: str
    story: str
    mail: str
    expected: int
    new: int
    amount: int
    expect: str  # final state, or "rejected:<reason>"
    refund: str | None = None
    account: str | None = None
    request_id: str = ""
    order_id: str = ""
    outcome: str = "—"
    refunds: list[str] = field(default_factory=list)


@dataclass
class Day:
    celery: Celery
    orders: list[Order] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)

    def send(self, name: str, **payload: Any) -> None:
        queue = "quota.payments" if name == "quota.payment_confirmed" else None
        queue = queue or next(q for prefix, q in QUEUES.items() if name.startswith(prefix))
        self.celery.send_task(name, kwargs={"schema_version": 1, **payload}, queue=queue)

    def provision(self, mail: str, plan: str, limit: int, ksuite: str | None = None) -> None:
        self.accounts[mail] = f"acc-{mail}"
        console.print(
            f"  → mail platform: Service Mail [bold]{mail}[/bold] on {plan}, limit {limit}"
        )
        self.send(
            "mail.service_provisioned", service_mail_id=mail, account_id=self.accounts[mail],
            plan=plan, address_limit=limit, ksuite_id=ksuite,
        )  # fmt: skip

    def request(self, order: Order) -> None:
        n = len(self.orders) + 1
        order.request_id, order.order_id = f"req-{n:02d}", f"order-{n:02d}"
        self.orders.append(order)
        console.print(f"  → checkout: {order.order_id} {order.story}")
        self.send(
            "quota.request_change", request_id=order.request_id, order_id=order.order_id,
            account_id=order.account or self.accounts[order.mail], service_mail_id=order.mail,
            expected_address_limit=order.expected, new_address_limit=order.new,
            amount_due=order.amount, currency="CHF", requested_at=NOW,
        )  # fmt: skip

    def pay(self, order: Order, amount: int | None = None, suffix: str = "") -> None:
        paid = order.amount if amount is None else amount
        console.print(f"  → payments: {paid / 100:.2f} CHF confirmed for {order.order_id}{suffix}")
        self.send(
            "quota.payment_confirmed", payment_id=f"pay-{order.order_id}{suffix}",
            order_id=order.order_id, amount=paid, currency="CHF", paid_at=NOW,
        )  # fmt: skip


def play(day: Day, wait: Callable[[str], None]) -> None:
    """The scenario, in the order a day might bring it."""
    console.rule("the mail platform reports its Service Mails")
    day.provision("alpha", "premium", 10)
    day.provision("bravo", "premium", 20)
    day.provision("charlie", "starter", 1)
    day.provision("delta", "starter", 1)
    day.provision("echo", "premium", 10, ksuite="ksuite-7")
    day.provision("foxtrot", "premium", 10)
    for n in range(12):
        day.send("mail.address_created", service_mail_id="bravo", address=f"user{n}@bravo.example")
    wait("provisioned")

    console.rule("checkout sends orders, payments follow")
    raise_ok = Order("ok", "alpha 10 → 15, paid on time", "alpha", 10, 15, 2500, "applied")
    day.request(raise_ok)
    early = Order(
        "early", "foxtrot 10 → 12, paid before the order", "foxtrot", 10, 12, 1000, "applied"
    )
    early.order_id = "order-early"
    console.print("  → payments: 10.00 CHF confirmed for order-early (its order is not here yet)")
    day.send(
        "quota.payment_confirmed", payment_id="pay-order-early", order_id="order-early",
        amount=1000, currency="CHF", paid_at=NOW,
    )  # fmt: skip
    upgrade_ok = Order(
        "upgrade", "charlie starter 1 → 8 (upgrade to premium)", "charlie", 1, 8, 1800, "applied"
    )
    day.request(upgrade_ok)
    starter_small = Order(
        "starter3", "delta starter 1 → 3", "delta", 1, 3, 400, "rejected:below_plan_minimum"
    )
    day.request(starter_small)
    ksuite = Order(
        "ksuite",
        "echo 10 → 20 (part of a kSuite)",
        "echo",
        10,
        20,
        2000,
        "rejected:managed_by_ksuite",
    )
    day.request(ksuite)
    intruder = Order(
        "intruder", "alpha 10 → 50 by another account", "alpha", 10, 50, 8000,
        "rejected:not_owner", account="acc-mallory",
    )  # fmt: skip
    day.request(intruder)
    decrease_no = Order(
        "decrease-no",
        "bravo 20 → 8 (12 addresses in use)",
        "bravo",
        20,
        8,
        0,
        "rejected:addresses_in_use",
    )
    day.request(decrease_no)
    wait("accepted:" + raise_ok.order_id)
    day.pay(raise_ok)
    wait("applied:" + raise_ok.order_id)
    twice = Order(
        "twice",
        "alpha 15 → 18, paid twice",
        "alpha",
        15,
        18,
        900,
        "applied",
        refund="duplicate_payment",
    )
    day.request(twice)
    wait("accepted:" + twice.order_id)
    day.pay(twice)
    day.pay(twice, suffix="-again")
    day.pay(upgrade_ok)

    early.request_id = "req-early"
    day.orders.append(early)
    console.print(f"  → checkout: {early.order_id} {early.story}")
    day.send(
        "quota.request_change", request_id=early.request_id, order_id=early.order_id,
        account_id=day.accounts["foxtrot"], service_mail_id="foxtrot", expected_address_limit=10,
        new_address_limit=12, amount_due=1000, currency="CHF", requested_at=NOW,
    )  # fmt: skip
    wait("applied:order-early")
    wrong = Order(
        "wrong", "foxtrot 12 → 30, paid the wrong amount", "foxtrot", 12, 30, 3600,
        "rejected:payment_mismatch", refund="payment_mismatch",
    )  # fmt: skip
    day.request(wrong)
    wait("accepted:" + wrong.order_id)
    day.pay(wrong, amount=360)
    decrease_ok = Order(
        "decrease-ok", "bravo 20 → 15 (12 addresses in use)", "bravo", 20, 15, 0, "applied"
    )
    day.request(decrease_ok)
    wait("applied:" + decrease_ok.order_id)
    cancelled = Order(
        "cancel", "bravo 15 → 40, customer leaves the cart", "bravo", 15, 40, 5000, "cancelled"
    )
    day.request(cancelled)
    wait("accepted:" + cancelled.order_id)
    console.print(f"  → checkout: cancel {cancelled.order_id} (customer left the cart)")
    day.send("quota.cancel_change", order_id=cancelled.order_id, reason="customer left the cart")
    never = Order(
        "never",
        f"delta 1 → 5, never paid (expires after {PAYMENT_TIMEOUT} s)",
        "delta",
        1,
        5,
        900,
        "expired",
    )
    day.request(never)
    console.print("  → checkout: a malformed message (limit sent as text)")
    day.send(
        "quota.request_change", request_id="req-bad", order_id="order-bad", account_id="acc-x",
        service_mail_id="alpha", expected_address_limit=18, new_address_limit="twenty",
        amount_due=0, currency="CHF", requested_at=NOW,
    )  # fmt: skip
    bad = Order(
        "bad", "alpha 18 → 'twenty' (malformed)", "alpha", 18, 0, 0, "rejected:invalid_message"
    )
    bad.request_id, bad.order_id = "req-bad", "order-bad"
    day.orders.append(bad)
    console.print("  → checkout: the first order again (a duplicate: no second effect)")
    day.send(
        "quota.request_change", request_id=raise_ok.request_id, order_id=raise_ok.order_id,
        account_id=day.accounts["alpha"], service_mail_id="alpha", expected_address_limit=10,
        new_address_limit=15, amount_due=2500, currency="CHF", requested_at=NOW,
    )  # fmt: skip


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
        "mail.quota.changed": "applied",
        "mail.quota.change.expired": "expired",
        "mail.quota.change.cancelled": "cancelled",
    }
    for order in orders:
        order.refunds = []
        for event in events:
            data = event["data"]
            if data.get("order_id") != order.order_id:
                continue
            if event["type"] in final:
                order.outcome = final[event["type"]]
            elif event["type"] == "mail.quota.change.rejected":
                if data.get("request_id") == order.request_id:
                    order.outcome = f"rejected:{data['reason']}"
            elif event["type"] == "mail.quota.refund.required":
                order.refunds.append(data["reason"])


def _done(order: Order) -> bool:
    return order.outcome == order.expect and (order.refund is None or order.refund in order.refunds)


def run_demo(data_dir: Path, keep: bool = False) -> int:
    data_dir = data_dir.resolve()
    _prepare(data_dir, keep)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the story, not the migration
    console.print(f"[bold]quota-worker demo[/bold] · files in {data_dir}")
    try:
        embedded = EmbeddedRedis(data_dir).start()
    except EmbeddedRedisError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    worker = None
    try:
        env = _environment(data_dir, embedded)
        upgrade(env["QUOTA_DATABASE_URL"])
        worker = _start_worker(env, data_dir / "worker.log")
        stream = Stream(embedded.client(), env["QUOTA_EVENTS_STREAM"])
        day = Day(Celery("checkout", broker=embedded.broker_url, set_as_current=False))
        play(day, _waiter(day, stream, data_dir))
        console.rule("waiting for every order to settle")
        ok = _wait_all(day.orders, stream)
        _report(day.orders, stream)
        _hint(data_dir, env)
        return 0 if ok else 1
    finally:
        if worker is not None:
            _stop_worker(worker)
        embedded.stop()


def _prepare(data_dir: Path, keep: bool) -> None:
    if data_dir.exists() and not keep:
        ours = {EMBEDDED_DB_FILE, "redis.log", "worker.log", "appendonly.aof", "appendonlydir"}
        strangers = [p.name for p in data_dir.iterdir() if not p.name.startswith(tuple(ours))]
        if strangers:
            raise SystemExit(
                f"{data_dir} holds files the demo did not write ({strangers[:3]}); "
                "choose another --data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)


def _environment(data_dir: Path, embedded: EmbeddedRedis) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env.update(
        QUOTA_DATA_DIR=str(data_dir),
        QUOTA_DATABASE_URL=f"sqlite:///{data_dir / EMBEDDED_DB_FILE}",
        QUOTA_BROKER_URL=embedded.broker_url,
        QUOTA_REDIS_URL=embedded.redis_url,
        QUOTA_EVENTS_STREAM="quota.events",
        QUOTA_PAYMENT_TIMEOUT_SECONDS=str(PAYMENT_TIMEOUT),
        QUOTA_SWEEP_INTERVAL_SECONDS="1",
        QUOTA_LOG_FORMAT="json",
    )
    return env


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    console.print(f"starting the worker (its log: {log}) ...")
    command = [sys.executable, "-m", "worker.cli", "run", "--processes", "1", "--concurrency", "2"]
    process = subprocess.Popen(
        command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {log}")
        time.sleep(0.2)
    return process


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()


def _waiter(day: Day, stream: Stream, data_dir: Path) -> Callable[[str], None]:
    """Pause the story until a fact is true, as a real checkout waits for its events."""
    import sqlite3

    def provisioned() -> bool:
        with sqlite3.connect(data_dir / EMBEDDED_DB_FILE) as db:
            mails = db.execute("SELECT count(*) FROM service_mails").fetchone()[0]
            addresses = db.execute("SELECT count(*) FROM addresses").fetchone()[0]
        return bool(mails == len(day.accounts) and addresses == 12)

    def wait(what: str) -> None:
        kind, _, order_id = what.partition(":")
        types = {"accepted": "mail.quota.change.accepted", "applied": "mail.quota.changed"}

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


def _wait_all(orders: list[Order], stream: Stream) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        _settle(orders, stream.events())
        if all(_done(o) for o in orders):
            return True
        time.sleep(0.2)
    return False


def _report(orders: list[Order], stream: Stream) -> None:
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


def _hint(data_dir: Path, env: dict[str, str]) -> None:
    console.print(
        "\nLook closer (the demo's worker has stopped; its data stays):\n"
        f"  QUOTA_DATA_DIR={data_dir} QUOTA_DATABASE_URL={env['QUOTA_DATABASE_URL']} "
        "quota-worker requests show order-01\n"
        f"  sqlite3 {data_dir / EMBEDDED_DB_FILE} 'select * from dead_letters'"
    )
