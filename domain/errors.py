"""Named refusals: one per rejection reason of the contract."""

from __future__ import annotations


class Rejected(Exception):
    """A change request is refused; `reason` is the contract's stable code."""

    reason: str = "rejected"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidMessage(Rejected):
    reason = "invalid_message"


class UnknownServiceMail(Rejected):
    reason = "unknown_service_mail"


class NotOwner(Rejected):
    reason = "not_owner"


class ManagedByKSuite(Rejected):
    reason = "managed_by_ksuite"


class NoChange(Rejected):
    reason = "no_change"


class StaleRequest(Rejected):
    reason = "stale_request"


class BelowPlanMinimum(Rejected):
    reason = "below_plan_minimum"


class AbovePlanMaximum(Rejected):
    reason = "above_plan_maximum"


class AddressesInUse(Rejected):
    reason = "addresses_in_use"


class ChangeInProgress(Rejected):
    reason = "change_in_progress"


class IdempotencyConflict(Rejected):
    reason = "idempotency_conflict"


class PaymentIdConflict(IdempotencyConflict):
    """A payment id seen again with another order, amount or currency: neither applied
    nor dropped, but kept as a dead letter for an operator."""


class PaymentMismatch(Rejected):
    reason = "payment_mismatch"


REJECTION_REASONS = tuple(
    cls.reason
    for cls in (
        InvalidMessage,
        UnknownServiceMail,
        NotOwner,
        ManagedByKSuite,
        NoChange,
        StaleRequest,
        BelowPlanMinimum,
        AbovePlanMaximum,
        AddressesInUse,
        ChangeInProgress,
        IdempotencyConflict,
        PaymentMismatch,
    )
)

REFUND_REASONS = (
    "payment_mismatch",
    "unknown_order",
    "duplicate_payment",
    "change_expired",
    "change_cancelled",
    "change_rejected",
)


class IllegalTransition(Exception):
    """A state change the contract's diagram does not allow."""
