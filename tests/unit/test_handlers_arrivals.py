"""The stories of issue 16 on the in-memory unit of work: payments judged by `paid_at`
with the expiry grace, reused payment ids, provisioning that changes owner or kSuite,
requests that wait for their Service Mail, and plans that leave a limit outside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain import commands, errors
from domain.plans import PlanTable
from worker.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from worker.service.bus import MessageBus
from worker.service.handlers import Deps

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TIMEOUT, GRACE = timedelta(hours=1), timedelta(minutes=5)
DEADLINE = T0 + TIMEOUT


def _ignore(*_told: object) -> None:
    pass


class World:
    def __init__(self, plans: PlanTable | None = None) -> None:
        self.now = T0
        self.store = InMemoryStore()
        deps = Deps(
            plans or PlanTable.default(), TIMEOUT, lambda: self.now,
            expiry_grace=GRACE, provisioning_grace=GRACE,
        )  # fmt: skip
        self.bus = MessageBus(lambda: InMemoryUnitOfWork(self.store, "test", _ignore), deps)
        self.n = 0

    def send(self, cmd: commands.Command) -> str:
        self.n += 1
        return str(self.bus.handle(cmd, message_id=f"m{self.n}", task="t"))

    def provision(
        self, account: str = "acc-1", ksuite: str | None = None, plan: str = "premium"
    ) -> str:
        return self.send(commands.ProvisionServiceMail("sm-1", account, plan, 10, ksuite))

    def request(self, new: int = 20, order: str = "ord-1", expected: int = 10) -> str:
        return self.send(
            commands.RequestQuotaChange(
                f"req-{order}", order, "acc-1", "sm-1", expected, new, 1500, "CHF", T0
            )
        )

    def pay(
        self, paid_at: datetime = T0, payment_id: str = "pay-1", order: str = "ord-1",
        amount: int = 1500, currency: str = "CHF",
    ) -> str:  # fmt: skip
        return self.send(commands.ConfirmPayment(payment_id, order, amount, currency, paid_at))

    def outbox(self) -> list[str]:
        return [row["type"].removeprefix("mail.quota.") for row in self.store.tables.outbox]

    def state(self, order: str = "ord-1") -> str:
        return str(self.store.tables.quota_changes[f"req-{order}"]["state"])


@pytest.fixture
def world() -> World:
    w = World()
    assert w.provision() == "created"
    return w


# -- payment in time, by paid_at -----------------------------------------------------
def test_a_payment_in_time_delivered_within_the_grace_is_applied(world: World) -> None:
    world.request()
    world.now = DEADLINE + GRACE - timedelta(seconds=1)
    assert world.bus.sweep().expired == 0
    assert world.pay(paid_at=DEADLINE - timedelta(minutes=1)) == "applied"


def test_a_late_payment_delivered_before_the_sweep_expires_the_change(world: World) -> None:
    world.request()
    world.now = DEADLINE + timedelta(seconds=30)
    assert world.pay(paid_at=DEADLINE + timedelta(seconds=10)) == "refund:change_expired"
    assert world.state() == "expired"
    assert world.outbox() == ["change.accepted", "change.expired", "refund.required"]


def test_the_sweep_expires_the_unpaid_change_once_the_grace_has_passed(world: World) -> None:
    world.request()
    world.now = DEADLINE + GRACE
    assert world.bus.sweep().expired == 1
    assert world.pay(paid_at=DEADLINE) == "refund:change_expired"
    assert world.outbox() == ["change.accepted", "change.expired", "refund.required"]


# -- plan chains -----------------------------------------------------------------------
def test_a_starter_upgraded_through_the_chain_ends_on_the_plan_that_admits_it() -> None:
    chain = PlanTable.parse(
        {
            "starter": {"min": 1, "max": 1, "upgrades_to": "premium"},
            "premium": {"min": 5, "max": 50, "upgrades_to": "business"},
            "business": {"min": 20, "max": 1000},
        }
    )
    world = World(chain)
    world.send(commands.ProvisionServiceMail("sm-1", "acc-1", "starter", 1, None))
    assert world.request(new=100, expected=1) == "awaiting_payment"
    assert world.pay() == "applied"
    stored = world.store.tables.service_mails["sm-1"]
    assert (stored["plan"], stored["address_limit"]) == ("business", 100)


# -- reused payment ids ------------------------------------------------------------------
def test_the_same_payment_id_with_the_same_details_is_a_plain_duplicate(world: World) -> None:
    world.request()
    assert world.pay() == "applied"
    assert world.pay(paid_at=T0 + timedelta(minutes=1)) == "duplicate"  # paid_at aside


@pytest.mark.parametrize(
    "other", [{"order": "ord-2"}, {"amount": 999}, {"currency": "EUR"}], ids=str
)
def test_a_payment_id_reused_with_other_details_is_refused_and_nothing_is_written(
    world: World, other: dict[str, Any]
) -> None:
    world.request()
    world.pay()
    with pytest.raises(errors.PaymentIdConflict, match="pay-1 was received for order ord-1"):
        world.pay(**other)
    assert list(world.store.tables.payments) == ["pay-1"]
    assert world.outbox() == ["change.accepted", "changed"]


# -- provisioning while a change awaits payment -------------------------------------------
@pytest.mark.parametrize(
    ("account", "ksuite", "reason"),
    [("acc-2", None, "not_owner"), ("acc-1", "ks-1", "managed_by_ksuite")],
)
def test_a_provisioning_to_another_owner_or_a_ksuite_rejects_the_awaiting_change_at_once(
    world: World, account: str, ksuite: str | None, reason: str
) -> None:
    world.request()
    assert world.provision(account, ksuite) == "updated"
    assert world.store.tables.quota_changes["req-ord-1"]["reason"] == reason
    assert world.outbox() == ["change.accepted", "change.rejected"]
    assert world.pay() == "refund:change_rejected"


def test_a_provisioning_that_keeps_owner_and_no_ksuite_leaves_the_change_awaiting(
    world: World,
) -> None:
    world.request()
    assert world.provision(plan="premium") == "updated"
    assert world.state() == "awaiting_payment"
    assert world.pay() == "applied"


# -- requests before their Service Mail -----------------------------------------------------
def test_a_request_before_its_provisioning_waits_and_is_decided_by_it() -> None:
    world = World()
    assert world.request() == "received"
    assert world.pay() == "payment_held"
    assert world.outbox() == []
    world.now = T0 + GRACE - timedelta(seconds=1)
    assert world.provision() == "created"
    assert (world.state(), world.outbox()) == ("applied", ["change.accepted", "changed"])
    assert world.store.tables.payments["pay-1"]["status"] == "used"


def test_the_sweep_rejects_a_request_whose_mail_never_came_and_refunds_its_payment() -> None:
    world = World()
    world.request()
    world.pay()
    world.now = T0 + GRACE - timedelta(seconds=1)
    assert world.bus.sweep().decided == 0
    world.now = T0 + GRACE
    assert world.bus.sweep().decided == 1
    change = world.store.tables.quota_changes["req-ord-1"]
    assert (change["state"], change["reason"]) == ("rejected", "unknown_service_mail")
    assert world.outbox() == ["change.rejected", "refund.required"]
    assert world.store.tables.payments["pay-1"]["refund_reason"] == "change_rejected"


def test_a_provisioning_after_the_grace_rejects_the_waiting_request_as_the_sweep_would() -> None:
    world = World()
    world.request()
    world.now = T0 + GRACE
    world.provision()
    assert world.store.tables.quota_changes["req-ord-1"]["reason"] == "unknown_service_mail"


def test_a_cancel_while_the_request_waits_for_its_mail_cancels_it_once_decided() -> None:
    world = World()
    world.request()
    assert world.send(commands.CancelQuotaChange("ord-1", "cart left")) == "cancel_held"
    world.provision()
    assert world.state() == "cancelled"
    assert world.pay() == "refund:change_cancelled"


def test_two_requests_waiting_for_one_mail_are_decided_oldest_first() -> None:
    world = World()
    world.request(order="ord-1")
    world.now += timedelta(seconds=1)
    world.request(order="ord-2", new=30)
    world.provision()
    assert (world.state("ord-1"), world.state("ord-2")) == ("awaiting_payment", "rejected")
    assert world.store.tables.quota_changes["req-ord-2"]["reason"] == "change_in_progress"


def test_a_request_that_missed_its_provisioning_is_decided_by_the_next_sweep() -> None:
    """The race on PostgreSQL: the request's transaction read no Service Mail, and the
    provisioning's did not see the request yet. The sweep decides it as usual."""
    world = World()
    world.request()
    world.store.tables.service_mails["sm-1"] = {
        "id": "sm-1", "account_id": "acc-1", "plan": "premium", "address_limit": 10,
        "ksuite_id": None, "version": 0, "updated_at": T0, "outside_plan": None,
    }  # fmt: skip
    assert world.bus.sweep().decided == 1
    assert world.state() == "awaiting_payment"


def test_a_cancel_after_the_grace_finds_the_change_expired_though_no_sweep_ran(
    world: World,
) -> None:
    world.request()
    world.now = DEADLINE + GRACE
    assert world.send(commands.CancelQuotaChange("ord-1", "late")) == "ignored:expired"
    assert world.outbox() == ["change.accepted", "change.expired"]


def test_a_payment_in_time_after_the_grace_is_refunded_though_no_sweep_ran(world: World) -> None:
    world.request()
    world.now = DEADLINE + GRACE
    assert world.pay(paid_at=DEADLINE) == "refund:change_expired"
