"""One valid example of every inbound message and every event, for the contract documents.

The inbound payloads are shown to integrators and validated by the tests; the
events are built by the worker's own code (`events.outbound`), exactly as the
relay publishes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import events as domain_events
from events import outbound

# One valid payload per inbound message: shown to integrators, validated by the tests.
INBOUND_EXAMPLES: dict[str, dict[str, Any]] = {
    "quota.request_change": {
        "schema_version": 1, "request_id": "req-7f3a", "order_id": "ord-20261124-0042",
        "account_id": "acc-1009", "service_mail_id": "sm-example-ch",
        "expected_address_limit": 10, "new_address_limit": 20, "amount_due": 1500,
        "currency": "CHF", "requested_at": "2026-11-24T10:00:00+01:00",
    },
    "quota.cancel_change": {
        "schema_version": 1, "order_id": "ord-20261124-0042", "reason": "customer left the cart",
    },
    "quota.payment_confirmed": {
        "schema_version": 1, "payment_id": "pay-88121", "order_id": "ord-20261124-0042",
        "amount": 1500, "currency": "CHF", "paid_at": "2026-11-24T10:02:13+01:00",
    },
    "mail.service_provisioned": {
        "schema_version": 1, "service_mail_id": "sm-example-ch", "account_id": "acc-1009",
        "plan": "premium", "address_limit": 10, "ksuite_id": None,
    },
    "mail.address_created": {
        "schema_version": 1, "service_mail_id": "sm-example-ch", "address": "anna@example.ch",
    },
    "mail.address_deleted": {
        "schema_version": 1, "service_mail_id": "sm-example-ch", "address": "anna@example.ch",
    },
    "mail.addresses_snapshot": {
        "schema_version": 1, "service_mail_id": "sm-example-ch",
        "addresses": ["anna@example.ch", "ben@example.ch", "info@example.ch"],
        "taken_at": "2026-11-24T03:00:00+01:00",
    },
}  # fmt: skip

_T0 = datetime(2026, 11, 24, 9, 2, 14, tzinfo=UTC)
_IDS = {"request_id": "req-7f3a", "order_id": "ord-20261124-0042"}
# One domain event per type, turned into a CloudEvent by the worker's own code.
_EVENT_EXAMPLES: list[domain_events.DomainEvent] = [
    domain_events.ChangeAccepted(
        **_IDS, account_id="acc-1009", service_mail_id="sm-example-ch", address_limit=10,
        new_address_limit=20, amount_due=1500, currency="CHF",
        expires_at=_T0 + timedelta(days=1),
    ),
    domain_events.QuotaChanged(
        **_IDS, account_id="acc-1009", service_mail_id="sm-example-ch",
        previous_address_limit=10, address_limit=20, addresses_in_use=7, plan="premium",
        version=3, applied_at=_T0,
    ),
    domain_events.ChangeRejected(
        **_IDS, service_mail_id="sm-example-ch", reason="addresses_in_use",
        detail="The limit cannot go below the 7 addresses in use: delete addresses first.",
    ),
    domain_events.ChangeExpired(**_IDS, service_mail_id="sm-example-ch"),
    domain_events.ChangeCancelled(
        **_IDS, service_mail_id="sm-example-ch", reason="customer left the cart"
    ),
    domain_events.RefundRequired(
        payment_id="pay-88121", order_id="ord-20261124-0042", amount=1500, currency="CHF",
        reason="change_expired", service_mail_id="sm-example-ch",
    ),
]  # fmt: skip


def event_examples(source: str = "quota-worker") -> dict[str, dict[str, Any]]:
    """A CloudEvent per type, built by `events.outbound` exactly as the relay publishes it."""
    examples = {}
    for n, event in enumerate(_EVENT_EXAMPLES, start=1):
        built = outbound.to_cloudevent(event, source, _T0)
        body = json.loads(built.body)
        body["id"] = f"0b6f1c2e-5d1a-4e8b-9c3f-00000000000{n}"  # stable in the documents
        examples[built.type] = body
    return examples
