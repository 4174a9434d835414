"""The repository contract, continued: address snapshots (`mail.addresses_snapshot`) on
both stores: applied as a set, their `taken_at` kept, before provisioning too."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.addresses import AddressSnapshot
from domain.mail import ServiceMail
from tests.helpers import new_id
from tests.integration.test_repository_contract import (  # the same stores and helpers
    NOW,
    Store,
    _mail,
    store,  # noqa: F401 (the fixture, used by name)
)

TAKEN = NOW - timedelta(hours=1, microseconds=123)


def _apply(on: Store, mail_id: str, addresses: set[str], taken_at: datetime = TAKEN) -> str:
    """The handler's story, on the repository: what changed, as the outcome says it."""
    snapshot = AddressSnapshot(mail_id, frozenset(addresses), taken_at)
    with on.new_uow() as uow:
        facts = uow.repo.snapshot_facts(mail_id)
        assert snapshot.is_newer_than(facts.last_taken_at)
        changes = snapshot.changes_from(facts.addresses)
        uow.repo.apply_snapshot(snapshot, changes, NOW)
        assert uow.commit(NOW)
    return str(changes)


def _in_use(on: Store, mail_id: str) -> int:
    with on.new_uow() as uow:
        mail = uow.repo.service_mail(mail_id)
    assert mail is not None
    return mail.addresses_in_use


def test_a_snapshot_is_read_with_the_addresses_counted_and_no_last_one(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    mail = _mail(store)
    with store.new_uow() as uow:
        for address in ("a@x.ch", "ghost@x.ch"):
            uow.repo.add_address(mail.id, address, NOW)
        uow.commit(NOW)
    with store.new_uow() as uow:
        facts = uow.repo.snapshot_facts(mail.id)
    assert (facts.last_taken_at, facts.addresses) == (None, {"a@x.ch", "ghost@x.ch"})


def test_an_applied_snapshot_is_the_addresses_and_its_taken_at_the_last_one(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    mail = _mail(store)
    _apply(store, mail.id, {"a@x.ch", "ghost@x.ch"}, TAKEN - timedelta(days=1))
    assert _apply(store, mail.id, {"a@x.ch", "b@x.ch", "c@x.ch"}) == "+2 -1"
    with store.new_uow() as uow:
        facts = uow.repo.snapshot_facts(mail.id)
    assert (facts.last_taken_at, facts.addresses) == (TAKEN, {"a@x.ch", "b@x.ch", "c@x.ch"})
    assert _in_use(store, mail.id) == 3


def test_a_stale_snapshot_is_seen_as_not_newer_than_the_one_kept(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    mail = _mail(store)
    _apply(store, mail.id, {"a@x.ch"})
    with store.new_uow() as uow:
        last = uow.repo.snapshot_facts(mail.id).last_taken_at
    for taken_at in (TAKEN, TAKEN - timedelta(microseconds=1)):
        assert not AddressSnapshot(mail.id, frozenset(), taken_at).is_newer_than(last)
    assert AddressSnapshot(mail.id, frozenset(), TAKEN + timedelta(microseconds=1)).is_newer_than(
        last
    )


def test_a_snapshot_before_its_provisioning_is_the_service_mails_a_once_provisioned(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    mail = ServiceMail(new_id("sm"), new_id("acc"), "premium", 10)
    assert _apply(store, mail.id, {"a@x.ch", "b@x.ch"}) == "+2 -0"
    with store.new_uow() as uow:
        assert uow.repo.service_mail(mail.id) is None
        assert uow.repo.add_service_mail_if_absent(mail, NOW)
        uow.commit(NOW)
    assert _in_use(store, mail.id) == 2


def test_an_added_address_already_counted_and_a_removed_one_gone_count_once(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    """What a fact on a Service Mail not provisioned yet (no row to lock) may do between a
    snapshot's read and its commit: the writes tolerate it."""
    mail = _mail(store)
    snapshot = AddressSnapshot(mail.id, frozenset({"a@x.ch", "b@x.ch"}), TAKEN)
    with store.new_uow() as uow:
        changes = snapshot.changes_from(uow.repo.snapshot_facts(mail.id).addresses)
        uow.repo.add_address(mail.id, "a@x.ch", NOW)  # counted meanwhile
        uow.repo.apply_snapshot(snapshot, changes, NOW)
        uow.repo.apply_snapshot(snapshot, changes, NOW)  # and the same again
        assert uow.commit(NOW)
    assert _in_use(store, mail.id) == 2


def test_ten_thousand_addresses_replaced_by_ten_thousand_others_leave_exactly_the_new_ones(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    # No timing here: tests assert behaviour; the set-based statements are what keep it
    # fast (one array statement each way on PostgreSQL, one executemany on SQLite).
    mail = _mail(store, limit=10_000)
    _apply(store, mail.id, {f"old{n}@x.ch" for n in range(10_000)}, TAKEN - timedelta(days=1))
    assert _apply(store, mail.id, {f"new{n}@x.ch" for n in range(10_000)}) == "+10000 -10000"
    assert _in_use(store, mail.id) == 10_000
