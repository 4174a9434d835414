"""Malformed and hostile messages end as a rejection or a dead letter; the worker goes on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import NOW, Producer
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e


def _dead_letter(db: Engine, message_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(
            text("SELECT task, body, content_type, error FROM dead_letters WHERE message_id = :m"),
            {"m": message_id},
        ).first()


def _good_request_is_accepted(customer_factory: Any, events: EventReader) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])


def test_a_malformed_request_is_rejected_and_the_next_good_one_is_processed(
    customer_factory: Any, producer: Producer, events: EventReader, db: Engine
) -> None:
    ids = {"request_id": new_id("req"), "order_id": new_id("ord"), "service_mail_id": new_id("sm")}
    message_id = producer.send(
        "quota.request_change", schema_version=1, **ids, account_id="acc",
        expected_address_limit=10, new_address_limit="twenty", amount_due=-5,
        currency="chf", requested_at=NOW,
    )  # fmt: skip
    rejected = events.wait_for("mail.quota.change.rejected", order_id=ids["order_id"])
    assert rejected["data"]["reason"] == "invalid_message"
    assert "new_address_limit" in rejected["data"]["detail"]
    assert wait_until(lambda: _dead_letter(db, message_id), 30)
    _good_request_is_accepted(customer_factory, events)


def test_an_unknown_field_is_refused_as_invalid(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    ids = {"request_id": new_id("req"), "order_id": new_id("ord")}
    producer.send(
        "quota.request_change", schema_version=1, **ids, account_id=customer.account,
        service_mail_id=customer.mail, expected_address_limit=10, new_address_limit=20,
        amount_due=100, currency="CHF", requested_at=NOW, discount_code="FREE",
    )  # fmt: skip
    rejected = events.wait_for("mail.quota.change.rejected", order_id=ids["order_id"])
    assert "discount_code" in rejected["data"]["detail"]


def test_a_message_whose_ids_cannot_be_read_is_only_dead_lettered(
    producer: Producer, db: Engine, worker: WorkerProcess
) -> None:
    message_id = producer.send("quota.payment_confirmed", schema_version=1, order_id=["x"])
    row = wait_until(lambda: _dead_letter(db, message_id), 30)
    assert row is not None, worker.tail()
    assert row.task == "quota.payment_confirmed" and "invalid_message" in row.error


def test_positional_arguments_are_dead_lettered(
    producer: Producer, db: Engine, worker: WorkerProcess
) -> None:
    message_id = producer.send_args("mail.address_created", "sm-1", "a@example.ch")
    row = wait_until(lambda: _dead_letter(db, message_id), 30)
    assert row is not None and "positional" in row.error


class _Exploit:
    """Unpickling this would create the marker file: the proof a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_message_is_never_executed_and_is_kept_as_a_dead_letter(
    customer_factory: Any, producer: Producer, events: EventReader, db: Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    message_id = producer.send(
        "quota.request_change", serializer="pickle", payload=_Exploit(marker)
    )
    row = wait_until(lambda: _dead_letter(db, message_id), 30)
    assert row is not None
    assert row.content_type == "application/x-python-serialize"
    assert row.body.startswith("base64:")
    _good_request_is_accepted(customer_factory, events)
    assert not marker.exists()


def test_a_message_for_an_unknown_task_is_kept_as_a_dead_letter(
    producer: Producer, db: Engine
) -> None:
    task_id = new_id("msg")
    producer.app.send_task(
        "quota.drop_database", kwargs={"now": True}, queue="quota.orders", task_id=task_id
    )
    row = wait_until(lambda: _dead_letter(db, task_id), 30)
    assert row is not None and "unknown task" in row.error
