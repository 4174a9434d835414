"""CloudEvents built from domain events, and wire messages turned into commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from domain import commands
from domain import events as de
from events import inbound
from events.outbound import EVENT_TYPES, to_cloudevent
from events.translate import to_command

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

# The `data` fields of each type, as the contract's Outbound events table lists them.
CONTRACT_DATA = {
    "mail.quota.change.accepted": {
        "request_id", "order_id", "account_id", "service_mail_id", "address_limit",
        "new_address_limit", "amount_due", "currency", "expires_at",
    },
    "mail.quota.changed": {
        "request_id", "order_id", "account_id", "service_mail_id", "previous_address_limit",
        "address_limit", "addresses_in_use", "plan", "version", "applied_at",
    },
    "mail.quota.change.rejected": {"request_id", "order_id", "service_mail_id", "reason", "detail"},
    "mail.quota.change.expired": {"request_id", "order_id", "service_mail_id"},
    "mail.quota.change.cancelled": {"request_id", "order_id", "service_mail_id", "reason"},
    "mail.quota.refund.required": {"payment_id", "order_id", "amount", "currency", "reason"},
}  # fmt: skip

SAMPLES: list[de.DomainEvent] = [
    de.ChangeAccepted("r", "o", "a", "sm", 10, 20, 1500, "CHF", NOW),
    de.QuotaChanged("r", "o", "a", "sm", 10, 20, 3, "premium", 1, NOW),
    de.ChangeRejected("r", "o", "sm", "not_owner", "This Service Mail belongs to another account."),
    de.ChangeExpired("r", "o", "sm"),
    de.ChangeCancelled("r", "o", "sm", "cart left"),
    de.RefundRequired("p", "o", 1500, "CHF", "duplicate_payment", "sm"),
]


def cloud(event: de.DomainEvent) -> dict[str, Any]:
    return json.loads(to_cloudevent(event, "quota-worker", NOW).body)  # type: ignore[no-any-return]


def test_every_contract_event_type_has_a_domain_event() -> None:
    assert set(EVENT_TYPES.values()) == set(CONTRACT_DATA)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_each_event_carries_exactly_the_contracts_data_fields(event: de.DomainEvent) -> None:
    body = cloud(event)
    assert set(body["data"]) == CONTRACT_DATA[body["type"]]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_each_event_is_a_structured_cloudevent(event: de.DomainEvent) -> None:
    body = cloud(event)
    assert body["specversion"] == "1.0" and body["datacontenttype"] == "application/json"
    assert body["source"] == "quota-worker" and body["subject"] == "sm"
    assert datetime.fromisoformat(body["time"]).tzinfo is not None


def test_the_stream_entry_repeats_type_and_subject_beside_the_event() -> None:
    out = to_cloudevent(SAMPLES[1], "quota-worker", NOW)
    fields = out.stream_fields()
    assert (fields["type"], fields["subject"]) == ("mail.quota.changed", "sm")
    assert json.loads(fields["event"])["id"] == out.id


def test_times_in_data_are_iso_8601_with_an_offset() -> None:
    assert datetime.fromisoformat(cloud(SAMPLES[0])["data"]["expires_at"]).tzinfo is not None


def test_a_refund_for_an_order_never_seen_has_the_order_as_subject() -> None:
    assert (
        cloud(de.RefundRequired("p", "o-9", 100, "CHF", "unknown_order"))["subject"] == "order:o-9"
    )


def test_each_event_gets_its_own_id() -> None:
    assert cloud(SAMPLES[3])["id"] != cloud(SAMPLES[3])["id"]


def test_a_request_becomes_a_command_with_its_time_in_utc() -> None:
    message = inbound.RequestChange.model_validate(
        {
            "schema_version": 1, "request_id": "r", "order_id": "o", "account_id": "a",
            "service_mail_id": "sm", "expected_address_limit": 10, "new_address_limit": 20,
            "amount_due": 0, "currency": "CHF", "requested_at": "2026-11-24T10:00:00+01:00",
        }
    )  # fmt: skip
    cmd = to_command(message)
    assert isinstance(cmd, commands.RequestQuotaChange)
    assert cmd.requested_at == NOW and cmd.requested_at.utcoffset() == timedelta(0)


def test_an_address_is_recorded_in_lower_case_so_it_counts_once() -> None:
    message = inbound.AddressCreated.model_validate(
        {"schema_version": 1, "service_mail_id": "sm", "address": "Anna@Example.CH"}
    )
    assert to_command(message) == commands.RecordAddressCreated("sm", "anna@example.ch")


def test_a_payment_becomes_a_command_with_its_time_in_utc() -> None:
    message = inbound.PaymentConfirmed.model_validate(
        {
            "schema_version": 1, "payment_id": "p", "order_id": "o", "amount": 5,
            "currency": "EUR", "paid_at": "2026-11-24T04:00:00-05:00",
        }
    )  # fmt: skip
    cmd = to_command(message)
    assert isinstance(cmd, commands.ConfirmPayment)
    assert cmd.paid_at == NOW and cmd.paid_at.tzinfo == timezone.utc  # noqa: UP017
