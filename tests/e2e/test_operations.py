"""Operator commands against a real worker: find a stuck change, see why, fix or replay it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import Producer
from tests.helpers import EventReader, new_id, wait_until
from worker.bootstrap import build
from worker.settings import Settings

pytestmark = pytest.mark.e2e


def cli(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=services.worker_env(QUOTA_LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _awaiting_order(customer_factory: Any, events: EventReader) -> dict[str, str]:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])
    return order


def test_status_reports_workers_and_changes_as_json(
    services: Services, customer_factory: Any, events: EventReader
) -> None:
    _awaiting_order(customer_factory, events)
    result = cli(services, "status", "--json", "--max-dead-letters", "1000000")
    status = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status["healthy"] and status["workers"]
    assert status["changes"]["awaiting_payment"] >= 1
    assert set(status["queues"]) == {"quota.orders", "quota.payments", "quota.mail", "quota.retry"}


def test_status_exits_non_zero_with_the_reason_when_a_threshold_is_crossed(
    services: Services, worker: WorkerProcess
) -> None:
    result = cli(services, "status", "--max-queue-depth", "-1", "--max-dead-letters", "1000000")
    assert result.returncode == 1
    assert "unhealthy: queue quota.orders holds 0 messages" in result.stdout


def test_requests_show_prints_every_message_transition_payment_and_event(
    services: Services, customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    order = _awaiting_order(customer_factory, events)
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    events.wait_for("mail.quota.changed", order_id=order["order_id"])
    trail = json.loads(cli(services, "requests", "show", order["order_id"], "--json").stdout)
    assert [m["task"] for m in trail["messages"]] == [
        "quota.request_change",
        "quota.payment_confirmed",
    ]
    assert [(t["from_state"], t["to_state"]) for t in trail["transitions"]] == [
        ("received", "awaiting_payment"),
        ("awaiting_payment", "applied"),
    ]
    assert [p["payment_id"] for p in trail["payments"]] == [payment_id]
    assert [e["type"] for e in trail["events"]] == [
        "mail.quota.change.accepted",
        "mail.quota.changed",
    ]
    readable = cli(services, "requests", "show", order["request_id"])
    assert readable.returncode == 0 and "awaiting_payment → applied" in readable.stdout


def test_requests_list_filters_by_state_and_service_mail(
    services: Services, customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])
    args = ["requests", "list", "--state", "awaiting_payment", "--service-mail", customer.mail]
    rows = json.loads(cli(services, *args, "--json").stdout)
    assert [r["order_id"] for r in rows] == [order["order_id"]]


def test_an_operator_can_cancel_a_stuck_change_with_the_usual_event(
    services: Services, customer_factory: Any, events: EventReader
) -> None:
    order = _awaiting_order(customer_factory, events)
    too_long = cli(services, "cancel", order["order_id"], "--reason", "x" * 201)
    assert too_long.returncode == 2 and "201 characters: at most 200" in too_long.stderr
    result = cli(services, "cancel", order["order_id"], "--reason", "customer called support")
    assert result.returncode == 0, result.stderr
    cancelled = events.wait_for("mail.quota.change.cancelled", order_id=order["order_id"])
    assert cancelled["data"]["reason"] == "customer called support"


def test_an_operator_can_expire_a_stuck_change_with_the_usual_event(
    services: Services, customer_factory: Any, events: EventReader
) -> None:
    order = _awaiting_order(customer_factory, events)
    assert cli(services, "expire", order["request_id"], "--reason", "payment lost").returncode == 0
    events.wait_for("mail.quota.change.expired", order_id=order["order_id"])
    again = cli(services, "expire", order["request_id"], "--reason", "twice")
    assert again.returncode != 0 and "is expired, not awaiting payment" in again.stderr


def _stored_letter(services: Services, task: str, kwargs: dict[str, Any]) -> int:
    """A dead letter as a transient failure past its retries leaves it."""
    container = build(
        Settings(
            database_url=services.database_url,
            redis_url=services.redis_url,
            broker_url=services.broker_url,
            events_stream=services.stream,
        )
    )
    message_id = new_id("failed-msg")
    container.bus.dead_letter(
        message_id=message_id,
        task=task,
        body=json.dumps({"args": [], "kwargs": kwargs}),
        error="gave up after 8 retries: database unavailable",
    )
    letters = [
        r for r in json.loads(cli(services, "dead-letters", "list", "--json").stdout)
        if r["message_id"] == message_id
    ]  # fmt: skip
    assert len(letters) == 1
    return int(letters[0]["id"])


def test_a_replayed_dead_letter_takes_the_normal_path_once(
    services: Services, worker: WorkerProcess, customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory()
    order_id = new_id("ord")
    letter = _stored_letter(
        services,
        "quota.request_change",
        {
            "schema_version": 1, "request_id": new_id("req"), "order_id": order_id,
            "account_id": customer.account, "service_mail_id": customer.mail,
            "expected_address_limit": 10, "new_address_limit": 20, "amount_due": 100,
            "currency": "CHF", "requested_at": "2026-11-24T10:00:00+00:00",
        },
    )  # fmt: skip
    assert cli(services, "dead-letters", "replay", str(letter)).returncode == 0
    events.wait_for("mail.quota.change.accepted", order_id=order_id)
    assert cli(services, "dead-letters", "replay", str(letter)).returncode == 0
    replayed = f"replay-{letter}"
    assert wait_until(lambda: len(worker.outcome_of(replayed)) == 2, 30), worker.tail()
    assert sorted(worker.outcome_of(replayed)) == ["awaiting_payment", "duplicate_delivery"]
    shown = json.loads(cli(services, "dead-letters", "show", str(letter)).stdout)
    assert shown["status"] == "replayed" and shown["replayed_as"] == replayed
    discard = cli(services, "dead-letters", "discard", str(letter), "--reason", "late")
    assert discard.returncode == 1 and f"dead letter {letter} is already replayed" in discard.stderr


def test_a_discarded_dead_letter_records_why_and_is_not_replayed(services: Services) -> None:
    letter = _stored_letter(services, "mail.address_created", {"schema_version": 1})
    discard = cli(services, "dead-letters", "discard", str(letter), "--reason", "test data")
    assert discard.returncode == 0
    replay = cli(services, "dead-letters", "replay", str(letter))
    assert replay.returncode == 1 and "discarded" in replay.stderr


def test_a_dead_letter_kept_only_in_part_is_not_replayed(services: Services) -> None:
    """A body over 64 KiB is stored cut (with its full size): replaying it would send a
    message that was never sent, so the command refuses and says what to do."""
    letter = _stored_letter(
        services, "mail.address_created", {"schema_version": 1, "padding": "x" * 100_000}
    )
    replay = cli(services, "dead-letters", "replay", str(letter))
    assert replay.returncode == 1 and "cannot be replayed" in replay.stderr
    shown = json.loads(cli(services, "dead-letters", "show", str(letter)).stdout)
    assert shown["body_size"] > 100_000 and len(shown["body"]) == 64 * 1024
    assert shown["status"] == "stored"


def test_health_is_ready_and_live_while_the_worker_runs(
    services: Services, worker: WorkerProcess
) -> None:
    result = cli(services, "health", "--live")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("healthy")


def test_health_is_not_ready_when_the_database_is_unreachable(services: Services) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "health"],
        env=services.worker_env(QUOTA_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "unhealthy: cannot reach the database" in result.stderr


def test_status_plot_writes_a_png_of_the_last_hour(
    services: Services, customer_factory: Any, events: EventReader, tmp_path: Path
) -> None:
    _awaiting_order(customer_factory, events)
    target = tmp_path / "status.png"
    result = cli(services, "status", "--plot", str(target), "--max-dead-letters", "1000000")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with create_engine(services.database_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM samples")).scalar_one() > 0
