"""What became of one message: a value, logged, counted and stored as it is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.model import ChangeState, QuotaChange
from domain.payment import Payment, PaymentStatus


class Kind(StrEnum):
    # a change request's, or a payment's, when it moved the change
    RECEIVED = ChangeState.RECEIVED.value  # waits for its Service Mail's provisioning
    APPLIED = ChangeState.APPLIED.value
    AWAITING_PAYMENT = ChangeState.AWAITING_PAYMENT.value
    REJECTED = ChangeState.REJECTED.value
    CANCELLED = ChangeState.CANCELLED.value
    REFUND = "refund"  # a payment to be refunded (reason: the contract's refund reason)
    IGNORED = "ignored"  # a cancel of a change not awaiting payment (reason: its state)
    # kept for the message that completes them
    PAYMENT_HELD = "payment_held"
    CANCEL_HELD = "cancel_held"
    # provisioning and address facts
    CREATED = "created"
    UPDATED = "updated"
    COUNTED = "counted"
    KNOWN = "known"
    REMOVED = "removed"
    UNKNOWN = "unknown"
    SNAPSHOT_APPLIED = "snapshot_applied"  # reason: how many added and removed, "+2 -1"
    STALE = "stale"  # a snapshot not newer than the last one applied: nothing changed
    # nothing done
    DUPLICATE = "duplicate"  # the same request or payment again, under another message id
    DUPLICATE_DELIVERY = "duplicate_delivery"  # the same message id again
    DEAD_LETTER = "dead_letter"


# The processed-messages table's outcome column (String(40)).
MAX_TEXT = 40


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str | None = None

    def __post_init__(self) -> None:
        if len(str(self)) > MAX_TEXT:
            raise ValueError(f"outcome {self} is longer than {MAX_TEXT} characters")

    def __str__(self) -> str:
        """The text logged as `outcome` and stored: `applied`, `rejected:not_owner`."""
        return self.kind.value if self.reason is None else f"{self.kind.value}:{self.reason}"

    @classmethod
    def of_change(cls, change: QuotaChange) -> Outcome:
        if change.state is ChangeState.REJECTED:
            return cls(Kind.REJECTED, change.reason)
        return cls(Kind(change.state.value))

    @classmethod
    def of_payment(cls, change: QuotaChange, payment: Payment) -> Outcome:
        if payment.refund_reason is not None:
            return cls(Kind.REFUND, payment.refund_reason)
        if payment.status is PaymentStatus.PENDING:
            return cls(Kind.PAYMENT_HELD)  # its change awaits its Service Mail
        return cls.of_change(change)


DUPLICATE = Outcome(Kind.DUPLICATE)
DUPLICATE_DELIVERY = Outcome(Kind.DUPLICATE_DELIVERY)
DEAD_LETTER = Outcome(Kind.DEAD_LETTER)
