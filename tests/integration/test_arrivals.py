"""Issue 16's rules against a real database: payments judged by `paid_at` with the
expiry grace, reused payment ids, provisioning that changes owner or kSuite, requests
that wait for their Service Mail, plans that leave a limit outside them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from domain import commands, errors
from tests.helpers import new_id
from tests.integration.conftest import Clock
from tests.integration.shop import Shop
from worker.bootstrap import Container, build
from worker.entrypoints.app import create_app
from worker.ops import queries
from worker.settings import Settings

GRACE = 300
ACCEPTED, EXPIRED = "mail.quota.change.accepted", "mail.quota.change.expired"
REFUND = "mail.quota.refund.required"
REJECTED = "mail.quota.change.rejected"


@pytest.fixture
def graced(settings: Settings, clock: Clock) -> Iterator[Container]:
    update = {"expiry_grace_seconds": GRACE, "provisioning_grace_seconds": GRACE}
    container = build(settings.model_copy(update=update), now=clock)
    yield container
    container.database.dispose()


@pytest.fixture
def shop(graced: Container) -> Shop:
    return Shop(graced)


def test_a_payment_in_time_arriving_within_the_grace_is_applied_after_a_sweep(
    shop: Shop, graced: Container, clock: Clock
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    deadline = shop.change(order.order_id).expires_at
    clock.advance(seconds=3600 + GRACE - 1)
    graced.bus.sweep()
    assert shop.change(order.order_id).state == "awaiting_payment"
    payment = replace(shop.payment(order.order_id), paid_at=deadline)
    assert shop.send(payment) == "applied"


def test_a_payment_after_the_deadline_expires_its_change_whenever_it_arrives(
    shop: Shop, clock: Clock
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    deadline = shop.change(order.order_id).expires_at
    clock.advance(seconds=3600 + 10)
    late = replace(shop.payment(order.order_id), paid_at=deadline + timedelta(seconds=1))
    assert shop.send(late) == "refund:change_expired"
    assert shop.types(order_id=order.order_id) == [ACCEPTED, EXPIRED, REFUND]


def test_the_sweep_expires_an_unpaid_change_only_past_the_grace(
    shop: Shop, graced: Container, clock: Clock
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    clock.advance(seconds=3600 + GRACE)
    graced.bus.sweep()
    assert shop.change(order.order_id).state == "expired"


def test_a_reused_payment_id_writes_nothing_and_its_dead_letter_is_a_status_problem(
    shop: Shop, graced: Container, settings: Settings
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    first = shop.payment(order.order_id)
    assert shop.send(first) == "applied"
    assert shop.send(replace(first, paid_at=first.paid_at + timedelta(hours=1))) == "duplicate"
    with pytest.raises(errors.PaymentIdConflict):
        shop.send(replace(first, amount=1))
    graced.bus.dead_letter(
        message_id=new_id("msg"), task="quota.payment_confirmed", body="{}",
        error=f"idempotency_conflict: payment {first.payment_id} was received ...",
    )  # fmt: skip
    status = queries.snapshot(
        graced, create_app(settings), queries.Thresholds(require_worker=False), ask_workers=False
    )
    assert status.payment_id_conflicts >= 1
    assert any("reuse a payment_id" in p for p in status.problems)
    assert shop.payment_row(first.payment_id).amount == 1500


def test_a_provisioning_to_another_owner_rejects_the_awaiting_change_and_refunds_later(
    shop: Shop,
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    other = new_id("acc")
    assert shop.send(commands.ProvisionServiceMail(mail, other, "premium", 10, None)) == "updated"
    change = shop.change(order.order_id)
    assert (change.state, change.reason) == ("rejected", "not_owner")
    assert shop.send(shop.payment(order.order_id)) == "refund:change_rejected"
    assert shop.types(order_id=order.order_id) == [ACCEPTED, REJECTED, REFUND]


def test_a_provisioning_into_a_ksuite_rejects_the_awaiting_change(shop: Shop) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    shop.send(commands.ProvisionServiceMail(mail, account, "premium", 10, new_id("ks")))
    assert shop.change(order.order_id).reason == "managed_by_ksuite"


def test_a_request_before_its_provisioning_waits_and_the_provisioning_decides_it(
    shop: Shop, clock: Clock
) -> None:
    mail, account = new_id("sm"), new_id("acc")
    order = shop.request(mail, account, expected=1, new=8)
    assert shop.send(order) == "received"
    assert shop.send(shop.payment(order.order_id)) == "payment_held"
    clock.advance(seconds=GRACE - 1)
    shop.send(commands.ProvisionServiceMail(mail, account, "starter", 1, None))
    assert shop.change(order.order_id).state == "applied"
    assert (shop.mail(mail).plan, shop.mail(mail).address_limit) == ("premium", 8)
    assert shop.types(order_id=order.order_id) == [ACCEPTED, "mail.quota.changed"]


def test_the_sweep_rejects_a_request_whose_mail_never_came_and_refunds_its_payment(
    shop: Shop, graced: Container, clock: Clock
) -> None:
    order = shop.request(new_id("sm"), new_id("acc"), expected=1, new=8)
    shop.send(order)
    payment = shop.payment(order.order_id)
    shop.send(payment)
    clock.advance(seconds=GRACE - 1)
    graced.bus.sweep()
    assert shop.change(order.order_id).state == "received"
    clock.advance(seconds=1)
    graced.bus.sweep()
    assert shop.change(order.order_id).reason == "unknown_service_mail"
    assert shop.payment_row(payment.payment_id).refund_reason == "change_rejected"
    assert shop.types(order_id=order.order_id) == [REJECTED, REFUND]


def test_a_provisioning_outside_the_plans_bounds_is_recorded_and_a_status_problem(
    shop: Shop, graced: Container, settings: Settings
) -> None:
    mail, account = shop.provision(plan="premium", limit=10)
    shop.send(commands.ProvisionServiceMail(mail, account, "starter", 10, None))
    row = shop.mail(mail)
    assert (row.plan, row.address_limit) == ("starter", 10)
    assert row.outside_plan == "limit 10 is above the starter maximum 1"
    status = queries.snapshot(
        graced, create_app(settings), queries.Thresholds(require_worker=False), ask_workers=False
    )
    assert status.outside_plan >= 1
    assert any("outside their plan's bounds" in p for p in status.problems)
    shop.send(commands.ProvisionServiceMail(mail, account, "premium", 10, None))
    assert shop.mail(mail).outside_plan is None
