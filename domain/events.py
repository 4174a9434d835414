"""What happened: past-tense domain events, translated to CloudEvents in `events/`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ChangeAccepted:
    request_id: str
    order_id: str
    account_id: str
    service_mail_id: str
    address_limit: int
    new_address_limit: int
    amount_due: int
    currency: str
    expires_at: datetime


@dataclass(frozen=True)
class QuotaChanged:
    request_id: str
    order_id: str
    account_id: str
    service_mail_id: str
    previous_address_limit: int
    address_limit: int
    addresses_in_use: int
    plan: str
    version: int
    applied_at: datetime


@dataclass(frozen=True)
class ChangeRejected:
    request_id: str
    order_id: str
    service_mail_id: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ChangeExpired:
    request_id: str
    order_id: str
    service_mail_id: str


@dataclass(frozen=True)
class ChangeCancelled:
    request_id: str
    order_id: str
    service_mail_id: str
    reason: str


@dataclass(frozen=True)
class RefundRequired:
    payment_id: str
    order_id: str
    amount: int
    currency: str
    reason: str
    # Not part of the event's data: the stream entry's subject, when known.
    service_mail_id: str | None = None


DomainEvent = (
    ChangeAccepted
    | QuotaChanged
    | ChangeRejected
    | ChangeExpired
    | ChangeCancelled
    | RefundRequired
)
