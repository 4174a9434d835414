"""The tasks' decisions without a broker: what a failure becomes, and what one message
logs and stores, on the in-memory unit of work.

`handle_inbound` is given a stand-in for the Celery task it runs as (its name, its
request's id and retry count, and `retry`); the real worker runs the same code in
tests/e2e.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from celery import Task
from celery.exceptions import Reject, Retry
from sqlalchemy.exc import OperationalError, ProgrammingError
from structlog.testing import capture_logs

from domain.plans import PlanTable
from worker.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from worker.entrypoints import tasks
from worker.entrypoints.app import MAX_RETRY_COUNTDOWN
from worker.entrypoints.tasks import DeadLetter, RetryLater, after_failure, handle_inbound
from worker.service.bus import MessageBus
from worker.service.handlers import Deps

_LOST = OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def _no_jitter(low: float, high: float) -> float:
    return 1.0


def test_a_transient_error_is_retried_with_a_doubling_capped_countdown() -> None:
    countdowns = [after_failure(_LOST, n, _no_jitter) for n in range(tasks.MAX_RETRIES)]
    assert countdowns[:4] == [RetryLater(0.5), RetryLater(1.0), RetryLater(2.0), RetryLater(4.0)]
    assert countdowns[-1] == RetryLater(MAX_RETRY_COUNTDOWN)


def test_the_jitter_stays_within_a_fifth_either_side() -> None:
    assert after_failure(_LOST, 0, lambda low, high: low) == RetryLater(0.4)
    assert after_failure(_LOST, 0, lambda low, high: high) == RetryLater(0.6)


def test_a_transient_error_past_the_last_retry_becomes_a_dead_letter() -> None:
    decision = after_failure(_LOST, tasks.MAX_RETRIES)
    assert isinstance(decision, DeadLetter)
    assert decision.error.startswith(f"gave up after {tasks.MAX_RETRIES} retries:")


@pytest.mark.parametrize(
    "exc",
    [ProgrammingError("SELECT", {}, Exception("no such column")), KeyError("plan"), ValueError()],
)
def test_any_other_error_is_a_bug_kept_at_once_never_retried(exc: Exception) -> None:
    decision = after_failure(exc, 0)
    assert isinstance(decision, DeadLetter)
    assert decision.error.startswith(f"unexpected {type(exc).__name__}")


class StandIn:
    """What handle_inbound uses of a Celery task."""

    def __init__(self, name: str, message_id: str, retries: int = 0) -> None:
        self.name = name
        self.request = SimpleNamespace(id=message_id, retries=retries)
        self.retried: list[dict[str, Any]] = []

    def retry(self, **options: Any) -> Retry:
        self.retried.append(options)
        return Retry()


class Broken:
    """A bus whose database is away for `handle` (and, if asked, for dead letters too)."""

    def __init__(self, bus: MessageBus, dead_letters_too: bool = False) -> None:
        self.bus, self.dead_letters_too = bus, dead_letters_too

    def handle(self, *args: Any, **kwargs: Any) -> Any:
        raise _LOST

    def dead_letter(self, **kwargs: Any) -> Any:
        if self.dead_letters_too:
            raise _LOST
        return self.bus.dead_letter(**kwargs)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def bus(store: InMemoryStore) -> MessageBus:
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    return MessageBus(
        lambda: InMemoryUnitOfWork(store, "test", lambda e, u: None),
        Deps(PlanTable.default(), timedelta(hours=1), lambda: now),
    )


def _run(task: StandIn, kwargs: dict[str, Any], bus: Any) -> str:
    return handle_inbound(cast(Task, task), (), kwargs, cast(MessageBus, bus))


PROVISION = {
    "schema_version": 1, "service_mail_id": "sm-1", "account_id": "acc-1", "plan": "premium",
    "address_limit": 10, "ksuite_id": None,
}  # fmt: skip


def test_a_message_logs_message_processed_with_its_outcome_and_ids(
    bus: MessageBus, store: InMemoryStore
) -> None:
    with capture_logs() as logs:
        assert _run(StandIn("mail.service_provisioned", "m-1"), PROVISION, bus) == "created"
    [line] = [entry for entry in logs if entry["event"] == "message_processed"]
    assert line["outcome"] == "created" and line["log_level"] == "info"
    assert store.tables.processed_messages["m-1"]["outcome"] == "created"


def test_an_invalid_payload_is_a_dead_letter_with_the_reason(
    bus: MessageBus, store: InMemoryStore
) -> None:
    with capture_logs() as logs:
        outcome = _run(
            StandIn("mail.service_provisioned", "m-2"), {"schema_version": 1, "plan": "x"}, bus
        )
    assert outcome == "dead_letter"
    [letter] = store.tables.dead_letters
    assert letter["error"].startswith("invalid_message: service_mail_id: Field required")
    assert [e["outcome"] for e in logs if e["event"] == "message_processed"] == ["dead_letter"]


def test_a_transient_error_retries_onto_the_retry_queue(bus: MessageBus) -> None:
    task = StandIn("mail.service_provisioned", "m-3", retries=2)
    with pytest.raises(Retry):
        _run(task, PROVISION, Broken(bus))
    [options] = task.retried
    assert options["queue"] == "quota.retry" and options["max_retries"] == tasks.MAX_RETRIES
    assert 1.6 <= options["countdown"] <= 2.4


def test_the_last_retry_keeps_the_message_as_a_dead_letter(
    bus: MessageBus, store: InMemoryStore
) -> None:
    task = StandIn("mail.service_provisioned", "m-4", retries=tasks.MAX_RETRIES)
    assert _run(task, PROVISION, Broken(bus)) == "dead_letter"
    assert store.tables.dead_letters[0]["error"].startswith("gave up after 8 retries")
    assert task.retried == []


def test_a_message_whose_dead_letter_cannot_be_written_goes_back_to_its_queue(
    bus: MessageBus,
) -> None:
    task = StandIn("mail.service_provisioned", "m-5", retries=tasks.MAX_RETRIES)
    with pytest.raises(Reject) as rejected:
        _run(task, PROVISION, Broken(bus, dead_letters_too=True))
    assert rejected.value.requeue is True


def _payment(order_id: str, amount: int) -> dict[str, Any]:
    return {
        "schema_version": 1, "payment_id": "pay-1", "order_id": order_id, "amount": amount,
        "currency": "CHF", "paid_at": "2026-11-24T09:00:00+00:00",
    }  # fmt: skip


def test_a_payment_id_reused_for_another_order_is_kept_as_a_dead_letter(
    bus: MessageBus, store: InMemoryStore
) -> None:
    task = StandIn("quota.payment_confirmed", "m-p1")
    assert _run(task, _payment("ord-1", 1500), bus) == "payment_held"
    again = StandIn("quota.payment_confirmed", "m-p2")
    assert _run(again, _payment("ord-2", 1500), bus) == "dead_letter"
    [letter] = store.tables.dead_letters
    assert letter["message_id"] == "m-p2"
    assert letter["error"].startswith("idempotency_conflict: payment pay-1 was received")
    assert store.tables.processed_messages["m-p2"]["outcome"] == "dead_letter"
    assert list(store.tables.payments) == ["pay-1"] and store.tables.outbox == []
