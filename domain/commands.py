"""What can be asked of the service: one command per inbound message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RequestQuotaChange:
    request_id: str
    order_id: str
    account_id: str
    service_mail_id: str
    expected_address_limit: int
    new_address_limit: int
    amount_due: int
    currency: str
    requested_at: datetime


@dataclass(frozen=True)
class CancelQuotaChange:
    order_id: str
    reason: str


@dataclass(frozen=True)
class ConfirmPayment:
    payment_id: str
    order_id: str
    amount: int
    currency: str
    paid_at: datetime


@dataclass(frozen=True)
class ProvisionServiceMail:
    service_mail_id: str
    account_id: str
    plan: str
    address_limit: int
    ksuite_id: str | None


@dataclass(frozen=True)
class RecordAddressCreated:
    service_mail_id: str
    address: str


@dataclass(frozen=True)
class RecordAddressDeleted:
    service_mail_id: str
    address: str


@dataclass(frozen=True)
class RecordAddressesSnapshot:
    service_mail_id: str
    addresses: frozenset[str]
    taken_at: datetime


@dataclass(frozen=True)
class RejectInvalidMessage:
    """A request whose ids could be read but whose payload breaks the contract."""

    request_id: str
    order_id: str
    service_mail_id: str
    detail: str


Command = (
    RequestQuotaChange
    | CancelQuotaChange
    | ConfirmPayment
    | ProvisionServiceMail
    | RecordAddressCreated
    | RecordAddressDeleted
    | RecordAddressesSnapshot
    | RejectInvalidMessage
)
