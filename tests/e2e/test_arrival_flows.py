"""Issue 16's rules through a real worker: every order of arrival has its contract outcome.

The session's worker waits EXPIRY_GRACE_SECONDS and PROVISIONING_GRACE_SECONDS (short);
what a test leaves for an operator (a dead letter, a Service Mail outside its plan) it
resolves again, so `quota-worker status` stays healthy for the other tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import Producer
from tests.e2e.test_operations import cli
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e

ACCEPTED = "mail.quota.change.accepted"
CHANGED = "mail.quota.changed"
REJECTED = "mail.quota.change.rejected"
EXPIRED = "mail.quota.change.expired"
REFUND = "mail.quota.refund.required"


def _ids() -> dict[str, str]:
    return {"request_id": new_id("req"), "order_id": new_id("ord")}


def test_a_request_before_its_provisioning_is_decided_when_the_mail_comes(
    producer: Producer, events: EventReader
) -> None:
    mail, account, order = new_id("sm"), new_id("acc"), _ids()
    producer.request(**order, account=account, mail=mail, expected=1, new=8)
    producer.pay(payment_id=new_id("pay"), order_id=order["order_id"])
    producer.provision(mail, account, "starter", 1)
    changed = events.wait_for(CHANGED, order_id=order["order_id"])
    assert (changed["data"]["plan"], changed["data"]["address_limit"]) == ("premium", 8)


def test_a_request_whose_mail_never_comes_is_rejected_and_its_payment_refunded(
    producer: Producer, events: EventReader
) -> None:
    order, payment_id = _ids(), new_id("pay")
    producer.request(**order, account="acc", mail=new_id("sm-none"), expected=1, new=8)
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    rejected = events.wait_for(REJECTED, order_id=order["order_id"])
    assert rejected["data"]["reason"] == "unknown_service_mail"
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "change_rejected"


def test_a_payment_made_after_expires_at_expires_the_change_and_is_refunded(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    order = customer_factory().order(expected=10, new=20)
    accepted = events.wait_for(ACCEPTED, order_id=order["order_id"])
    late = datetime.fromisoformat(accepted["data"]["expires_at"]) + timedelta(seconds=1)
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"], paid_at=late.isoformat())
    events.wait_for(EXPIRED, order_id=order["order_id"])
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "change_expired"


def test_a_provisioning_to_another_owner_rejects_the_awaiting_change(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for(ACCEPTED, order_id=order["order_id"])
    producer.provision(customer.mail, new_id("acc"), "premium", 10)
    assert events.wait_for(REJECTED, order_id=order["order_id"])["data"]["reason"] == "not_owner"
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "change_rejected"


def test_a_reused_payment_id_is_a_dead_letter_that_status_names(
    customer_factory: Any, producer: Producer, events: EventReader, services: Services,
    worker: WorkerProcess, db: Engine,
) -> None:  # fmt: skip
    order = customer_factory().order(expected=10, new=20)
    events.wait_for(ACCEPTED, order_id=order["order_id"])
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    events.wait_for(CHANGED, order_id=order["order_id"])
    reused = producer.pay(payment_id=payment_id, order_id=order["order_id"], amount=1)
    assert wait_until(lambda: worker.outcome_of(reused) == ["dead_letter"], 30), worker.tail()
    status = json.loads(cli(services, "status", "--json", "--max-dead-letters", "1000000").stdout)
    assert status["payment_id_conflicts"] >= 1 and not status["healthy"]
    with db.connect() as conn:
        letter = conn.execute(
            text("SELECT id, error FROM dead_letters WHERE message_id = :m"), {"m": reused}
        ).one()
    assert letter.error.startswith(f"idempotency_conflict: payment {payment_id}")
    discard = cli(services, "dead-letters", "discard", str(letter.id), "--reason", "test")
    assert discard.returncode == 0


def test_a_provisioning_outside_the_plan_is_shown_by_status_and_the_limit_kept(
    customer_factory: Any, producer: Producer, services: Services, db: Engine
) -> None:
    customer = customer_factory(plan="premium", limit=10)
    producer.provision(customer.mail, customer.account, "starter", 10)

    def outside() -> Any:
        with db.connect() as conn:
            return conn.execute(
                text("SELECT address_limit, outside_plan FROM service_mails WHERE id = :m"),
                {"m": customer.mail},
            ).one()

    assert wait_until(lambda: outside().outside_plan is not None, 30)
    assert outside().address_limit == 10
    status = json.loads(cli(services, "status", "--json", "--max-dead-letters", "1000000").stdout)
    assert any(customer.mail in problem for problem in status["problems"])
    producer.provision(customer.mail, customer.account, "premium", 10)
    assert wait_until(lambda: outside().outside_plan is None, 30)
