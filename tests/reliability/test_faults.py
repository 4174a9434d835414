"""Batches of orders through real workers while processes, the broker and the database fail.

After each run the invariants of tests/reliability/invariants.py are checked
from the database and the stream: nothing lost, nothing applied twice, every
payment decided, versions without gaps, dead letters exactly the bad input.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess, start_worker, stop_worker
from tests.e2e.producer import Producer
from tests.helpers import wait_until
from tests.reliability import batch
from tests.reliability.conftest import ORDERS, REPORTS
from tests.reliability.invariants import Report, check, unsettled
from worker.adapters.embedded import EmbeddedRedis

pytestmark = pytest.mark.reliability

PAYMENT_TIMEOUT = 15
# Bounded by the broker's redelivery of a killed worker's message (60 s
# visibility + 10 s restore scan) and the payment timeout of unpaid orders.
SETTLE_SECONDS = 240
# A message in flight when its worker dies must run again within two minutes,
# not the hour of Redis's default visibility timeout.
REDELIVERY_BOUND_SECONDS = 120
# Kills of the kill-storm scenario (make reliability: 20).
KILLS = int(os.environ.get("QUOTA_RELIABILITY_KILLS", "6"))
# Extra worker settings for a comparison run, e.g. "QUOTA_REDIS_ATOMIC_POP=false"
# shows what kombu's own Redis transport loses in the same scenarios.
WORKER_ENV = dict(
    pair.split("=", 1) for pair in os.environ.get("QUOTA_RELIABILITY_WORKER_ENV", "").split()
)


@pytest.fixture(scope="module")
def engine(services: Services) -> Iterator[Engine]:
    # Pre-ping: the outage scenario terminates this engine's connections too.
    engine = create_engine(services.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def producer(services: Services) -> Producer:
    return Producer(services.broker_url)


class Run:
    def __init__(self, services: Services, name: str, processes: int = 1) -> None:
        self.services, self.name, self.processes = services, name, processes
        self.worker = self.start()

    def start(self) -> WorkerProcess:
        return start_worker(
            self.services,
            f"{self.name}.log",
            QUOTA_PAYMENT_TIMEOUT_SECONDS=str(PAYMENT_TIMEOUT),
            QUOTA_SWEEP_INTERVAL_SECONDS="1",
            QUOTA_WORKER_PROCESSES=str(self.processes),
            **WORKER_ENV,
        )

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.worker.process.pid).children(recursive=True)


def scenario(
    name: str,
    services: Services,
    producer: Producer,
    engine: Engine,
    fault: Callable[[Run], None] | None = None,
    faults: int = 0,
    processes: int = 1,
    recover_within: float | None = None,
) -> Report:
    ledger = batch.build(name, ORDERS)
    run = Run(services, name, processes)
    try:
        batch.send(producer, ledger.setup)
        assert wait_until(lambda: _set_up(engine, ledger), 120), "provisioning did not finish"
        report = Report(name, ledger.message_count, faults)
        failures: list[BaseException] = []

        def send_all() -> None:
            try:
                batch.send(producer, ledger.messages)
            except BaseException as exc:  # surfaced below: an unsent message is no loss of ours
                failures.append(exc)

        sender = threading.Thread(target=send_all)
        sender.start()
        for n in range(faults):
            # Spread the faults over the batch: each lands while messages flow.
            wait_until(lambda n=n: _progress(engine, ledger) > (n + 1) / (faults + 1), 120)
            assert fault is not None
            fault(run)
        last_fault = time.monotonic()
        sender.join()
        assert not failures, f"the producer could not send: {failures[0]!r}"
        settled = wait_until(lambda: _settled(engine, ledger), SETTLE_SECONDS, step=0.5)
        recovery = time.monotonic() - last_fault
    finally:
        stop_worker(run.worker)
    client = _redis(services)
    check(engine, client, services.stream, ledger, report)
    # Nothing may be lost, on any broker: on Redis worker.adapters.transport pops and records
    # a message in one step, so even a consumer killed mid-pop loses nothing.
    report.violations.extend(report.lost_messages)
    if recover_within is not None and settled and recovery > recover_within:
        report.violations.append(
            f"settled {recovery:.0f} s after the last fault (> {recover_within} s)"
        )
    REPORTS.append(report)
    assert report.violations == [], "\n".join(report.violations[:30]) + "\n" + run.worker.tail(40)
    return report


def _settled(engine: Engine, ledger: batch.Ledger) -> bool:
    try:
        return unsettled(engine, ledger) == 0
    except OperationalError:
        return False


def _redis(services: Services) -> Any:
    import redis

    return redis.Redis.from_url(services.redis_url)


def _set_up(engine: Engine, ledger: batch.Ledger) -> bool:
    with engine.connect() as conn:
        mails = conn.execute(text("SELECT id FROM service_mails")).scalars().all()
        addresses = conn.execute(text("SELECT count(*) FROM addresses")).scalar_one()
    expected_addresses = sum(1 for m in ledger.setup if m.task == "mail.address_created")
    return set(ledger.mails) <= set(mails) and addresses >= expected_addresses


def _progress(engine: Engine, ledger: batch.Ledger) -> float:
    try:
        return _processed(engine, ledger)
    except OperationalError:  # the database is away (the outage scenario): no progress to see
        return 0.0


def _processed(engine: Engine, ledger: batch.Ledger) -> float:
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM processed_messages WHERE order_id LIKE :p"),
            {"p": f"{ledger.scenario}-%"},
        ).scalar_one()
    return float(done) / max(1, len(ledger.messages))


# -- the faults ------------------------------------------------------------------
def kill_worker_processes(run: Run) -> None:
    """kill -9 every Celery process (main and pool); the supervisor starts new ones."""
    for process in run.descendants():
        process.kill()


def sigterm_and_restart(run: Run) -> None:
    assert stop_worker(run.worker) == 0, run.worker.tail()
    run.worker = run.start()


def crash_everything(run: Run) -> None:
    """The host dies: supervisor (and its relay), workers, all at once; then it comes back."""
    processes = [psutil.Process(run.worker.process.pid), *run.descendants()]
    for process in processes:
        process.kill()
    run.worker.process.wait()
    run.worker = run.start()


def restart_broker(embedded: EmbeddedRedis) -> Callable[[Run], None]:
    def fault(run: Run) -> None:
        embedded.stop()
        time.sleep(2)
        embedded.start()

    return fault


def database_outage(services: Services, seconds: float = 5) -> Callable[[Run], None]:
    def fault(run: Run) -> None:
        if services.on_postgres:
            _postgres_outage(services.database_url, seconds)
        else:
            _sqlite_write_lock(services.database_url, seconds)

    return fault


def _postgres_outage(url: str, seconds: float) -> None:
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        time.sleep(seconds)
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    admin.dispose()


def _sqlite_write_lock(url: str, seconds: float) -> None:
    import sqlite3

    db = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    time.sleep(seconds)
    db.execute("ROLLBACK")
    db.close()


# -- the scenarios ------------------------------------------------------------------
def test_a_batch_without_faults_keeps_every_promise(
    services: Services, producer: Producer, engine: Engine
) -> None:
    scenario("baseline", services, producer, engine)


def test_workers_killed_mid_batch_lose_nothing(
    services: Services, producer: Producer, engine: Engine
) -> None:
    scenario(
        "worker-killed", services, producer, engine, kill_worker_processes, faults=2,
        recover_within=REDELIVERY_BOUND_SECONDS,
    )  # fmt: skip


@pytest.mark.timeout(300 + 30 * KILLS)  # each kill costs a restart of the worker
def test_a_storm_of_kills_loses_nothing(
    services: Services, producer: Producer, engine: Engine
) -> None:
    """Many kill -9s while messages flow: the moment between a pop and its record is hit."""
    scenario(
        "kill-storm", services, producer, engine, kill_worker_processes, faults=KILLS,
        recover_within=REDELIVERY_BOUND_SECONDS,
    )  # fmt: skip


def test_a_broker_restart_mid_batch_loses_nothing(
    services: Services, producer: Producer, engine: Engine, embedded_redis: EmbeddedRedis | None
) -> None:
    if embedded_redis is None or not services.broker_url.startswith("redis"):
        pytest.skip("restarts only the suite's own Redis (AOF on); the machine's keeps nothing")
    scenario("broker-restart", services, producer, engine, restart_broker(embedded_redis), faults=1)


def test_a_database_outage_mid_batch_half_applies_nothing(
    services: Services, producer: Producer, engine: Engine
) -> None:
    scenario("database-outage", services, producer, engine, database_outage(services), faults=2)


def test_a_crash_of_the_whole_worker_host_loses_no_event(
    services: Services, producer: Producer, engine: Engine
) -> None:
    scenario(
        "host-crash", services, producer, engine, crash_everything, faults=1,
        recover_within=REDELIVERY_BOUND_SECONDS,
    )  # fmt: skip


def test_sigterm_mid_batch_finishes_or_returns_every_message(
    services: Services, producer: Producer, engine: Engine
) -> None:
    scenario("sigterm", services, producer, engine, sigterm_and_restart, faults=2)


def test_two_worker_processes_racing_on_the_same_service_mails_keep_every_promise(
    services: Services, producer: Producer, engine: Engine
) -> None:
    scenario("races", services, producer, engine, processes=2)
