"""One contract, two stores: the in-memory unit of work that the unit tests use behaves
as the database's does (SQLite, or PostgreSQL in CI) in everything the handlers rely on.

Each test runs once per store; the database is shared with other tests, so every id is
new and every read is of this test's own rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from domain import commands, errors
from domain.events import DomainEvent
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment, PaymentStatus
from domain.plans import PlanTable
from tests.helpers import new_id
from worker.adapters import tables as t
from worker.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from worker.bootstrap import Container
from worker.service.uow import SqlUnitOfWork, UnitOfWork

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PLANS = PlanTable.default()


@dataclass
class Store:
    """A store under test: new units of work on it, what they told, what they wrote."""

    new_uow: Callable[[], UnitOfWork]
    outbox_types: Callable[[str], list[str]]
    told: list[tuple[list[DomainEvent], list[Payment]]] = field(default_factory=list)


@pytest.fixture(params=["memory", "database"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    told: list[tuple[list[DomainEvent], list[Payment]]] = []

    def on_committed(events: list[DomainEvent], used: list[Payment]) -> None:
        told.append((events, used))

    if request.param == "memory":
        memory = InMemoryStore()
        yield Store(
            lambda: InMemoryUnitOfWork(memory, "test", on_committed),
            lambda order: [r["type"] for r in memory.tables.outbox if r["order_id"] == order],
            told,
        )
        return
    app: Container = request.getfixturevalue("app")

    def outbox_types(order: str) -> list[str]:
        query = select(t.outbox.c.type).where(t.outbox.c.order_id == order).order_by(t.outbox.c.id)
        with app.database.engine.connect() as conn:
            return list(conn.scalars(query))

    yield Store(lambda: SqlUnitOfWork(app.database, "test", on_committed), outbox_types, told)


def _mail(store: Store, limit: int = 10) -> ServiceMail:
    mail = ServiceMail(new_id("sm"), new_id("acc"), "premium", limit)
    with store.new_uow() as uow:
        assert uow.repo.add_service_mail_if_absent(mail, NOW)
        uow.commit(NOW)
    return mail


def _request(mail: ServiceMail, new: int = 20, amount: int = 1500) -> QuotaChange:
    return QuotaChange.requested(
        commands.RequestQuotaChange(
            new_id("req"), new_id("ord"), mail.account_id, mail.id, mail.address_limit, new,
            amount, "CHF", NOW,
        )
    )  # fmt: skip


def _received(store: Store, mail: ServiceMail, new: int = 20, expires: int = 3600) -> QuotaChange:
    change = _request(mail, new)
    with store.new_uow() as uow:
        facts = uow.repo.request_facts(change)
        uow.emit(
            change.receive(
                facts.mail, PLANS, other_change_awaiting=False, now=NOW,
                payment_timeout=timedelta(seconds=expires),
            )
        )  # fmt: skip
        uow.repo.add(change)
        assert uow.commit(NOW)
    return change


def _pay(store: Store, order_id: str, received_at: datetime, amount: int = 1500) -> Payment:
    payment = Payment(new_id("pay"), order_id, amount, "CHF", NOW, received_at)
    with store.new_uow() as uow:
        uow.repo.add(payment)
        uow.commit(NOW)
    return payment


def test_a_change_added_is_read_back_as_it_was_decided(store: Store) -> None:
    mail = _mail(store)
    change = _received(store, mail)
    with store.new_uow() as uow:
        again = uow.repo.change_of_order(change.order_id)
    assert again is not None
    assert (again.state, again.expires_at, again.wire_fields()) == (
        ChangeState.AWAITING_PAYMENT, NOW + timedelta(hours=1), change.wire_fields(),
    )  # fmt: skip
    assert again.transitions == []  # saved with the change, not handed back
    assert store.outbox_types(change.order_id) == ["mail.quota.change.accepted"]


def test_nothing_is_kept_without_the_commit(store: Store) -> None:
    mail = _mail(store)
    change = _request(mail)
    with store.new_uow() as uow:
        uow.repo.request_facts(change)
        uow.repo.add(change)
        uow.repo.hold_early_cancel(change.order_id, "customer", NOW)
        uow.emit([change.reject(errors.NoChange("test"), NOW)])
    with store.new_uow() as uow:
        assert uow.repo.change_of_order(change.order_id) is None
        assert uow.repo.request_facts(change).early_cancel is None
    assert store.told == [] and store.outbox_types(change.order_id) == []


def test_a_message_id_commits_once_and_the_second_writes_nothing(store: Store) -> None:
    mail, message = _mail(store), new_id("msg")
    first, second = _request(mail), _request(mail)
    for change, committed in ((first, True), (second, False)):
        with store.new_uow() as uow:
            uow.repo.request_facts(change)
            uow.repo.add(change)
            uow.emit([change.reject(errors.NoChange("test"), NOW)])
            assert uow.commit(NOW, message_id=message, task="t", outcome="o") is committed
    with store.new_uow() as uow:
        assert uow.repo.is_processed(message)
        assert uow.repo.change_of_order(second.order_id) is None
    assert [len(events) for events, _used in store.told] == [1]
    assert store.outbox_types(second.order_id) == []


def test_events_are_told_after_the_commit_with_the_payments_it_used(store: Store) -> None:
    mail = _mail(store)
    change = _received(store, mail)
    store.told.clear()
    payment = Payment(new_id("pay"), change.order_id, 1500, "CHF", NOW, NOW)
    with store.new_uow() as uow:
        facts = uow.repo.payment_facts(payment.payment_id, change.order_id)
        assert facts.change is not None and facts.mail is not None
        uow.repo.add(payment)
        uow.emit(facts.change.pay(payment, facts.mail, PLANS, NOW))
        assert store.told == []
        uow.commit(NOW)
        assert store.told == []  # told once the transaction is over
    [(events, used)] = store.told
    assert [type(e).__name__ for e in events] == ["QuotaChanged"]
    assert [p.payment_id for p in used] == [payment.payment_id]
    with store.new_uow() as uow:
        again = uow.repo.service_mail(mail.id)
        assert again is not None and (again.address_limit, again.version) == (20, 1)
        assert uow.repo.change_of_order(change.order_id).state is ChangeState.APPLIED  # type: ignore[union-attr]


def test_an_aggregate_read_twice_is_the_same_object_and_unchanged_is_not_written(
    store: Store,
) -> None:
    mail = _mail(store)
    change = _received(store, mail)
    with store.new_uow() as uow:
        first = uow.repo.change_of_order(change.order_id)
        assert uow.repo.change_of_order(change.order_id) is first
        read = uow.repo.service_mail(mail.id)
        assert uow.repo.save_changed(None, NOW) == []
        assert read is not None
        read.account_id = new_id("acc")
        assert uow.repo.save_changed(None, NOW) == [read]
        assert uow.repo.save_changed(None, NOW) == []  # written once


def test_held_payments_come_pending_and_oldest_first(store: Store) -> None:
    mail = _mail(store)
    change = _request(mail)
    later = _pay(store, change.order_id, NOW + timedelta(minutes=2))
    earlier = _pay(store, change.order_id, NOW + timedelta(minutes=1))
    refunded = _pay(store, change.order_id, NOW)
    with store.new_uow() as uow:
        payment = uow.repo.payment(refunded.payment_id, change.order_id)
        assert payment is not None
        uow.emit([payment.refund("unknown_order", None)])
        uow.commit(NOW)
    with store.new_uow() as uow:
        facts = uow.repo.request_facts(change)
    assert [p.payment_id for p in facts.held_payments] == [earlier.payment_id, later.payment_id]
    assert {p.status for p in facts.held_payments} == {PaymentStatus.PENDING}


def test_an_early_cancel_keeps_the_first_reason(store: Store) -> None:
    change = _request(_mail(store))
    for reason in ("customer", "fraud"):
        with store.new_uow() as uow:
            uow.repo.hold_early_cancel(change.order_id, reason, NOW)
            uow.commit(NOW)
    with store.new_uow() as uow:
        assert uow.repo.request_facts(change).early_cancel == "customer"


def test_addresses_are_counted_once_and_removed_once(store: Store) -> None:
    mail = _mail(store)
    with store.new_uow() as uow:
        assert [uow.repo.add_address(mail.id, a, NOW) for a in ("a@x.ch", "a@x.ch", "b@x.ch")] == [
            True, False, True,
        ]  # fmt: skip
        assert uow.repo.delete_address(mail.id, "b@x.ch")
        assert not uow.repo.delete_address(mail.id, "b@x.ch")
        uow.commit(NOW)
    with store.new_uow() as uow:
        again = uow.repo.service_mail(mail.id)
    assert again is not None and again.addresses_in_use == 1
    with store.new_uow() as uow:
        assert not uow.repo.add_service_mail_if_absent(mail, NOW)


def test_the_sweep_finds_due_changes_and_unmatched_payments_oldest_first(store: Store) -> None:
    mail = _mail(store)
    late = _received(store, _mail(store), expires=-60)
    early = _received(store, mail, expires=-120)
    not_yet = _received(store, _mail(store), expires=3600)
    unmatched = [_pay(store, new_id("ord"), NOW - timedelta(minutes=m)) for m in (1, 2)]
    with store.new_uow() as uow:
        due = [o for _r, o in uow.repo.due_changes(NOW, 100_000)]
        pending = [p for p, _o in uow.repo.unmatched_payments(NOW, 100_000)]
        assert len(uow.repo.due_changes(NOW, 1)) == 1
    mine = [o for o in due if o in {late.order_id, early.order_id, not_yet.order_id}]
    assert mine == [early.order_id, late.order_id]
    ids = [p.payment_id for p in reversed(unmatched)]
    assert [p for p in pending if p in ids] == ids
    with store.new_uow() as uow:  # leave nothing due for the other tests
        for order in (late.order_id, early.order_id):
            uow.emit(uow.repo.change_of_order(order).expire(NOW))  # type: ignore[union-attr]
        for p in unmatched:
            uow.emit([uow.repo.payment(p.payment_id, p.order_id).refund("unknown_order", None)])  # type: ignore[union-attr]
        uow.commit(NOW)
