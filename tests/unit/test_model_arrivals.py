"""The rules that decide by what happened when, whatever the order of arrival: payment
in time by `paid_at`, plan chains, provisioning that changes owner or kSuite, requests
that wait for their Service Mail. Pure domain, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain import commands
from domain.events import ChangeExpired, ChangeRejected, QuotaChanged, RefundRequired
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment
from domain.plans import PlanTable

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TIMEOUT = timedelta(hours=24)
GRACE = timedelta(minutes=5)
PLANS = PlanTable.default()


def mail(**kw: object) -> ServiceMail:
    values: dict[str, object] = {"id": "sm-1", "account_id": "acc-1", "plan": "premium"}
    values.update({"address_limit": 10, **kw})
    return ServiceMail(**values)  # type: ignore[arg-type]


def change(new: int = 20, expected: int = 10, amount: int = 1500) -> QuotaChange:
    return QuotaChange("req-1", "ord-1", "acc-1", "sm-1", expected, new, amount, "CHF", NOW)


def awaiting(sm: ServiceMail | None = None, **kw: int) -> QuotaChange:
    c = change(**kw)
    c.receive(sm or mail(), PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert c.state is ChangeState.AWAITING_PAYMENT
    return c


def paid(at: datetime, payment_id: str = "pay-1") -> Payment:
    return Payment(payment_id, "ord-1", 1500, "CHF", paid_at=at, received_at=at)


DEADLINE = NOW + TIMEOUT


# -- payment in time, by paid_at ---------------------------------------------------
def test_a_payment_made_by_the_deadline_is_applied_though_it_arrives_after_it() -> None:
    c, sm = awaiting(), mail()
    events = c.pay(paid(DEADLINE), sm, PLANS, DEADLINE + GRACE - timedelta(seconds=1), GRACE)
    assert [type(e) for e in events] == [QuotaChanged] and sm.address_limit == 20


def test_a_payment_made_after_the_deadline_expires_the_change_and_is_refunded() -> None:
    c, sm = awaiting(), mail()
    late = paid(DEADLINE + timedelta(seconds=1))
    events = c.pay(late, sm, PLANS, DEADLINE + timedelta(seconds=2))
    assert [type(e) for e in events] == [ChangeExpired, RefundRequired]
    assert (c.state, late.refund_reason, sm.address_limit) == (
        ChangeState.EXPIRED, "change_expired", 10,
    )  # fmt: skip


def test_a_late_payment_arriving_before_the_deadline_passes_is_still_late() -> None:
    """paid_at decides, even when the clock of the arrival says otherwise."""
    c = awaiting()
    [_expired, refund] = c.pay(paid(DEADLINE + timedelta(hours=1)), mail(), PLANS, NOW)
    assert isinstance(refund, RefundRequired) and refund.reason == "change_expired"


def test_the_sweep_expires_a_change_only_once_its_grace_has_passed() -> None:
    c = awaiting()
    assert c.expire(DEADLINE, grace=GRACE) == []
    assert c.expire(DEADLINE + GRACE - timedelta(microseconds=1), grace=GRACE) == []
    assert [type(e) for e in c.expire(DEADLINE + GRACE, grace=GRACE)] == [ChangeExpired]


def test_a_payment_in_time_after_the_expiry_is_refunded_change_expired() -> None:
    c = awaiting()
    c.expire(DEADLINE + GRACE, grace=GRACE)
    [refund] = c.pay(paid(DEADLINE), mail(), PLANS, DEADLINE + GRACE)
    assert isinstance(refund, RefundRequired) and refund.reason == "change_expired"


# -- plan chains ---------------------------------------------------------------------
CHAIN = PlanTable.parse(
    {
        "starter": {"min": 1, "max": 1, "upgrades_to": "premium"},
        "premium": {"min": 5, "max": 50, "upgrades_to": "business"},
        "business": {"min": 20, "max": 1000},
    }
)


def test_an_upgrade_follows_the_chain_until_a_plan_admits_the_new_limit() -> None:
    assert [CHAIN.target_for("starter", n).name for n in (1, 8, 50, 51, 100)] == [
        "starter", "premium", "premium", "business", "business",
    ]  # fmt: skip
    assert CHAIN.target_for("premium", 100).name == "business"


def test_a_limit_above_the_end_of_the_chain_is_checked_against_its_last_plan() -> None:
    assert CHAIN.target_for("starter", 5000).name == "business"
    sm = mail(plan="starter", address_limit=1)
    c = change(new=5000, expected=1)
    [rejected] = c.receive(sm, CHAIN, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert (c.state, c.reason) == (ChangeState.REJECTED, "above_plan_maximum")
    assert "business" in rejected.detail  # type: ignore[union-attr]


def test_a_starter_asking_for_100_ends_on_business_once_paid() -> None:
    sm = mail(plan="starter", address_limit=1)
    c = change(new=100, expected=1)
    c.receive(sm, CHAIN, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    [changed] = c.pay(paid(NOW), sm, CHAIN, NOW)
    assert isinstance(changed, QuotaChanged)
    assert (changed.plan, sm.plan, sm.address_limit) == ("business", "business", 100)


def test_a_move_within_the_chain_is_checked_against_the_target_plans_minimum() -> None:
    """premium -> business admits 51..1000; the business minimum (20) is below 51, so a
    lower limit stays on premium and is checked there."""
    sm = mail(plan="premium", address_limit=30)
    c = change(new=8, expected=30, amount=0)
    [changed] = c.receive(sm, CHAIN, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert isinstance(changed, QuotaChanged) and sm.plan == "premium"


# -- provisioning while a change awaits payment -----------------------------------------------
def test_an_awaiting_change_is_refused_when_its_mail_gets_another_owner() -> None:
    c = awaiting()
    [rejected] = c.recheck_owner(mail(account_id="acc-2"), NOW)
    assert (c.state, c.reason) == (ChangeState.REJECTED, "not_owner")
    assert isinstance(rejected, ChangeRejected)


def test_an_awaiting_change_is_refused_when_its_mail_joins_a_ksuite() -> None:
    c = awaiting()
    c.recheck_owner(mail(ksuite_id="ks-1"), NOW)
    assert c.reason == "managed_by_ksuite"


def test_a_recheck_leaves_an_unchanged_owner_and_a_decided_change_alone() -> None:
    c = awaiting()
    assert c.recheck_owner(mail(), NOW) == [] and c.state is ChangeState.AWAITING_PAYMENT
    c.expire(NOW + TIMEOUT)
    assert c.recheck_owner(mail(account_id="acc-2"), NOW) == []


# -- requests before their Service Mail ---------------------------------------------------------
def test_a_request_without_its_mail_waits_in_received_until_the_end_of_its_grace() -> None:
    c = change()
    kw = {"other_change_awaiting": False, "payment_timeout": TIMEOUT, "provisioning_grace": GRACE}
    assert c.receive(None, PLANS, now=NOW, **kw) == []  # type: ignore[arg-type]
    assert (c.state, c.expires_at) == (ChangeState.RECEIVED, NOW + GRACE)
    assert c.receive(None, PLANS, now=NOW + GRACE - timedelta(seconds=1), **kw) == []  # type: ignore[arg-type]
    [_rejected] = c.receive(None, PLANS, now=NOW + GRACE, **kw)  # type: ignore[arg-type]
    assert (c.state, c.reason, c.expires_at) == (ChangeState.REJECTED, "unknown_service_mail", None)


def test_a_waiting_request_holds_its_payments_and_its_cancel() -> None:
    c = change()
    c.receive(
        None, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT,
        provisioning_grace=GRACE,
    )  # fmt: skip
    p = paid(NOW)
    assert c.pay(p, None, PLANS, NOW) == [] and p.refund_reason is None
    assert c.catch_up("cart left", [p], None, PLANS, NOW) == []
    assert c.state is ChangeState.RECEIVED


def test_a_waiting_request_is_decided_when_its_mail_is_provisioned_within_the_grace() -> None:
    c, sm = change(), mail()
    c.receive(
        None, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT,
        provisioning_grace=GRACE,
    )  # fmt: skip
    later = NOW + GRACE - timedelta(seconds=1)
    c.provisioned(sm, PLANS, other_change_awaiting=False, now=later, payment_timeout=TIMEOUT)
    assert (c.state, c.expires_at) == (ChangeState.AWAITING_PAYMENT, later + TIMEOUT)


# -- provisioning outside the plan's bounds ----------------------------------------------------
def test_a_provisioning_to_a_plan_whose_bounds_exclude_the_limit_is_recorded_not_changed() -> None:
    sm = mail(address_limit=60)
    again = commands.ProvisionServiceMail("sm-1", "acc-1", "premium", 60, None)
    sm.provision_again(again, CHAIN)
    assert (sm.address_limit, sm.outside_plan) == (60, "limit 60 is above the premium maximum 50")
    sm.provision_again(replace(again, plan="business"), CHAIN)
    assert sm.outside_plan is None


def test_a_new_mail_below_its_plans_minimum_is_recorded_and_a_change_clears_it() -> None:
    cmd = commands.ProvisionServiceMail("sm-1", "acc-1", "business", 10, None)
    sm = ServiceMail.provisioned(cmd, CHAIN)
    assert sm.outside_plan == "limit 10 is below the business minimum 20"
    c = change(new=30, expected=10, amount=0)
    c.receive(sm, CHAIN, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT)
    assert (sm.address_limit, sm.outside_plan) == (30, None)


# -- past the expiry's grace, whatever reaches the change first expires it ----------------
def test_a_payment_in_time_arriving_once_the_grace_has_passed_expires_the_change() -> None:
    c = awaiting()
    [expired, refund] = c.pay(paid(DEADLINE), mail(), PLANS, DEADLINE + GRACE, GRACE)
    assert isinstance(expired, ChangeExpired) and refund.reason == "change_expired"  # type: ignore[union-attr]


def test_a_cancel_or_a_provisioning_past_the_grace_expires_the_change_as_the_sweep_would() -> None:
    c = awaiting()
    assert [type(e) for e in c.cancel("cart left", DEADLINE + GRACE, GRACE)] == [ChangeExpired]
    other = awaiting()
    assert [
        type(e) for e in other.recheck_owner(mail(account_id="acc-2"), DEADLINE + GRACE, GRACE)
    ] == [ChangeExpired]
    assert (c.state, other.state) == (ChangeState.EXPIRED, ChangeState.EXPIRED)


def test_a_waiting_request_refused_once_its_mail_comes_keeps_no_deadline() -> None:
    c = change()
    c.receive(
        None, PLANS, other_change_awaiting=False, now=NOW, payment_timeout=TIMEOUT,
        provisioning_grace=GRACE,
    )  # fmt: skip
    c.provisioned(mail(account_id="acc-2"), PLANS, other_change_awaiting=False, now=NOW,
                  payment_timeout=TIMEOUT)  # fmt: skip
    assert (c.state, c.reason, c.expires_at) == (ChangeState.REJECTED, "not_owner", None)
