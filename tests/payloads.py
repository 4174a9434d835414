"""One valid payload per inbound message: the base every bad variant is made from."""

from __future__ import annotations

from typing import Any

VALID: dict[str, dict[str, Any]] = {
    "quota.request_change": {
        "schema_version": 1, "request_id": "req-1", "order_id": "ord-1", "account_id": "acc-1",
        "service_mail_id": "sm-1", "expected_address_limit": 10, "new_address_limit": 20,
        "amount_due": 1500, "currency": "CHF", "requested_at": "2026-11-24T10:00:00+01:00",
    },
    "quota.cancel_change": {"schema_version": 1, "order_id": "ord-1", "reason": "cart left"},
    "quota.payment_confirmed": {
        "schema_version": 1, "payment_id": "pay-1", "order_id": "ord-1", "amount": 1500,
        "currency": "CHF", "paid_at": "2026-11-24T10:02:00Z",
    },
    "mail.service_provisioned": {
        "schema_version": 1, "service_mail_id": "sm-1", "account_id": "acc-1", "plan": "premium",
        "address_limit": 10, "ksuite_id": None,
    },
    "mail.address_created": {"schema_version": 1, "service_mail_id": "sm-1", "address": "a@b.ch"},
    "mail.address_deleted": {"schema_version": 1, "service_mail_id": "sm-1", "address": "a@b.ch"},
    "mail.addresses_snapshot": {
        "schema_version": 1, "service_mail_id": "sm-1", "addresses": ["a@b.ch", "c@b.ch"],
        "taken_at": "2026-11-24T03:00:00+01:00",
    },
}  # fmt: skip
