"""The handlers and the bus on the in-memory unit of work: every story, no I/O.

The same stories run against the database in tests/integration/test_unit_of_work.py;
the in-memory store is held to the database's behaviour by
tests/integration/test_repository_contract.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import commands
from domain.events import DomainEvent
from domain.payment import Payment
from domain.plans import PlanTable
from worker.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from worker.service.bus import MessageBus
from worker.service.handlers import Deps
from worker.service.outcomes import Kind, Outcome

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class World:
    def __init__(self) -> None:
        self.now = T0
        self.store = InMemoryStore()
        self.told: list[tuple[list[DomainEvent], list[Payment]]] = []
        self.bus = MessageBus(
            lambda: InMemoryUnitOfWork(self.store, "test", lambda e, u: self.told.append((e, u))),
            Deps(PlanTable.default(), timedelta(hours=1), lambda: self.now),
        )
        self.n = 0

    def send(self, cmd: commands.Command, message_id: str | None = None) -> str:
        self.n += 1
        return str(self.bus.handle(cmd, message_id=message_id or f"m{self.n}", task="t"))

    def request(self, new: int = 20, amount: int = 1500, **kw: str) -> commands.RequestQuotaChange:
        values = {"request_id": "req-1", "order_id": "ord-1", **kw}
        return commands.RequestQuotaChange(
            values["request_id"], values["order_id"], "acc-1", "sm-1", 10, new, amount, "CHF", T0
        )

    def payment(self, payment_id: str = "pay-1", amount: int = 1500) -> commands.ConfirmPayment:
        return commands.ConfirmPayment(payment_id, "ord-1", amount, "CHF", T0)

    def outbox(self) -> list[str]:
        return [row["type"].removeprefix("mail.quota.") for row in self.store.tables.outbox]


@pytest.fixture
def world() -> World:
    w = World()
    assert w.send(commands.ProvisionServiceMail("sm-1", "acc-1", "premium", 10, None)) == "created"
    return w


def test_a_paid_raise_waits_for_its_payment_then_applies_with_history(world: World) -> None:
    assert world.send(world.request()) == "awaiting_payment"
    assert world.send(world.payment()) == "applied"
    mail = world.store.tables.service_mails["sm-1"]
    assert (mail["address_limit"], mail["version"]) == (20, 1)
    history = world.store.tables.limit_history
    assert [(h["previous_address_limit"], h["address_limit"]) for h in history] == [(10, 20)]
    assert world.outbox() == ["change.accepted", "changed"]
    assert [p.payment_id for _e, used in world.told for p in used] == ["pay-1"]


def test_a_payment_before_its_request_is_held_then_used(world: World) -> None:
    assert world.send(world.payment()) == "payment_held"
    assert world.send(world.request()) == "applied"
    assert world.store.tables.payments["pay-1"]["status"] == "used"
    assert world.outbox() == ["change.accepted", "changed"]


def test_a_cancel_before_its_request_cancels_it_on_arrival(world: World) -> None:
    assert world.send(commands.CancelQuotaChange("ord-1", "customer")) == "cancel_held"
    assert world.send(world.request()) == "cancelled"
    assert world.outbox() == ["change.accepted", "change.cancelled"]
    assert world.send(commands.CancelQuotaChange("ord-1", "again")) == "ignored:cancelled"


def test_the_same_request_again_is_a_duplicate_and_a_reused_id_a_conflict(world: World) -> None:
    world.send(world.request())
    assert world.send(world.request()) == "duplicate"
    assert world.send(world.request(new=30)) == "rejected:idempotency_conflict"
    assert world.send(world.request(request_id="req-2")) == "rejected:idempotency_conflict"
    assert list(world.store.tables.quota_changes) == ["req-1"]  # the refused are not stored
    assert world.outbox() == ["change.accepted", "change.rejected", "change.rejected"]


def test_a_redelivered_message_id_has_no_second_effect(world: World) -> None:
    assert world.send(world.request(), message_id="same") == "awaiting_payment"
    assert world.send(world.payment(), message_id="same") == "duplicate_delivery"
    assert world.store.tables.quota_changes["req-1"]["state"] == "awaiting_payment"
    assert world.outbox() == ["change.accepted"]


def test_a_second_payment_is_refunded_and_the_wrong_amount_rejects(world: World) -> None:
    world.send(world.request())
    assert world.send(world.payment(amount=999)) == "refund:payment_mismatch"
    assert world.store.tables.quota_changes["req-1"]["reason"] == "payment_mismatch"
    assert world.send(world.payment("pay-2")) == "refund:change_rejected"
    assert world.send(world.payment("pay-2")) == "duplicate"


def test_the_sweep_expires_the_unpaid_and_refunds_the_unclaimed(world: World) -> None:
    world.send(world.request())
    world.send(commands.ConfirmPayment("pay-x", "ord-nobody", 100, "CHF", T0))
    world.now = T0 + timedelta(minutes=59)
    assert world.bus.sweep() == type(world.bus.sweep())(0, 0)
    world.now = T0 + timedelta(hours=1)
    result = world.bus.sweep()
    assert (result.expired, result.refunded) == (1, 1)
    assert world.outbox() == ["change.accepted", "change.expired", "refund.required"]
    assert world.send(world.payment()) == "refund:change_expired"


def test_addresses_count_once_and_a_decrease_below_them_is_refused(world: World) -> None:
    created = [world.send(commands.RecordAddressCreated("sm-1", a)) for a in "aab"]
    assert created == ["counted", "known", "counted"]
    assert world.send(world.request(new=1, amount=0)) == "rejected:below_plan_minimum"
    assert world.send(commands.RecordAddressDeleted("sm-1", "b")) == "removed"
    assert world.send(commands.RecordAddressDeleted("sm-1", "b")) == "unknown"


def test_provisioning_again_changes_the_owner_but_never_the_limit(world: World) -> None:
    again = commands.ProvisionServiceMail("sm-1", "acc-2", "premium", 99, "ks-1")
    assert world.send(again) == "updated"
    mail = world.store.tables.service_mails["sm-1"]
    assert (mail["account_id"], mail["ksuite_id"], mail["address_limit"]) == ("acc-2", "ks-1", 10)


def test_an_invalid_request_is_dead_lettered_with_its_rejection(world: World) -> None:
    rejection = commands.RejectInvalidMessage("req-9", "ord-9", "sm-1", "bad amount")
    outcome = world.bus.dead_letter(
        message_id="m-bad", task="quota.request_change", body="{}", error="invalid_message: x",
        rejection=rejection,
    )  # fmt: skip
    assert outcome == Outcome(Kind.DEAD_LETTER)
    assert [d["message_id"] for d in world.store.tables.dead_letters] == ["m-bad"]
    assert world.outbox() == ["change.rejected"]
    again = world.bus.dead_letter(message_id="m-bad", task="t", body="{}", error="again")
    assert again == Outcome(Kind.DUPLICATE_DELIVERY)


def test_an_outcome_is_a_value_that_fits_its_column() -> None:
    assert str(Outcome(Kind.REJECTED, "not_owner")) == "rejected:not_owner"
    assert Outcome(Kind.REJECTED, "not_owner").kind is Kind.REJECTED
    with pytest.raises(ValueError, match="longer than 40"):
        Outcome(Kind.REJECTED, "x" * 40)
