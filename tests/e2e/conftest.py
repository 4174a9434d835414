"""One real `quota-worker run` process for the session, on the test services."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import Services, make_services, migrated_database
from tests.e2e.producer import Producer
from tests.helpers import EventReader, new_id, wait_until

# Short enough that expiry tests finish quickly; every "paid in time" test
# pays right after the request, so this is never the margin that decides them.
PAYMENT_TIMEOUT_SECONDS = 12
SWEEP_INTERVAL_SECONDS = 1
# Every worker the tests start waits this long for a late payment made in time and for a
# Service Mail's provisioning (the contract's 300 s would only slow the tests down).
EXPIRY_GRACE_SECONDS = PROVISIONING_GRACE_SECONDS = 2


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int | None = None

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def outcome_of(self, message_id: str) -> list[str]:
        return [
            r["outcome"]
            for r in self.log_records()
            if r.get("event") == "message_processed" and r.get("message_id") == message_id
        ]

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(services: Services, log_name: str, **env: str) -> WorkerProcess:
    log_path = services.data_dir / log_name
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run", "--processes", "1", "--concurrency", "2"],
        env=services.worker_env(
            QUOTA_EXPIRY_GRACE_SECONDS=str(EXPIRY_GRACE_SECONDS),
            QUOTA_PROVISIONING_GRACE_SECONDS=str(PROVISIONING_GRACE_SECONDS),
            **env,
        ),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    port = env.get("QUOTA_METRICS_PORT")
    worker = WorkerProcess(process, log_path, int(port) if port else None)
    ready = wait_until(
        lambda: process.poll() is not None or " ready." in log_path.read_text(errors="replace"),
        120,
    )
    if not ready or process.poll() is not None:
        process.kill()
        raise RuntimeError(f"quota-worker run did not become ready:\n{worker.tail()}")
    return worker


def stop_worker(worker: WorkerProcess) -> int:
    worker.process.send_signal(signal.SIGTERM)
    try:
        return worker.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        raise


@pytest.fixture(scope="session")
def services(redis_urls: tuple[str, str], data_dir: Path) -> Iterator[Services]:
    """The end-to-end suite's own database and stream (see tests/conftest.py)."""
    with migrated_database(data_dir, "e2e") as url:
        yield make_services(url, redis_urls, data_dir, "e2e")


@pytest.fixture(scope="session")
def worker(services: Services) -> Iterator[WorkerProcess]:
    worker = start_worker(
        services,
        "worker.log",
        QUOTA_PAYMENT_TIMEOUT_SECONDS=str(PAYMENT_TIMEOUT_SECONDS),
        QUOTA_SWEEP_INTERVAL_SECONDS=str(SWEEP_INTERVAL_SECONDS),
        QUOTA_METRICS_PORT=str(free_port()),
    )
    yield worker
    code = stop_worker(worker)
    assert code == 0, f"the worker did not stop cleanly ({code}):\n{worker.tail()}"


@pytest.fixture(scope="session")
def producer(services: Services) -> Producer:
    return Producer(services.broker_url)


@pytest.fixture(scope="session")
def db(services: Services) -> Iterator[Engine]:
    engine = create_engine(services.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def events(services: Services, worker: WorkerProcess) -> EventReader:
    return EventReader(services.redis_url, services.stream)


@dataclass
class Customer:
    """One Service Mail and its owner, provisioned through the real queue."""

    mail: str
    account: str
    producer: Producer
    db: Engine

    def order(self, *, expected: int, new: int, amount: int = 1500, **kw: Any) -> dict[str, str]:
        ids = {"request_id": new_id("req"), "order_id": new_id("ord")}
        self.producer.request(
            **ids, account=kw.pop("account", self.account), mail=self.mail,
            expected=expected, new=new, amount=amount, **kw,
        )  # fmt: skip
        return ids

    def addresses(self, count: int) -> None:
        for n in range(count):
            self.producer.address(self.mail, f"user{n}@{self.mail}.example.ch")
        assert wait_until(lambda: self.address_count() == count, 30), "addresses not recorded"

    def address_count(self) -> int:
        return len(self.address_set())

    def address_set(self) -> set[str]:
        with self.db.connect() as conn:
            rows = conn.execute(
                text("SELECT address FROM addresses WHERE service_mail_id = :m"), {"m": self.mail}
            )
            return {row.address for row in rows}


@pytest.fixture
def customer_factory(producer: Producer, db: Engine, worker: WorkerProcess) -> Any:
    def make(plan: str = "premium", limit: int = 10, ksuite_id: str | None = None) -> Customer:
        customer = Customer(new_id("sm"), new_id("acc"), producer, db)
        producer.provision(customer.mail, customer.account, plan, limit, ksuite_id)

        def provisioned() -> bool:
            with db.connect() as conn:
                return (
                    conn.execute(
                        text("SELECT 1 FROM service_mails WHERE id = :m"), {"m": customer.mail}
                    ).first()
                    is not None
                )

        assert wait_until(provisioned, 30), f"not provisioned:\n{worker.tail()}"
        return customer

    return make
