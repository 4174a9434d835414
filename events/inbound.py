"""Pydantic v2 schemas of the inbound messages: strict, unknown fields refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

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


# What an order or payment time can be: anything else is a bug or hostile (and the
# year 1 or 9999 with an offset would overflow once converted to UTC).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _aware_iso8601(value: object) -> datetime:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise ValueError("must be an ISO 8601 time with a timezone offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 time with a timezone offset") from exc
    if parsed.tzinfo is None:
        raise ValueError("must carry a timezone offset, e.g. 2026-11-24T10:00:00+01:00")
    try:
        in_range = EARLIEST <= parsed <= LATEST  # compared in UTC, which may overflow
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return parsed


# Celery's JSON leaves times as strings; strict mode would refuse them, so
# times are parsed explicitly and only from ISO 8601 text (never a number).
Timestamp = Annotated[datetime, BeforeValidator(_aware_iso8601)]


class Message(BaseModel):
    # Attribute docstrings become the descriptions of the published JSON Schemas.
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )

    # An int equal to 1, not True nor 1.0 (which a Literal[1] would let through).
    schema_version: Annotated[int, Field(ge=1, le=1)]
    """The version of this message's shape; only `1` exists, any other is refused."""


class RequestChange(Message):
    """Ask for a new address limit of a Service Mail (from checkout)."""

    request_id: Identifier
    """Idempotency key of this change: the same id with the same payload again is a no-op, with
    another payload it is refused (`idempotency_conflict`)."""
    order_id: Identifier
    """The checkout order; payments correlate on it; one order holds one change."""
    account_id: Identifier
    """The account placing the order; it must own the Service Mail."""
    service_mail_id: Identifier
    """The Service Mail to change."""
    expected_address_limit: Limit
    """The limit B the customer saw when ordering; another current limit refuses the request
    (`stale_request`)."""
    new_address_limit: Limit
    """The limit B wanted."""
    amount_due: Money
    """What the customer must pay, in minor units (cents); `0` means no payment is awaited and the
    change applies at once."""
    currency: Currency
    """ISO 4217 code of `amount_due`."""
    requested_at: Timestamp
    """When the customer ordered (ISO 8601 with a timezone offset)."""


class CancelChange(Message):
    """Cancel a change still awaiting payment: the customer left the cart (from checkout)."""

    order_id: Identifier
    """The order whose change is cancelled."""
    reason: Annotated[str, StringConstraints(max_length=200)]
    """Why, in words (at most 200 characters); repeated in `mail.quota.change.cancelled`."""


class PaymentConfirmed(Message):
    """A payment for an order was received (from payments)."""

    payment_id: Identifier
    """Idempotency key of this payment."""
    order_id: Identifier
    """The order paid for."""
    amount: Annotated[int, Field(gt=0, le=10**15)]
    """The amount paid, in minor units (cents); must equal the order's `amount_due`."""
    currency: Currency
    """ISO 4217 code of `amount`; must equal the order's currency."""
    paid_at: Timestamp
    """When it was paid (ISO 8601 with a timezone offset)."""


class ServiceProvisioned(Message):
    """A Service Mail exists or changed owner, plan or kSuite (from the mail platform)."""

    service_mail_id: Identifier
    """The Service Mail."""
    account_id: Identifier
    """The account that owns it."""
    plan: Identifier
    """A plan of the plan table (`starter` or `premium` by default)."""
    address_limit: Limit
    """Its limit B as the platform reports it; used only when the Service Mail is new."""
    ksuite_id: Identifier | None
    """The kSuite it belongs to, or `null`; one in a kSuite is never changed here."""


class AddressCreated(Message):
    """An address was created on a Service Mail (from the mail platform)."""

    service_mail_id: Identifier
    """The Service Mail."""
    address: EmailAddress
    """The e-mail address (at most 254 characters); compared case-insensitively."""


class AddressDeleted(Message):
    """An address was deleted from a Service Mail (from the mail platform)."""

    service_mail_id: Identifier
    """The Service Mail."""
    address: EmailAddress
    """The e-mail address (at most 254 characters); compared case-insensitively."""


# The most addresses one snapshot lists (the largest plan's limit); a 10,000-address
# snapshot of 254-character addresses is about 2.6 MB of JSON, within QUOTA_MAX_MESSAGE_BYTES.
MAX_SNAPSHOT_ADDRESSES = 10_000


class AddressesSnapshot(Message):
    """The mail platform's full list of a Service Mail's addresses, to correct any drift."""

    service_mail_id: Identifier
    """The Service Mail."""
    addresses: Annotated[list[EmailAddress], Field(max_length=MAX_SNAPSHOT_ADDRESSES)]
    """Every address that exists on it (at most 10,000, each at most 254 characters; compared
    case-insensitively, a repeated one counts once): A becomes exactly this set."""
    taken_at: Timestamp
    """When the platform took the list (ISO 8601 with a timezone offset); a snapshot not newer
    than the last one applied changes nothing."""


class Route(NamedTuple):
    queue: str
    model: type[Message]


# Task name -> its queue and schema: the inbound half of the contract.
INBOUND: dict[str, Route] = {
    "quota.request_change": Route("quota.orders", RequestChange),
    "quota.cancel_change": Route("quota.orders", CancelChange),
    "quota.payment_confirmed": Route("quota.payments", PaymentConfirmed),
    "mail.service_provisioned": Route("quota.mail", ServiceProvisioned),
    "mail.address_created": Route("quota.mail", AddressCreated),
    "mail.address_deleted": Route("quota.mail", AddressDeleted),
    "mail.addresses_snapshot": Route("quota.mail", AddressesSnapshot),
}

QUEUES = ("quota.orders", "quota.payments", "quota.mail")


def describe(exc: ValidationError) -> str:
    """The validation errors as one line, never echoing the (possibly hostile) input."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
