"""The mail platform's snapshot of a Service Mail's addresses: whether it is newer than
the last one applied, and what it changes in the addresses counted now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


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

    def is_newer_than(self, last_taken_at: datetime | None) -> bool:
        """Only a snapshot taken after the last one applied corrects anything: an older or
        equal one arrived late, and the facts since then already apply on top."""
        return last_taken_at is None or self.taken_at > last_taken_at

    def changes_from(self, current: Iterable[str]) -> AddressChanges:
        counted = frozenset(current)
        return AddressChanges(self.addresses - counted, counted - self.addresses)
