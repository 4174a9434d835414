"""The mail platform's snapshot of a Service Mail's addresses: whether it is newer than
the last one applied, and what it changes in the addresses counted now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import errors

# How far ahead of our clock a snapshot's taken_at may be: the platform's clock may run a
# little fast, but a snapshot from the future would make every later one look stale.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class AddressChanges:
    """What makes the addresses counted now exactly a snapshot's set."""

    added: frozenset[str]
    removed: frozenset[str]

    def __str__(self) -> str:
        return f"+{len(self.added)} -{len(self.removed)}"


@dataclass(frozen=True)
class AddressSnapshot:
    service_mail_id: str
    addresses: frozenset[str]  # a repeated address counts once
    taken_at: datetime

    def check_taken_by(self, now: datetime) -> None:
        """A snapshot cannot have been taken after now (beyond a clock's skew): applied, its
        time would make every true snapshot until then stale, and the drift stay."""
        if self.taken_at > now + CLOCK_SKEW:
            raise errors.InvalidMessage(
                f"taken_at {self.taken_at.isoformat()} is in the future (now "
                f"{now.isoformat()}); replay it once the platform's clock is right"
            )

    def is_newer_than(self, last_taken_at: datetime | None) -> bool:
        """Only a snapshot taken after the last one applied corrects anything: an older or
        equal one arrived late, and the facts since then already apply on top."""
        return last_taken_at is None or self.taken_at > last_taken_at

    def changes_from(self, current: Iterable[str]) -> AddressChanges:
        counted = frozenset(current)
        return AddressChanges(self.addresses - counted, counted - self.addresses)
