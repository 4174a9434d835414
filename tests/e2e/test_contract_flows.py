"""Every path of the contract's state diagram through a real worker process.

Messages go in with plain Celery `send_task`; outcomes are read back from the
event stream as a downstream consumer would.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import EXPIRY_GRACE_SECONDS, PAYMENT_TIMEOUT_SECONDS, WorkerProcess
from tests.e2e.producer import Producer
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e

ACCEPTED = "mail.quota.change.accepted"
CHANGED = "mail.quota.changed"
REJECTED = "mail.quota.change.rejected"
EXPIRED = "mail.quota.change.expired"
CANCELLED = "mail.quota.change.cancelled"
REFUND = "mail.quota.refund.required"
EXPIRY_WAIT = PAYMENT_TIMEOUT_SECONDS + EXPIRY_GRACE_SECONDS + 30


def test_a_raise_paid_on_time_is_applied(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory(limit=10)
    order = customer.order(expected=10, new=20)
    accepted = events.wait_for(ACCEPTED, order_id=order["order_id"])
    assert accepted["data"]["expires_at"]
    producer.pay(payment_id=new_id("pay"), order_id=order["order_id"])
    changed = events.wait_for(CHANGED, order_id=order["order_id"])
    assert changed["subject"] == customer.mail
    assert (changed["data"]["previous_address_limit"], changed["data"]["address_limit"]) == (10, 20)
    assert changed["data"]["version"] == 1


def test_a_free_decrease_is_applied_without_waiting_for_payment(
    customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory(limit=20)
    order = customer.order(expected=20, new=6, amount=0)
    assert events.wait_for(CHANGED, order_id=order["order_id"])["data"]["address_limit"] == 6
    assert events.of_type(ACCEPTED, order_id=order["order_id"]) == []


def test_a_payment_sent_before_its_request_is_applied_when_the_request_arrives(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory(limit=10)
    order_id, request_id = new_id("ord"), new_id("req")
    producer.pay(payment_id=new_id("pay"), order_id=order_id)
    producer.request(
        request_id=request_id, order_id=order_id, account=customer.account,
        mail=customer.mail, expected=10, new=15,
    )  # fmt: skip
    assert events.wait_for(CHANGED, order_id=order_id)["data"]["address_limit"] == 15


def test_a_starter_upgraded_by_a_paid_order_becomes_premium(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory(plan="starter", limit=1)
    order = customer.order(expected=1, new=8)
    events.wait_for(ACCEPTED, order_id=order["order_id"])
    producer.pay(payment_id=new_id("pay"), order_id=order["order_id"])
    assert events.wait_for(CHANGED, order_id=order["order_id"])["data"]["plan"] == "premium"


def test_a_cancelled_change_is_cancelled_and_a_later_payment_refunded(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for(ACCEPTED, order_id=order["order_id"])
    producer.cancel(order["order_id"], "customer left the cart")
    cancelled = events.wait_for(CANCELLED, order_id=order["order_id"])
    assert cancelled["data"]["reason"] == "customer left the cart"
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "change_cancelled"


def test_an_unpaid_change_expires_and_a_late_payment_is_refunded(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for(EXPIRED, timeout=EXPIRY_WAIT, order_id=order["order_id"])
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "change_expired"


def test_a_payment_no_order_ever_claims_is_refunded_after_the_timeout(
    producer: Producer, events: EventReader
) -> None:
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=new_id("ord-never"))
    refund = events.wait_for(REFUND, timeout=EXPIRY_WAIT, payment_id=payment_id)
    assert refund["data"]["reason"] == "unknown_order"


def test_a_second_payment_is_refunded_as_a_duplicate(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for(ACCEPTED, order_id=order["order_id"])
    producer.pay(payment_id=new_id("pay"), order_id=order["order_id"])
    events.wait_for(CHANGED, order_id=order["order_id"])
    second = new_id("pay")
    producer.pay(payment_id=second, order_id=order["order_id"])
    assert events.wait_for(REFUND, payment_id=second)["data"]["reason"] == "duplicate_payment"


def test_a_payment_of_the_wrong_amount_rejects_the_change_and_is_refunded(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20, amount=1500)
    events.wait_for(ACCEPTED, order_id=order["order_id"])
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"], amount=1500, currency="EUR")
    rejected = events.wait_for(REJECTED, order_id=order["order_id"])
    assert rejected["data"]["reason"] == "payment_mismatch"
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "payment_mismatch"


def test_a_payment_for_a_rejected_change_is_refunded(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20, account=new_id("intruder"))
    events.wait_for(REJECTED, order_id=order["order_id"])
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    assert events.wait_for(REFUND, payment_id=payment_id)["data"]["reason"] == "change_rejected"


def _rejected_for(events: EventReader, order: dict[str, str]) -> dict[str, Any]:
    event = events.wait_for(REJECTED, order_id=order["order_id"])
    assert event["data"]["detail"], "a rejection carries a sentence for support"
    return event["data"]


def test_an_unknown_service_mail_is_refused(producer: Producer, events: EventReader) -> None:
    order = {"request_id": new_id("req"), "order_id": new_id("ord")}
    producer.request(**order, account="acc", mail=new_id("sm-none"), expected=10, new=20)
    assert _rejected_for(events, order)["reason"] == "unknown_service_mail"


@pytest.mark.parametrize(
    ("setup", "expected", "new", "reason"),
    [
        ({"limit": 10}, 10, 10, "no_change"),
        ({"limit": 10}, 9, 20, "stale_request"),
        ({"plan": "starter", "limit": 1}, 1, 3, "below_plan_minimum"),
        ({"limit": 10}, 10, 4, "below_plan_minimum"),
        ({"limit": 10}, 10, 10_001, "above_plan_maximum"),
        ({"limit": 10, "ksuite_id": "ks-1"}, 10, 20, "managed_by_ksuite"),
    ],
    ids=["no-change", "stale", "starter-to-3", "premium-to-4", "over-max", "ksuite"],
)
def test_a_request_breaking_a_rule_is_refused_with_its_reason(
    customer_factory: Any,
    events: EventReader,
    setup: dict[str, Any],
    expected: int,
    new: int,
    reason: str,
) -> None:
    customer = customer_factory(**setup)
    assert _rejected_for(events, customer.order(expected=expected, new=new))["reason"] == reason


def test_a_request_from_another_account_is_refused(
    customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20, account=new_id("intruder"))
    assert _rejected_for(events, order)["reason"] == "not_owner"


def test_a_decrease_below_the_addresses_in_use_is_refused(
    customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory(limit=20)
    customer.addresses(7)
    order = customer.order(expected=20, new=6, amount=0)
    assert _rejected_for(events, order)["reason"] == "addresses_in_use"


def test_a_second_change_while_one_awaits_payment_is_refused(
    customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory()
    first = customer.order(expected=10, new=20)
    events.wait_for(ACCEPTED, order_id=first["order_id"])
    assert _rejected_for(events, customer.order(expected=10, new=30))["reason"] == (
        "change_in_progress"
    )


def test_a_request_id_reused_with_another_payload_is_refused(
    customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    customer = customer_factory()
    first = customer.order(expected=10, new=20)
    events.wait_for(ACCEPTED, order_id=first["order_id"])
    again = {"request_id": first["request_id"], "order_id": new_id("ord")}
    producer.request(**again, account=customer.account, mail=customer.mail, expected=10, new=25)
    assert _rejected_for(events, again)["reason"] == "idempotency_conflict"


def test_the_same_message_delivered_twice_has_one_effect(
    customer_factory: Any, producer: Producer, events: EventReader, worker: WorkerProcess
) -> None:
    customer = customer_factory()
    ids = {"request_id": new_id("req"), "order_id": new_id("ord")}
    task_id = new_id("msg")
    for _ in range(2):
        producer.request(
            **ids,
            account=customer.account,
            mail=customer.mail,
            expected=10,
            new=20,
            task_id=task_id,
        )
    assert wait_until(lambda: len(worker.outcome_of(task_id)) == 2, 30), worker.tail()
    assert sorted(worker.outcome_of(task_id)) == ["awaiting_payment", "duplicate_delivery"]
    assert len(events.of_type(ACCEPTED, order_id=ids["order_id"])) == 1


def test_the_same_request_resent_as_a_new_message_is_a_no_op(
    customer_factory: Any, producer: Producer, events: EventReader, worker: WorkerProcess
) -> None:
    customer = customer_factory()
    ids = {"request_id": new_id("req"), "order_id": new_id("ord")}
    sent = [
        producer.request(**ids, account=customer.account, mail=customer.mail, expected=10, new=20)
        for _ in range(2)
    ]
    assert wait_until(lambda: all(worker.outcome_of(m) for m in sent), 30), worker.tail()
    assert sorted(o for m in sent for o in worker.outcome_of(m)) == [
        "awaiting_payment",
        "duplicate",
    ]
    assert len(events.of_type(ACCEPTED, order_id=ids["order_id"])) == 1
