"""The handlers and the unit of work against a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from domain import commands, errors
from tests.helpers import new_id
from tests.integration.conftest import Clock
from tests.integration.shop import Shop
from worker.adapters import tables as t
from worker.adapters.db import already_processed
from worker.adapters.repository import SqlRepository
from worker.bootstrap import Container

CHANGED = "mail.quota.changed"
ACCEPTED = "mail.quota.change.accepted"
REJECTED = "mail.quota.change.rejected"
REFUND = "mail.quota.refund.required"


@pytest.fixture
def shop(app: Container) -> Shop:
    return Shop(app)


def test_a_paid_raise_is_applied_with_its_version_and_history(shop: Shop) -> None:
    mail, account = shop.provision(limit=10)
    order = shop.request(mail, account, expected=10, new=20)
    assert shop.send(order) == "awaiting_payment"
    assert shop.send(shop.payment(order.order_id)) == "applied"
    row = shop.mail(mail)
    assert (row.address_limit, row.version) == (20, 1)
    assert [(h.previous_address_limit, h.address_limit) for h in shop.history(mail)] == [(10, 20)]
    assert shop.types(order_id=order.order_id) == [ACCEPTED, CHANGED]


def test_a_redelivered_message_has_no_second_effect(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order, message_id="redelivered-" + order.order_id)
    assert shop.send(order, message_id="redelivered-" + order.order_id) == "duplicate_delivery"
    assert shop.types(order_id=order.order_id) == [ACCEPTED]


def test_the_same_request_sent_again_is_a_no_op(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    assert shop.send(order) == "duplicate"
    assert shop.types(order_id=order.order_id) == [ACCEPTED]


def test_a_request_id_reused_with_another_payload_is_an_idempotency_conflict(shop: Shop) -> None:
    mail, account = shop.provision()
    first = shop.request(mail, account, expected=10, new=20)
    shop.send(first)
    other = shop.request(mail, account, expected=10, new=30, request_id=first.request_id)
    assert shop.send(other) == "rejected:idempotency_conflict"
    assert shop.change(first.order_id).new_address_limit == 20


def test_an_order_reused_by_another_request_is_an_idempotency_conflict(shop: Shop) -> None:
    mail, account = shop.provision()
    first = shop.request(mail, account, expected=10, new=20)
    shop.send(first)
    assert shop.send(shop.request(mail, account, expected=10, new=20, order_id=first.order_id)) == (
        "rejected:idempotency_conflict"
    )


def test_a_payment_before_its_request_is_used_when_the_request_arrives(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    payment = shop.payment(order.order_id)
    assert shop.send(payment) == "payment_held"
    assert shop.send(order) == "applied"
    assert shop.payment_row(payment.payment_id).status == "used"


def test_a_cancel_before_its_request_cancels_the_change_on_arrival(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    assert shop.send(commands.CancelQuotaChange(order.order_id, "cart left")) == "cancel_held"
    assert shop.send(order) == "cancelled"
    assert shop.types(order_id=order.order_id)[-1] == "mail.quota.change.cancelled"


def test_a_second_payment_for_an_applied_order_is_refunded_as_duplicate(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    shop.send(shop.payment(order.order_id))
    second = shop.payment(order.order_id)
    assert shop.send(second) == "refund:duplicate_payment"
    assert shop.events(payment_id=second.payment_id)[0]["data"]["reason"] == "duplicate_payment"


def test_a_payment_of_the_wrong_amount_rejects_the_change_and_is_refunded(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20, amount=1500)
    shop.send(order)
    assert shop.send(shop.payment(order.order_id, amount=1400)) == "refund:payment_mismatch"
    assert shop.change(order.order_id).reason == "payment_mismatch"
    assert shop.mail(mail).address_limit == 10


def test_the_sweep_expires_an_unpaid_change_and_refunds_a_late_payment(
    shop: Shop, app: Container, clock: Clock
) -> None:
    """Of this test's two unpaid changes the sweep expires, once, only the one past its deadline
    (the database is shared, so only our own ids are read), and a late payment is refunded."""
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    clock.advance(seconds=2)
    other_mail, other_account = shop.provision()
    not_due = shop.request(other_mail, other_account, expected=10, new=20)
    shop.send(not_due)
    clock.advance(seconds=3599)  # 1 s past the first deadline, 1 s before the second
    app.bus.sweep()
    states = {o: shop.change(o).state for o in (order.order_id, not_due.order_id)}
    assert states == {order.order_id: "expired", not_due.order_id: "awaiting_payment"}
    assert shop.types(order_id=order.order_id) == [ACCEPTED, "mail.quota.change.expired"]
    assert shop.send(shop.payment(order.order_id)) == "refund:change_expired"


def test_the_sweep_leaves_a_change_whose_deadline_has_not_come(
    shop: Shop, app: Container, clock: Clock
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    clock.advance(seconds=3599)
    app.bus.sweep()
    assert shop.change(order.order_id).state == "awaiting_payment"


def test_the_sweep_refunds_a_payment_no_order_claimed(
    shop: Shop, app: Container, clock: Clock
) -> None:
    payment = shop.payment("never-ordered-" + shop.provision()[0])
    shop.send(payment)
    clock.advance(seconds=3601)
    app.bus.sweep()
    assert shop.payment_row(payment.payment_id).refund_reason == "unknown_order"
    assert shop.events(payment_id=payment.payment_id)[0]["subject"].startswith("order:")


def test_a_second_change_while_one_awaits_payment_is_refused(shop: Shop) -> None:
    mail, account = shop.provision()
    shop.send(shop.request(mail, account, expected=10, new=20))
    assert shop.send(shop.request(mail, account, expected=10, new=30)) == (
        "rejected:change_in_progress"
    )


def test_a_free_decrease_is_applied_at_once(shop: Shop) -> None:
    mail, account = shop.provision(limit=20)
    assert shop.send(shop.request(mail, account, expected=20, new=8, amount=0)) == "applied"
    assert shop.mail(mail).address_limit == 8


def test_a_decrease_below_the_addresses_in_use_is_refused(shop: Shop) -> None:
    mail, account = shop.provision(limit=20)
    shop.add_addresses(mail, 9)
    assert shop.send(shop.request(mail, account, expected=20, new=8, amount=0)) == (
        "rejected:addresses_in_use"
    )


def test_an_address_reported_twice_counts_once(shop: Shop) -> None:
    mail, account = shop.provision(limit=10)
    shop.add_addresses(mail, 6)
    shop.add_addresses(mail, 6)
    assert shop.send(shop.request(mail, account, expected=10, new=5, amount=0)) == (
        "rejected:addresses_in_use"
    )
    shop.send(commands.RecordAddressDeleted(mail, "user5@example.ch"))
    assert shop.send(shop.request(mail, account, expected=10, new=5, amount=0)) == "applied"


def test_a_starter_upgraded_by_a_paid_order_becomes_premium(shop: Shop) -> None:
    mail, account = shop.provision(plan="starter", limit=1)
    order = shop.request(mail, account, expected=1, new=8)
    shop.send(order)
    shop.send(shop.payment(order.order_id))
    assert (shop.mail(mail).plan, shop.mail(mail).address_limit) == ("premium", 8)


def test_provisioning_again_updates_the_owner_and_ksuite_but_never_the_limit(shop: Shop) -> None:
    mail, _account = shop.provision(limit=10)
    shop.send(commands.ProvisionServiceMail(mail, "acc-new", "premium", 99, "ks-1"))
    row = shop.mail(mail)
    assert (row.account_id, row.ksuite_id, row.address_limit) == ("acc-new", "ks-1", 10)


def test_provisioning_an_unknown_plan_is_an_invalid_message(shop: Shop) -> None:
    with pytest.raises(errors.InvalidMessage, match="plan 'gold'"):
        shop.send(commands.ProvisionServiceMail("sm-gold", "acc", "gold", 10, None))


def test_a_failure_before_commit_leaves_no_partial_effect(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20, amount=0)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(SqlRepository, "mark_processed", broken)
    with pytest.raises(RuntimeError):
        shop.send(order)
    assert shop.change(order.order_id) is None
    assert shop.mail(mail).address_limit == 10
    assert shop.events(order_id=order.order_id) == []


def test_an_invalid_request_is_dead_lettered_with_its_rejection(shop: Shop, app: Container) -> None:
    rejection = commands.RejectInvalidMessage("req-bad", "ord-bad", "sm-bad", "new_address_limit")
    message_id = "bad-" + shop.provision()[0]
    app.bus.dead_letter(
        message_id=message_id,
        task="quota.request_change",
        body="{}",
        error="x",
        rejection=rejection,
    )
    assert len(shop.dead_letters(message_id)) == 1
    assert shop.types(order_id="ord-bad")[-1] == REJECTED


def test_provisioning_tells_a_new_service_mail_from_a_known_one(shop: Shop) -> None:
    mail = "sm-new-" + shop.provision()[0]
    assert shop.send(commands.ProvisionServiceMail(mail, "acc", "premium", 10, None)) == "created"
    assert shop.send(commands.ProvisionServiceMail(mail, "acc", "premium", 10, None)) == "updated"


def test_an_address_is_counted_once_and_removed_once(shop: Shop) -> None:
    mail, _ = shop.provision()
    assert shop.send(commands.RecordAddressCreated(mail, "a@b.ch")) == "counted"
    assert shop.send(commands.RecordAddressCreated(mail, "a@b.ch")) == "known"
    assert shop.send(commands.RecordAddressDeleted(mail, "a@b.ch")) == "removed"
    assert shop.send(commands.RecordAddressDeleted(mail, "a@b.ch")) == "unknown"


def test_a_service_mail_a_message_leaves_as_it_is_is_not_written(shop: Shop, clock: Clock) -> None:
    mail, account = shop.provision(limit=10)
    provisioned = shop.mail(mail).updated_at
    clock.advance(minutes=5)
    order = shop.request(mail, account, expected=10, new=20)
    assert shop.send(order) == "awaiting_payment"  # read and row-locked, not changed
    assert shop.mail(mail).updated_at == provisioned
    clock.advance(minutes=5)
    assert shop.send(shop.payment(order.order_id)) == "applied"
    assert shop.mail(mail).updated_at == clock.current


def _insert_twice(app: Container, table: Any, row: dict[str, Any]) -> IntegrityError:
    with app.database.engine.begin() as conn:
        conn.execute(insert(table), row)
    with pytest.raises(IntegrityError) as again, app.database.engine.begin() as conn:
        conn.execute(insert(table), row)
    return again.value


def test_a_redelivery_is_told_by_the_processed_key_not_by_words_in_the_error(
    app: Container,
) -> None:
    """The old test, a table name anywhere in the error text, took a duplicate Service Mail
    whose id holds that name (PostgreSQL repeats the key's value) for a redelivery."""
    now = datetime.now(UTC)
    processed = _insert_twice(app, t.processed_messages, {
        "message_id": new_id("msg"), "task": "t", "outcome": "o", "order_id": None,
        "processed_at": now,
    })  # fmt: skip
    assert already_processed(processed)
    other = _insert_twice(app, t.service_mails, {
        "id": new_id("processed_messages.message_id"), "account_id": "acc", "plan": "premium",
        "address_limit": 10, "ksuite_id": None, "version": 0, "updated_at": now,
    })  # fmt: skip
    assert not already_processed(other)
