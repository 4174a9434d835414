"""Batches through a real worker (QUOTA_BATCH_MAX=10), beside the session's worker on the
same queues: a burst is handled several messages per transaction, every message
logged, recorded and acknowledged as its own; a bad message in a burst is refused alone
while its neighbours go on."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, select, text

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess, start_worker, stop_worker
from tests.e2e.producer import Producer
from tests.helpers import wait_until
from worker.adapters import tables as t
from worker.adapters.deliveries import CONSUMED_QUEUES

pytestmark = pytest.mark.e2e

BURST = 300


@pytest.fixture(scope="module")
def batching(services: Services) -> Iterator[WorkerProcess]:
    worker = start_worker(services, "batching-worker.log", QUOTA_BATCH_MAX="10")
    yield worker
    code = stop_worker(worker)
    assert code == 0, f"the batching worker did not stop cleanly ({code}):\n{worker.tail()}"


def _processed(db: Engine, ids: list[str]) -> dict[str, str]:
    table = t.processed_messages
    with db.connect() as conn:
        rows = conn.execute(select(table).where(table.c.message_id.in_(ids)))
        return {r.message_id: r.outcome for r in rows}


def _lines(workers: list[WorkerProcess], ids: set[str]) -> list[dict[str, Any]]:
    return [
        r
        for w in workers
        for r in w.log_records()
        if r.get("event") == "message_processed" and r.get("message_id") in ids
    ]


def _status(services: Services) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status", "--json"],
        env=services.worker_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def _unacked(services: Services) -> int | None:
    unacked = _status(services)["unacked"]
    return None if unacked is None else int(unacked)


def test_a_burst_is_handled_in_batches_each_message_logged_and_acknowledged_once(
    batching: WorkerProcess,
    worker: WorkerProcess,
    customer_factory: Any,
    producer: Producer,
    db: Engine,
    services: Services,
) -> None:
    customer = customer_factory(limit=BURST)  # within its limit: status stays healthy
    ids = [
        producer.address(customer.mail, f"burst{n}@{customer.mail}.example.ch")
        for n in range(BURST)
    ]
    assert wait_until(lambda: customer.address_count() == BURST, 60), batching.tail()
    assert wait_until(lambda: len(_processed(db, ids)) == BURST, 30)
    assert set(_processed(db, ids).values()) == {"counted"}
    lines = _lines([batching, worker], set(ids))
    assert sorted(r["message_id"] for r in lines) == sorted(ids)  # one line each, no repeat
    sizes = [r["batch"] for r in lines if "batch" in r]
    assert sizes and max(sizes) > 1, "the batching worker never formed a batch"
    assert max(sizes) <= 10
    if _unacked(services) is not None:  # Redis tells; RabbitMQ holds them per connection
        assert wait_until(lambda: _unacked(services) == 0, 30), "messages left unacknowledged"
    # status shows each worker's batches
    batches = _status(services)["batches"]
    ours = [b for b in batches.values() if b and b["batch_max"] == 10]
    assert ours and ours[0]["messages"] >= max(sizes) and ours[0]["recent_max"] > 1, batches


def test_a_bad_message_in_a_burst_is_refused_alone_and_its_neighbours_go_on(
    batching: WorkerProcess, customer_factory: Any, producer: Producer, db: Engine
) -> None:
    customer = customer_factory(limit=100)
    good = [
        producer.address(customer.mail, f"near{n}@{customer.mail}.example.ch") for n in range(20)
    ]
    bad = producer.send(
        "mail.address_created", schema_version=1, service_mail_id=customer.mail, address=7
    )
    good += [
        producer.address(customer.mail, f"far{n}@{customer.mail}.example.ch") for n in range(20)
    ]
    assert wait_until(lambda: customer.address_count() == len(good), 60), batching.tail()
    assert wait_until(lambda: bad in _processed(db, [bad]), 30)
    with db.connect() as conn:
        errors = conn.execute(
            text("SELECT error FROM dead_letters WHERE message_id = :m"), {"m": bad}
        ).scalars().all()  # fmt: skip
    assert len(errors) == 1 and errors[0].startswith("invalid_message"), errors


@contextmanager
def consuming_alone(services: Services, alone: WorkerProcess) -> Iterator[None]:
    """Every other live worker stops consuming the contract's queues (Celery's remote
    control, as an operator would), so the burst goes to `alone` only; they consume again
    afterwards. Without it the batching workers, taking ten per pop, may leave it none."""
    control = Celery(broker=services.broker_url).control
    ours = f"quota0-{alone.process.pid}@{socket.gethostname()}"
    others = [n for reply in control.ping(timeout=2) for n in reply if n != ours]
    for queue in CONSUMED_QUEUES:
        control.cancel_consumer(queue, destination=others, reply=True, timeout=5)
    try:
        yield
    finally:
        for queue in CONSUMED_QUEUES:
            control.add_consumer(queue, destination=others, reply=True, timeout=5)


def test_batch_max_1_keeps_one_transaction_per_message(
    services: Services, customer_factory: Any, producer: Producer, db: Engine
) -> None:
    alone = start_worker(services, "one-by-one-worker.log", QUOTA_BATCH_MAX="1")
    try:
        customer = customer_factory(limit=100)
        with consuming_alone(services, alone):
            ids = [producer.address(customer.mail, f"one{n}@{customer.mail}.example.ch")
                   for n in range(60)]  # fmt: skip
            assert wait_until(lambda: len(_processed(db, ids)) == len(ids), 60), alone.tail()
        lines = _lines([alone], set(ids))
        assert sorted(r["message_id"] for r in lines) == sorted(ids), "another worker took some"
        assert all("batch" not in r for r in lines)
        told = _status(services)["batches"]
        assert {b["batch_max"] for b in told.values() if b} >= {1}, told
    finally:
        assert stop_worker(alone) == 0
