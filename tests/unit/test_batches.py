"""A batch on the in-memory unit of work: the same outcomes and the same stored state as
its messages one by one, each message recorded as its own; any failure writes nothing.
The same on a real database: tests/integration/test_batches.py."""

from __future__ import annotations

from typing import Any

import pytest

from domain import commands, errors
from tests.unit.test_handlers import World
from worker.adapters.memory import InMemoryRepository
from worker.service.bus import Inbound, Redelivered


def _setup(world: World) -> None:
    for mail in ("sm-1", "sm-2"):
        cmd = commands.ProvisionServiceMail(mail, "acc-1", "premium", 10, None)
        assert world.send(cmd, message_id=f"prov-{mail}") == "created"


def _messages(world: World) -> list[Inbound]:
    """A mixed stretch: two orders' requests and payments, an address, a cancel, the same
    order twice in one batch (request then payment)."""
    other = commands.RequestQuotaChange(
        "req-2", "ord-2", "acc-1", "sm-2", 10, 30, 3000, "CHF", world.now
    )
    cmds: list[Any] = [
        world.request(),
        world.payment(),
        commands.RecordAddressCreated("sm-2", "a@x.ch"),
        other,
        commands.CancelQuotaChange("ord-2", "customer_cancelled"),
        commands.RecordAddressCreated("sm-2", "a@x.ch"),
    ]
    return [Inbound(c, f"m{i}", type(c).__name__) for i, c in enumerate(cmds)]


def _stored(world: World) -> dict[str, Any]:
    t = world.store.tables
    return {
        "mails": t.service_mails,
        "changes": t.quota_changes,
        "transitions": t.transitions,
        "payments": t.payments,
        "processed": t.processed_messages,
        "outbox": [(r["type"], r["subject"]) for r in t.outbox],
        "history": t.limit_history,
        "addresses": t.addresses,
    }


def test_a_batch_stores_and_answers_exactly_what_its_messages_one_by_one_do() -> None:
    alone, batched = World(), World()
    _setup(alone)
    _setup(batched)
    one_by_one = [
        str(alone.bus.handle(m.command, message_id=m.message_id, task=m.task))
        for m in _messages(alone)
    ]
    messages = _messages(batched)
    outcomes = batched.bus.handle_batch(messages[:4]) + batched.bus.handle_batch(messages[4:])
    assert [str(o) for o in outcomes] == one_by_one
    assert one_by_one[:4] == ["awaiting_payment", "applied", "counted", "awaiting_payment"]
    assert _stored(batched) == _stored(alone)
    # each transition names the message that caused it, not the batch's last
    caused = {
        (r["request_id"], r["to_state"]): r["message_id"] for r in alone.store.tables.transitions
    }
    assert caused[("req-1", "applied")] == "m1" and caused[("req-2", "cancelled")] == "m4"
    # the subscribers hear every event and every payment used, after the commit
    assert [p.payment_id for _e, used in batched.told for p in used] == ["pay-1"]


def test_a_message_processed_already_is_skipped_and_answered_as_a_duplicate() -> None:
    world = World()
    _setup(world)
    first = _messages(world)[:1]
    assert [str(o) for o in world.bus.handle_batch(first)] == ["awaiting_payment"]
    again = world.bus.handle_batch([*first, _messages(world)[2]])
    assert [str(o) for o in again] == ["duplicate_delivery", "counted"]
    assert len(world.store.tables.quota_changes) == 1


def test_a_failing_message_fails_the_whole_batch_and_nothing_of_it_is_written() -> None:
    world = World()
    _setup(world)
    before, told = repr(_stored(world)), len(world.told)
    poison = Inbound(commands.ProvisionServiceMail("sm-9", "acc-1", "nope", 1, None), "mp", "t")
    with pytest.raises(errors.InvalidMessage):
        world.bus.handle_batch([*_messages(world)[:2], poison])
    assert repr(_stored(world)) == before
    assert len(world.told) == told  # nothing published of it


def test_a_batch_holds_each_message_once() -> None:
    world = World()
    _setup(world)
    message = _messages(world)[0]
    with pytest.raises(ValueError, match="once"):
        world.bus.handle_batch([message, message])


def test_a_batch_that_loses_to_a_concurrent_redelivery_is_raised_for_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    _setup(world)
    # The redelivery of m1 commits after the batch read the processed ids (none), before
    # the batch's commit.
    monkeypatch.setattr(InMemoryRepository, "processed_among", lambda self, ids: set())
    world.store.tables.processed_messages["m1"] = {"task": "t", "outcome": "applied"}
    with pytest.raises(Redelivered):
        world.bus.handle_batch(_messages(world)[:2])
    assert world.store.tables.quota_changes == {}
