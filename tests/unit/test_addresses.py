"""The address snapshot's decision: whether it is newer than the last one applied, and
what it adds and removes; and how its wire payload becomes that snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import commands, errors
from domain.addresses import CLOCK_SKEW, AddressChanges, AddressSnapshot
from events.inbound import AddressesSnapshot
from events.translate import to_command

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def snapshot(*addresses: str, taken_at: datetime = T0) -> AddressSnapshot:
    return AddressSnapshot("sm-1", frozenset(addresses), taken_at)


def test_the_first_snapshot_of_a_service_mail_is_newer_than_none() -> None:
    assert snapshot("a@b.ch").is_newer_than(None)


def test_a_snapshot_taken_later_than_the_last_one_applied_is_newer() -> None:
    assert snapshot("a@b.ch").is_newer_than(T0 - timedelta(microseconds=1))


@pytest.mark.parametrize("last", [T0, T0 + timedelta(seconds=1)], ids=["equal", "later"])
def test_a_snapshot_taken_at_or_before_the_last_one_applied_is_not_newer(last: datetime) -> None:
    assert not snapshot("a@b.ch").is_newer_than(last)


def test_the_changes_add_what_is_missing_and_remove_what_is_not_listed() -> None:
    changes = snapshot("a@b.ch", "c@b.ch").changes_from(["a@b.ch", "ghost@b.ch"])
    assert changes == AddressChanges(frozenset({"c@b.ch"}), frozenset({"ghost@b.ch"}))


def test_a_snapshot_equal_to_the_addresses_counted_changes_nothing() -> None:
    changes = snapshot("a@b.ch").changes_from(["a@b.ch"])
    assert (changes.added, changes.removed, str(changes)) == (frozenset(), frozenset(), "+0 -0")


def test_an_empty_snapshot_removes_every_address() -> None:
    assert snapshot().changes_from(["a@b.ch", "b@b.ch"]).removed == {"a@b.ch", "b@b.ch"}


def test_a_repeated_address_in_the_payload_counts_once_whatever_its_case() -> None:
    payload = AddressesSnapshot.model_validate(
        {
            "schema_version": 1, "service_mail_id": "sm-1",
            "addresses": ["Anna@Example.ch", "anna@example.ch", "anna@example.ch", "ben@x.ch"],
            "taken_at": "2026-11-24T04:00:00+01:00",
        }
    )  # fmt: skip
    command = to_command(payload)
    assert command == commands.RecordAddressesSnapshot(
        "sm-1", frozenset({"anna@example.ch", "ben@x.ch"}), T0
    )
    assert len(snapshot(*command.addresses).changes_from([]).added) == 2  # type: ignore[union-attr]


def test_a_snapshot_taken_within_the_clock_skew_ahead_of_now_is_accepted() -> None:
    snapshot("a@b.ch", taken_at=T0 + CLOCK_SKEW).check_taken_by(T0)


def test_a_snapshot_from_further_in_the_future_is_invalid_and_says_to_replay_it_later() -> None:
    with pytest.raises(errors.InvalidMessage, match=r"in the future.*replay it"):
        snapshot("a@b.ch", taken_at=T0 + CLOCK_SKEW + timedelta(seconds=1)).check_taken_by(T0)
