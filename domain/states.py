"""A change's states, the transitions the contract's diagram allows between them, and
the refund owed for a payment that reaches a change already decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ChangeState(StrEnum):
    RECEIVED = "received"
    AWAITING_PAYMENT = "awaiting_payment"
    APPLIED = "applied"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset(
    {ChangeState.APPLIED, ChangeState.REJECTED, ChangeState.EXPIRED, ChangeState.CANCELLED}
)

ALLOWED = {
    ChangeState.RECEIVED: {ChangeState.AWAITING_PAYMENT, ChangeState.APPLIED, ChangeState.REJECTED},
    ChangeState.AWAITING_PAYMENT: {
        ChangeState.APPLIED,
        ChangeState.REJECTED,
        ChangeState.EXPIRED,
        ChangeState.CANCELLED,
    },
}

# The refund owed for a payment that reaches a change already in this state.
REFUND_FOR_STATE = {
    ChangeState.APPLIED: "duplicate_payment",
    ChangeState.EXPIRED: "change_expired",
    ChangeState.CANCELLED: "change_cancelled",
    ChangeState.REJECTED: "change_rejected",
}


@dataclass(frozen=True)
class Transition:
    from_state: ChangeState
    to_state: ChangeState
    reason: str | None
    at: datetime
