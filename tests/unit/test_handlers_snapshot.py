"""`mail.addresses_snapshot` on the in-memory unit of work: A becomes the snapshot's set,
an older snapshot changes nothing, facts after it apply on top, and a snapshot before its
Service Mail's provisioning is there when it comes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import commands, errors
from tests.unit.test_handlers import World

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def snapshot(*addresses: str, at: datetime = T0, mail: str = "sm-1") -> commands.Command:
    return commands.RecordAddressesSnapshot(mail, frozenset(addresses), at)


def counted(world: World, mail: str = "sm-1") -> set[str]:
    return world.store.tables.addresses.get(mail, set())


def provisioned(world: World, mail: str) -> int:
    world.send(commands.ProvisionServiceMail(mail, "acc-1", "premium", 10, None))
    with world.bus.uow_factory() as uow:
        read = uow.repo.service_mail(mail)
    assert read is not None
    return read.addresses_in_use


def test_a_snapshot_makes_the_addresses_exactly_its_set_and_says_how_many_changed() -> None:
    world = World()
    world.send(commands.ProvisionServiceMail("sm-1", "acc-1", "premium", 10, None))
    for address in ("a@x.ch", "ghost@x.ch"):
        world.send(commands.RecordAddressCreated("sm-1", address))
    assert world.send(snapshot("a@x.ch", "b@x.ch", "c@x.ch")) == "snapshot_applied:+2 -1"
    assert counted(world) == {"a@x.ch", "b@x.ch", "c@x.ch"}


def test_a_snapshot_not_newer_than_the_last_one_applied_is_stale_and_changes_nothing() -> None:
    world = World()
    world.send(snapshot("a@x.ch", at=T0))
    assert world.send(snapshot("old@x.ch", at=T0 - timedelta(hours=1))) == "stale"
    assert world.send(snapshot("same@x.ch", at=T0)) == "stale"
    assert counted(world) == {"a@x.ch"}
    assert [m["outcome"] for m in world.store.tables.processed_messages.values()] == [
        "snapshot_applied:+1 -0", "stale", "stale",
    ]  # fmt: skip


def test_address_facts_after_a_snapshot_apply_on_top_of_it() -> None:
    world = World()
    world.send(snapshot("a@x.ch", "b@x.ch"))
    assert world.send(commands.RecordAddressCreated("sm-1", "c@x.ch")) == "counted"
    assert world.send(commands.RecordAddressDeleted("sm-1", "a@x.ch")) == "removed"
    assert counted(world) == {"b@x.ch", "c@x.ch"}


def test_a_newer_snapshot_removes_the_ghost_a_delete_before_its_create_left() -> None:
    world = World()
    world.send(commands.ProvisionServiceMail("sm-1", "acc-1", "premium", 10, None))
    assert world.send(commands.RecordAddressDeleted("sm-1", "ghost@x.ch")) == "unknown"
    assert world.send(commands.RecordAddressCreated("sm-1", "ghost@x.ch")) == "counted"
    assert world.send(snapshot("a@x.ch", at=T0 + timedelta(minutes=1))) == "snapshot_applied:+1 -1"
    assert counted(world) == {"a@x.ch"}


def test_a_snapshot_before_its_provisioning_is_the_service_mails_a_once_provisioned() -> None:
    world = World()
    assert world.send(snapshot("a@x.ch", "b@x.ch", mail="sm-new")) == "snapshot_applied:+2 -0"
    assert provisioned(world, "sm-new") == 2


def test_a_redelivered_snapshot_has_its_effect_once() -> None:
    world = World()
    world.send(snapshot("a@x.ch"), message_id="snap-1")
    world.send(commands.RecordAddressCreated("sm-1", "b@x.ch"))
    assert world.send(snapshot("a@x.ch"), message_id="snap-1") == "duplicate_delivery"
    assert counted(world) == {"a@x.ch", "b@x.ch"}


def test_a_snapshot_from_the_future_is_refused_and_later_true_ones_still_apply() -> None:
    world = World()
    world.now = T0
    with pytest.raises(errors.InvalidMessage):
        world.send(snapshot("future@x.ch", at=T0 + timedelta(days=30)))
    assert world.send(snapshot("a@x.ch", at=T0)) == "snapshot_applied:+1 -0"
    assert counted(world) == {"a@x.ch"}
