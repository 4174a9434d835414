"""Pydantic models of the outbound events: the CloudEvents envelope and each type's `data`.

The worker builds events from the domain's dataclasses (`events/outbound.py`);
these models describe the same fields for integrators: the published JSON
Schemas and the AsyncAPI document are generated from them, and the consumer
helper (`events/subscriber.py`) parses with them. A test holds them equal to
what the worker really emits.

Readers are lenient on purpose (unknown fields are ignored): a field added to
an event in a compatible way must not break a consumer built today.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from domain.errors import REFUND_REASONS, REJECTION_REASONS
from events.inbound import Currency, Identifier


def _member_of(codes: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in codes:
            raise ValueError(f"must be one of {', '.join(codes)}")
        return value

    return AfterValidator(check)


RejectionReason = Annotated[
    str,
    _member_of(REJECTION_REASONS),
    Field(json_schema_extra={"enum": list(REJECTION_REASONS)}),
]
RefundReason = Annotated[
    str, _member_of(REFUND_REASONS), Field(json_schema_extra={"enum": list(REFUND_REASONS)})
]
Count = Annotated[int, Field(ge=0)]


class EventData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class ChangeAcceptedData(EventData):
    """A valid request now awaits its payment."""

    request_id: Identifier
    order_id: Identifier
    account_id: Identifier
    service_mail_id: Identifier
    address_limit: Count
    """The limit in force now."""
    new_address_limit: Count
    """The limit that applies once the payment is confirmed."""
    amount_due: Count
    """What must be paid, in minor units."""
    currency: Currency
    expires_at: datetime
    """Without a payment by then the change expires (`mail.quota.change.expired`)."""


class QuotaChangedData(EventData):
    """The new limit is in force. Apply it only if `version` is above the one you hold."""

    request_id: Identifier
    order_id: Identifier
    account_id: Identifier
    service_mail_id: Identifier
    previous_address_limit: Count
    address_limit: Count
    """The limit in force from now on."""
    addresses_in_use: Count
    """A: the addresses created on the Service Mail when the change was applied."""
    plan: Identifier
    """The plan after the change (a `starter` raised above its maximum is now `premium`)."""
    version: Annotated[int, Field(ge=1)]
    """Counts the limit changes of this Service Mail, strictly increasing, without gaps."""
    applied_at: datetime


class ChangeRejectedData(EventData):
    """The request is refused; `detail` can be read to the customer."""

    request_id: Identifier
    order_id: Identifier
    service_mail_id: Identifier
    reason: RejectionReason
    """A stable code (see the contract's table of rejection reasons)."""
    detail: str
    """A sentence a support agent can read to a customer."""


class ChangeExpiredData(EventData):
    """No payment came within the payment timeout."""

    request_id: Identifier
    order_id: Identifier
    service_mail_id: Identifier


class ChangeCancelledData(EventData):
    """Checkout cancelled a change that awaited payment."""

    request_id: Identifier
    order_id: Identifier
    service_mail_id: Identifier
    reason: str
    """The `reason` of the `quota.cancel_change` message."""


class RefundRequiredData(EventData):
    """A payment cannot be used: pay it back. The entry's subject is the Service Mail, or
    `order:<order_id>` when the order was never seen."""

    payment_id: Identifier
    order_id: Identifier
    amount: Annotated[int, Field(gt=0)]
    """The amount paid, in minor units."""
    currency: Currency
    reason: RefundReason
    """A stable code (see the contract's table of refund reasons)."""


# CloudEvents type -> the model of its `data`.
EVENT_DATA: dict[str, type[EventData]] = {
    "mail.quota.change.accepted": ChangeAcceptedData,
    "mail.quota.changed": QuotaChangedData,
    "mail.quota.change.rejected": ChangeRejectedData,
    "mail.quota.change.expired": ChangeExpiredData,
    "mail.quota.change.cancelled": ChangeCancelledData,
    "mail.quota.refund.required": RefundRequiredData,
}


class CloudEvent(BaseModel):
    """CloudEvents 1.0, structured JSON mode: the `event` field of each stream entry."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    specversion: str
    """Always `1.0`."""
    id: str
    """Stable across re-publishing: deduplicate on it."""
    source: str
    """`QUOTA_EVENT_SOURCE`, `quota-worker` by default."""
    type: str
    """One of the event types, e.g. `mail.quota.changed`."""
    subject: str
    """The Service Mail id (`order:<order_id>` for a refund of an order never seen)."""
    time: datetime
    datacontenttype: str
    """Always `application/json`."""
    data: dict[str, Any]
    """The type's data, see its schema."""

    def parsed_data(self) -> EventData | None:
        """`data` as the model of its type; None for a type this version does not know."""
        model = EVENT_DATA.get(self.type)
        return model.model_validate(self.data) if model else None
