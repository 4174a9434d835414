"""The API's responses as pydantic models: `/openapi.json` is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.model import ChangeState
from domain.payment import PaymentStatus
from events.inbound import Currency, Identifier
from events.schemas import Count, RefundReason, RejectionReason


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class ErrorBody(Body):
    """Every error: a stable code and a sentence."""

    error: str
    """A stable code: `unauthorized`, `forbidden`, `unknown_service_mail`, `unknown_order`,
    `unknown_request`, `invalid_request`, `not_found`, `not_ready`, ..."""
    detail: str
    """What went wrong, as a sentence."""


class Health(Body):
    status: str = "ok"


class Readiness(Body):
    """What `/readyz` found: each dependency `ok`, or why not."""

    ready: bool
    checks: dict[str, str]
    """`database` (reachable and migrated), `broker`, `redis` (the stream's): `ok` or why
    not."""


class NotReady(ErrorBody):
    checks: dict[str, str]
    """`database` (reachable and migrated), `broker`, `redis` (the stream's): `ok` or why
    not."""


class PendingChange(Body):
    """The change of this Service Mail that awaits its payment."""

    request_id: Identifier
    order_id: Identifier
    new_address_limit: Count
    amount_due: Count
    """In minor units."""
    currency: Currency
    expires_at: datetime
    """Without a payment in time by then, the change expires."""


class ServiceMailView(Body):
    """A Service Mail's A and B, its plan's bounds, and the change awaiting payment."""

    service_mail_id: Identifier
    account_id: Identifier
    """The account that owns it: the only one that may change its limit."""
    plan: Identifier
    address_limit: Count
    """B: the number of addresses it may hold."""
    addresses_in_use: Count
    """A: the addresses created on it."""
    ksuite_id: Identifier | None
    """Set when it is part of a kSuite: its quota then follows the kSuite offer."""
    version: Count
    """How many times its limit changed (`mail.quota.changed`'s `version`)."""
    plan_min_limit: Count
    plan_max_limit: Count
    pending_change: PendingChange | None


class Quote(Body):
    """Whether a change of the limit would be accepted now; nothing is changed or kept."""

    allowed: bool
    reason: RejectionReason | None
    """The rejection reason the worker would give, or null when allowed."""
    detail: str
    """The sentence to show the customer."""
    plan: Identifier
    """The plan after the change (a `starter` raised above its maximum: `premium`), whose
    bounds were checked."""
    address_limit: Count
    """B now."""
    new_address_limit: Count
    addresses_in_use: Count
    """A now."""


class PaymentView(Body):
    payment_id: Identifier
    amount: Annotated[int, Field(gt=0)]
    currency: Currency
    status: PaymentStatus
    """`pending` (held, not yet used), `used` or `refunded`."""
    refund_reason: RefundReason | None


class EventView(Body):
    """An event published for this order (kept for QUOTA_OUTBOX_RETENTION_SECONDS)."""

    id: str
    """The CloudEvents `id`, as on the stream."""
    type: str
    time: datetime


class ChangeView(Body):
    """A change request: its state and what became of it, its payments and its events."""

    request_id: Identifier
    order_id: Identifier
    service_mail_id: Identifier
    account_id: Identifier
    state: ChangeState
    reason: str | None
    """The rejection reason, when rejected."""
    detail: str | None
    """A rejection's sentence."""
    new_address_limit: Count
    amount_due: Count
    currency: Currency
    expires_at: datetime | None
    """While awaiting payment: when it expires."""
    payments: list[PaymentView]
    """The order's payments, oldest first."""
    events: list[EventView]
    """The order's events, in the order they were committed."""
