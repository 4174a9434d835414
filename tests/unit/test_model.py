"""Every rule and transition of the aggregates, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import errors
from domain.errors import IllegalTransition
from domain.events import ChangeAccepted, ChangeRejected, QuotaChanged, RefundRequired
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment, PaymentStatus
from domain.plans import PlanTable

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TIMEOUT = timedelta(hours=24)
PLANS = PlanTable.default()


def mail(**kw: object) -> ServiceMail:
    values: dict[str, object] = {
        "id": "sm-1",
        "account_id": "acc-1",
        "plan": "premium",
        "address_limit": 10,
    }
    values.update(kw)
    return ServiceMail(**values)  # type: ignore[arg-type]


def change(expected: int = 10, new: int = 20, amount: int = 1500, **kw: object) -> QuotaChange:
    values: dict[str, object] = {
        "request_id": "req-1", "order_id": "ord-1", "account_id": "acc-1",
        "service_mail_id": "sm-1",
        "expected_address_limit": expected, "new_address_limit": new, "amount_due": amount,
        "currency": "CHF", "requested_at": NOW,
    }  # fmt: skip
    values.update(kw)
    return QuotaChange(**values)  # type: ignore[arg-type]


def payment(amount: int = 1500, currency: str = "CHF", payment_id: str = "pay-1") -> Payment:
    return Payment(payment_id, "ord-1", amount, currency, NOW, NOW)


def awaiting(sm: ServiceMail, **kw: object) -> QuotaChange:
    c = change(**kw)
    c.receive(sm, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert c.state is ChangeState.AWAITING_PAYMENT
    return c


def refused(sm: ServiceMail, expected: int, new: int, account: str = "acc-1") -> str:
    with pytest.raises(errors.Rejected) as caught:
        sm.check_change(account, expected, new, PLANS)
    return caught.value.reason


# -- ServiceMail.check_change -------------------------------------------------
def test_another_account_may_not_change_the_limit() -> None:
    assert refused(mail(), 10, 20, account="acc-2") == "not_owner"


def test_a_service_mail_in_a_ksuite_is_not_changed_here() -> None:
    assert refused(mail(ksuite_id="ks-1"), 10, 20) == "managed_by_ksuite"


def test_asking_for_the_current_limit_is_no_change() -> None:
    assert refused(mail(), 10, 10) == "no_change"


def test_an_order_made_for_another_limit_is_stale() -> None:
    assert refused(mail(), 9, 20) == "stale_request"


def test_a_premium_at_ten_asking_for_four_is_below_the_plan_minimum() -> None:
    assert refused(mail(), 10, 4) == "below_plan_minimum"


def test_a_starter_at_one_asking_for_three_is_below_the_paid_plans_minimum() -> None:
    assert refused(mail(plan="starter", address_limit=1), 1, 3) == "below_plan_minimum"


def test_a_starter_asking_for_zero_is_below_its_own_minimum() -> None:
    assert refused(mail(plan="starter", address_limit=1), 1, 0) == "below_plan_minimum"


def test_a_starter_asking_for_eight_is_upgraded_to_premium() -> None:
    assert (
        mail(plan="starter", address_limit=1).check_change("acc-1", 1, 8, PLANS).name == "premium"
    )


def test_a_limit_above_the_plan_maximum_is_refused() -> None:
    assert refused(mail(), 10, 10_001) == "above_plan_maximum"


def test_a_decrease_below_the_addresses_in_use_is_refused() -> None:
    assert refused(mail(addresses_in_use=7), 10, 6) == "addresses_in_use"


def test_a_decrease_to_exactly_the_addresses_in_use_is_allowed() -> None:
    assert mail(addresses_in_use=7).check_change("acc-1", 10, 7, PLANS).name == "premium"


def test_a_refusal_carries_a_sentence_for_support() -> None:
    with pytest.raises(errors.AddressesInUse, match="delete 1 before lowering the limit to 6"):
        mail(addresses_in_use=7).check_change("acc-1", 10, 6, PLANS)


def test_applying_a_change_sets_the_limit_and_plan_and_bumps_the_version() -> None:
    sm = mail(plan="starter", address_limit=1, version=3)
    event = sm.apply_change(change(expected=1, new=8), PLANS["premium"], NOW)
    assert (sm.address_limit, sm.plan, sm.version) == (8, "premium", 4)
    assert (event.previous_address_limit, event.address_limit, event.version) == (1, 8, 4)


# -- QuotaChange.receive -------------------------------------------------------
def test_a_request_for_an_unknown_service_mail_is_rejected() -> None:
    c = change()
    [event] = c.receive(None, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert isinstance(event, ChangeRejected) and event.reason == "unknown_service_mail"
    assert c.state is ChangeState.REJECTED


def test_a_second_change_while_one_awaits_payment_is_refused() -> None:
    c = change()
    [event] = c.receive(mail(), PLANS, other_change_awaiting=True, now=NOW, payment_timeout=TIMEOUT)
    assert isinstance(event, ChangeRejected) and event.reason == "change_in_progress"


def test_ownership_is_checked_before_a_change_in_progress() -> None:
    c = change(account_id="acc-2")
    [event] = c.receive(mail(), PLANS, other_change_awaiting=True, now=NOW, payment_timeout=TIMEOUT)
    assert isinstance(event, ChangeRejected) and event.reason == "not_owner"


def test_a_free_change_is_applied_at_once() -> None:
    sm = mail()
    c = change(new=8, amount=0)
    [event] = c.receive(sm, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert isinstance(event, QuotaChanged) and c.state is ChangeState.APPLIED
    assert sm.address_limit == 8


def test_a_paid_change_awaits_its_payment_until_the_timeout() -> None:
    sm = mail()
    c = change()
    [event] = c.receive(sm, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert isinstance(event, ChangeAccepted) and event.expires_at == NOW + TIMEOUT
    assert (event.address_limit, event.new_address_limit) == (10, 20)
    assert sm.address_limit == 10


def test_every_transition_is_recorded_with_its_reason() -> None:
    c = change(account_id="acc-2")
    c.receive(mail(), PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert [(t.from_state, t.to_state, t.reason) for t in c.transitions] == [
        (ChangeState.RECEIVED, ChangeState.REJECTED, "not_owner")
    ]


# -- QuotaChange.pay ------------------------------------------------------------
def test_a_matching_payment_applies_the_change_and_is_used() -> None:
    sm = mail()
    c, p = awaiting(sm), payment()
    [event] = c.pay(p, sm, PLANS, NOW)
    assert isinstance(event, QuotaChanged) and sm.address_limit == 20
    assert p.status is PaymentStatus.USED and c.payment_id == "pay-1"


@pytest.mark.parametrize(
    ("amount", "currency"), [(1400, "CHF"), (1500, "EUR")], ids=["amount", "currency"]
)
def test_a_mismatching_payment_rejects_the_change_and_is_refunded(
    amount: int, currency: str
) -> None:
    sm = mail()
    c, p = awaiting(sm), payment(amount, currency)
    rejected, refund = c.pay(p, sm, PLANS, NOW)
    assert isinstance(rejected, ChangeRejected) and rejected.reason == "payment_mismatch"
    assert isinstance(refund, RefundRequired) and refund.reason == "payment_mismatch"
    assert sm.address_limit == 10 and p.status is PaymentStatus.REFUNDED


def test_a_rule_failing_when_applying_rejects_the_change_and_refunds_the_payment() -> None:
    sm = mail(address_limit=20)
    c = awaiting(sm, expected=20, new=12, amount=100)
    sm.addresses_in_use = 15  # addresses were created while the payment was on its way
    rejected, refund = c.pay(payment(100), sm, PLANS, NOW)
    assert isinstance(rejected, ChangeRejected) and rejected.reason == "addresses_in_use"
    assert isinstance(refund, RefundRequired) and refund.reason == "change_rejected"
    assert sm.address_limit == 20


def test_a_service_mail_moved_into_a_ksuite_before_payment_is_not_changed() -> None:
    sm = mail()
    c = awaiting(sm)
    sm.ksuite_id = "ks-9"
    rejected, refund = c.pay(payment(), sm, PLANS, NOW)
    assert isinstance(rejected, ChangeRejected) and rejected.reason == "managed_by_ksuite"
    assert isinstance(refund, RefundRequired) and refund.reason == "change_rejected"


def test_a_second_payment_for_an_applied_change_is_a_duplicate() -> None:
    sm = mail()
    c = awaiting(sm)
    c.pay(payment(), sm, PLANS, NOW)
    [refund] = c.pay(payment(payment_id="pay-2"), sm, PLANS, NOW)
    assert isinstance(refund, RefundRequired) and refund.reason == "duplicate_payment"
    assert sm.version == 1


def test_a_payment_for_a_change_that_was_free_is_refunded_as_a_mismatch() -> None:
    sm = mail()
    c = change(new=8, amount=0)
    c.receive(sm, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    [refund] = c.pay(payment(), sm, PLANS, NOW)
    assert isinstance(refund, RefundRequired) and refund.reason == "payment_mismatch"


@pytest.mark.parametrize(
    ("end", "reason"),
    [("expire", "change_expired"), ("cancel", "change_cancelled"), ("reject", "change_rejected")],
)
def test_a_payment_for_an_ended_change_is_refunded_with_its_reason(end: str, reason: str) -> None:
    sm = mail()
    c = awaiting(sm)
    if end == "expire":
        c.expire(NOW + TIMEOUT)
    elif end == "cancel":
        c.cancel("cart left", NOW)
    else:
        c.reject(errors.StaleRequest("stale"), NOW)
    [refund] = c.pay(payment(), sm, PLANS, NOW)
    assert isinstance(refund, RefundRequired) and refund.reason == reason


# -- cancel, expire -------------------------------------------------------------
def test_cancelling_a_change_awaiting_payment_ends_it() -> None:
    c = awaiting(mail())
    [event] = c.cancel("cart left", NOW)
    assert c.state is ChangeState.CANCELLED and event.reason == "cart left"  # type: ignore[union-attr]


def test_cancelling_an_applied_change_changes_nothing() -> None:
    sm = mail()
    c = awaiting(sm)
    c.pay(payment(), sm, PLANS, NOW)
    assert c.cancel("too late", NOW) == [] and c.state is ChangeState.APPLIED


def test_a_change_expires_only_once_its_deadline_has_come() -> None:
    c = awaiting(mail())
    assert c.expire(NOW + TIMEOUT - timedelta(seconds=1)) == []
    assert len(c.expire(NOW + TIMEOUT)) == 1 and c.state is ChangeState.EXPIRED


def test_an_operator_may_expire_a_change_before_its_deadline() -> None:
    c = awaiting(mail())
    assert len(c.expire(NOW, operator_reason="operator: payment lost")) == 1
    assert c.transitions[-1].reason == "operator: payment lost"


def test_an_ended_change_does_not_expire_again() -> None:
    c = awaiting(mail())
    c.cancel("cart left", NOW)
    assert c.expire(NOW + TIMEOUT) == [] and c.state is ChangeState.CANCELLED


def test_a_rejected_change_cannot_be_applied() -> None:
    c = change()
    c.reject(errors.NotOwner("x"), NOW)
    with pytest.raises(IllegalTransition):
        c._move(ChangeState.APPLIED, None, NOW)


# -- payments ---------------------------------------------------------------------
def test_a_payment_is_refunded_at_most_once() -> None:
    p = payment()
    p.refund("unknown_order", None)
    with pytest.raises(IllegalTransition):
        p.refund("unknown_order", None)


def test_an_unclaimed_payment_is_due_for_refund_only_after_the_timeout() -> None:
    p = payment()
    assert not p.unmatched_past(NOW + TIMEOUT - timedelta(seconds=1), TIMEOUT)
    assert p.unmatched_past(NOW + TIMEOUT, TIMEOUT)


def test_the_same_request_is_recognised_and_another_payload_is_not() -> None:
    assert change().same_request_as(change())
    assert not change().same_request_as(change(new=21))
