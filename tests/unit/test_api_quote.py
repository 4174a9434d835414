"""The quote, without I/O: the domain decides on copies, and what it was given is left as it was."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from domain.mail import ServiceMail
from domain.plans import PlanTable
from worker.api.quote import quote
from worker.api.reads import MailRead

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PLANS = PlanTable.default()


def _read(pending: bool = False, **mail: object) -> MailRead:
    values: dict[str, object] = {"id": "sm-1", "account_id": "acc-1", "plan": "premium",
                                 "address_limit": 10, "addresses_in_use": 4}  # fmt: skip
    sm = ServiceMail(**{**values, **mail})
    return MailRead(sm, {"request_id": "req-0"} if pending else None)


def test_an_upgrade_is_allowed_and_names_the_plan_after() -> None:
    answer = quote(
        _read(plan="starter", address_limit=1, addresses_in_use=1), "acc-1", 8, PLANS, NOW
    )
    assert (answer.allowed, answer.reason, answer.plan) == (True, None, "premium")


def test_the_service_mail_read_is_not_changed_by_an_allowed_quote() -> None:
    read = _read()
    before = dataclasses.replace(read.mail)
    quote(read, "acc-1", 20, PLANS, NOW)
    assert read.mail == before


def test_another_change_awaiting_payment_is_change_in_progress() -> None:
    answer = quote(_read(pending=True), "acc-1", 20, PLANS, NOW)
    assert (answer.allowed, answer.reason) == (False, "change_in_progress")


def test_the_owner_is_checked_before_another_change_awaiting_payment() -> None:
    """The order of QuotaChange.receive: a stranger learns nothing of the pending change."""
    answer = quote(_read(pending=True), "acc-2", 20, PLANS, NOW)
    assert answer.reason == "not_owner"
