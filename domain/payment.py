"""A payment for an order: pending until a change uses it or it is refunded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain import commands
from domain.errors import IllegalTransition, PaymentIdConflict
from domain.events import RefundRequired


class PaymentStatus(StrEnum):
    PENDING = "pending"
    USED = "used"
    REFUNDED = "refunded"


@dataclass
class Payment:
    payment_id: str
    order_id: str
    amount: int
    currency: str
    paid_at: datetime
    received_at: datetime
    status: PaymentStatus = PaymentStatus.PENDING
    refund_reason: str | None = None

    @classmethod
    def received(cls, cmd: commands.ConfirmPayment, now: datetime) -> Payment:
        return cls(cmd.payment_id, cmd.order_id, cmd.amount, cmd.currency, cmd.paid_at, now)

    def same_payment_as(self, other: Payment) -> bool:
        """The same payment again (a duplicate), whatever its `paid_at` says."""
        return (self.order_id, self.amount, self.currency) == (
            other.order_id,
            other.amount,
            other.currency,
        )

    def conflict_with(self, incoming: Payment) -> PaymentIdConflict:
        return PaymentIdConflict(
            f"payment {incoming.payment_id} was received for order {self.order_id} "
            f"({self.amount} {self.currency}) and again for order {incoming.order_id} "
            f"({incoming.amount} {incoming.currency}); neither the second is applied nor "
            "refunded until an operator decides"
        )

    def use(self) -> None:
        self.status = PaymentStatus.USED

    def refund(self, reason: str, service_mail_id: str | None) -> RefundRequired:
        if self.status is not PaymentStatus.PENDING:
            raise IllegalTransition(f"payment {self.payment_id} is already {self.status}")
        self.status = PaymentStatus.REFUNDED
        self.refund_reason = reason
        return RefundRequired(
            payment_id=self.payment_id,
            order_id=self.order_id,
            amount=self.amount,
            currency=self.currency,
            reason=reason,
            service_mail_id=service_mail_id,
        )

    def unmatched_past(self, now: datetime, timeout: timedelta) -> bool:
        return self.status is PaymentStatus.PENDING and self.received_at + timeout <= now
