"""Pydantic v2 schemas of the inbound messages: strict, unknown fields refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# A limit fits a 32-bit column; larger values can only be hostile.
Limit = Annotated[int, Field(ge=0, le=2_147_483_647)]
Money = Annotated[int, Field(ge=0, le=10**15)]
EmailAddress = Annotated[
    str,
    StringConstraints(
        max_length=254,
        pattern=r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$",
    ),
]


def _aware_iso8601(value: object) -> datetime:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise ValueError("must be an ISO 8601 time with a timezone offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 time with a timezone offset") from exc
    if parsed.tzinfo is None:
        raise ValueError("must carry a timezone offset, e.g. 2026-11-24T10:00:00+01:00")
    return parsed


# Celery's JSON leaves times as strings; strict mode would refuse them, so
# times are parsed explicitly and only from ISO 8601 text (never a number).
Timestamp = Annotated[datetime, BeforeValidator(_aware_iso8601)]


class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # An int equal to 1, not True nor 1.0 (which a Literal[1] would let through).
    schema_version: Annotated[int, Field(ge=1, le=1)]


class RequestChange(Message):
    request_id: Identifier
    order_id: Identifier
    account_id: Identifier
    service_mail_id: Identifier
    expected_address_limit: Limit
    new_address_limit: Limit
    amount_due: Money
    currency: Currency
    requested_at: Timestamp


class CancelChange(Message):
    order_id: Identifier
    reason: Annotated[str, StringConstraints(max_length=200)]


class PaymentConfirmed(Message):
    payment_id: Identifier
    order_id: Identifier
    amount: Annotated[int, Field(gt=0, le=10**15)]
    currency: Currency
    paid_at: Timestamp


class ServiceProvisioned(Message):
    service_mail_id: Identifier
    account_id: Identifier
    plan: Identifier
    address_limit: Limit
    ksuite_id: Identifier | None


class AddressCreated(Message):
    service_mail_id: Identifier
    address: EmailAddress


class AddressDeleted(Message):
    service_mail_id: Identifier
    address: EmailAddress


# Task name -> (queue, schema): the inbound half of the contract.
INBOUND: dict[str, tuple[str, type[Message]]] = {
    "quota.request_change": ("quota.orders", RequestChange),
    "quota.cancel_change": ("quota.orders", CancelChange),
    "quota.payment_confirmed": ("quota.payments", PaymentConfirmed),
    "mail.service_provisioned": ("quota.mail", ServiceProvisioned),
    "mail.address_created": ("quota.mail", AddressCreated),
    "mail.address_deleted": ("quota.mail", AddressDeleted),
}

QUEUES = ("quota.orders", "quota.payments", "quota.mail")
