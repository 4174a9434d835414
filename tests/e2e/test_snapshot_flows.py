"""`mail.addresses_snapshot` through the real queue and a real worker: it corrects the ghost
address a delete before its create leaves, an older one changes nothing, one before its
Service Mail's provisioning is its A once provisioned, address facts after it apply on top,
and 10,000 addresses of 254 characters pass the broker and apply."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import Producer
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e

REJECTED = "mail.quota.change.rejected"
EARLY, LATER, LATEST = "2026-11-24T03:00:00+01:00", "2026-11-24T04:00:00+01:00", "2026-11-25T03:00Z"


def _outcome(worker: WorkerProcess, message_id: str) -> str:
    assert wait_until(lambda: worker.outcome_of(message_id) != [], 60), worker.tail()
    [outcome] = worker.outcome_of(message_id)
    return outcome


def _addresses(mail: str, count: int) -> list[str]:
    return [f"user{n}@{mail}.example.ch" for n in range(count)]


def test_a_newer_snapshot_removes_the_ghost_a_delete_before_its_create_left(
    customer_factory: Any, producer: Producer, worker: WorkerProcess
) -> None:
    customer = customer_factory()
    customer.addresses(2)
    ghost = f"ghost@{customer.mail}.example.ch"
    assert _outcome(worker, producer.address(customer.mail, ghost, deleted=True)) == "unknown"
    assert _outcome(worker, producer.address(customer.mail, ghost)) == "counted"
    assert customer.address_count() == 3  # one too high: the ghost
    snapshot = producer.snapshot(customer.mail, _addresses(customer.mail, 2), LATER)
    assert _outcome(worker, snapshot) == "snapshot_applied:+0 -1"
    assert customer.address_count() == 2


def test_an_older_snapshot_is_stale_and_changes_nothing(
    customer_factory: Any, producer: Producer, worker: WorkerProcess
) -> None:
    customer = customer_factory()
    applied = producer.snapshot(customer.mail, _addresses(customer.mail, 3), LATER)
    assert _outcome(worker, applied) == "snapshot_applied:+3 -0"
    for taken_at in (EARLY, LATER):  # older, then the same time again
        stale = producer.snapshot(customer.mail, _addresses(customer.mail, 1), taken_at)
        assert _outcome(worker, stale) == "stale"
    assert customer.address_count() == 3


def test_address_facts_after_a_snapshot_apply_on_top_of_it(
    customer_factory: Any, producer: Producer, worker: WorkerProcess
) -> None:
    customer = customer_factory()
    listed = _addresses(customer.mail, 2)
    assert _outcome(worker, producer.snapshot(customer.mail, listed, LATER)).startswith(
        "snapshot_applied"
    )
    assert _outcome(worker, producer.address(customer.mail, f"new@{customer.mail}.ch")) == "counted"
    assert _outcome(worker, producer.address(customer.mail, listed[0], deleted=True)) == "removed"
    assert customer.address_set() == {listed[1], f"new@{customer.mail}.ch"}


def test_a_snapshot_before_its_provisioning_is_the_service_mails_a_once_provisioned(
    producer: Producer, worker: WorkerProcess, events: EventReader
) -> None:
    mail, account = new_id("sm-early"), new_id("acc")
    snapshot = producer.snapshot(mail, _addresses(mail, 7), LATER)
    assert _outcome(worker, snapshot) == "snapshot_applied:+7 -0"
    assert _outcome(worker, producer.provision(mail, account, "premium", 10)) == "created"
    order = {"request_id": new_id("req"), "order_id": new_id("ord")}
    producer.request(**order, account=account, mail=mail, expected=10, new=6, amount=0)
    rejected = events.wait_for(REJECTED, order_id=order["order_id"])["data"]
    assert rejected["reason"] == "addresses_in_use"
    assert rejected["detail"].startswith("7 addresses exist")


def test_ten_thousand_addresses_of_254_characters_pass_the_broker_and_apply(
    customer_factory: Any, producer: Producer, worker: WorkerProcess
) -> None:
    customer = customer_factory(limit=10_000)
    domain = "d" * 186 + ".ch"
    addresses = [f"u{n:063d}@{domain}" for n in range(10_000)]
    assert {len(a) for a in addresses} == {254}
    body = json.dumps([[], {"schema_version": 1, "service_mail_id": customer.mail,
                            "addresses": addresses, "taken_at": LATEST}, {}])  # fmt: skip
    assert len(body.encode()) < 4 * 1024 * 1024  # QUOTA_MAX_MESSAGE_BYTES' default
    started = time.monotonic()
    snapshot = producer.snapshot(customer.mail, addresses, LATEST)
    assert _outcome(worker, snapshot) == "snapshot_applied:+10000 -0"
    assert customer.address_count() == 10_000, time.monotonic() - started


def test_a_snapshot_from_the_future_is_a_dead_letter_and_a_true_one_still_applies(
    customer_factory: Any, producer: Producer, worker: WorkerProcess, db: Engine
) -> None:
    customer = customer_factory()
    future = producer.snapshot(customer.mail, _addresses(customer.mail, 1), "2199-01-01T00:00Z")
    assert _outcome(worker, future) == "dead_letter"
    with db.connect() as conn:
        error = conn.execute(
            text("SELECT error FROM dead_letters WHERE message_id = :m"), {"m": future}
        ).scalar_one()
    assert error.startswith("invalid_message") and "in the future" in error
    true = producer.snapshot(customer.mail, _addresses(customer.mail, 2), LATEST)
    assert _outcome(worker, true) == "snapshot_applied:+2 -0"
