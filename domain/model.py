"""A change of a Service Mail's limit: the aggregate every request becomes.

Every rule of the contract is checked in domain/ (the Service Mail's in mail.py, the
payment's in payment.py); the methods that change state return the domain events they
caused, and the caller persists both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain import commands, errors
from domain.errors import IllegalTransition
from domain.events import (
    ChangeAccepted,
    ChangeCancelled,
    ChangeExpired,
    ChangeRejected,
    DomainEvent,
    QuotaChanged,
)
from domain.mail import ServiceMail
from domain.payment import Payment
from domain.plans import Plan, PlanTable
from domain.states import ALLOWED, REFUND_FOR_STATE, ChangeState, Transition

__all__ = ["ChangeState", "QuotaChange", "Transition"]  # the states are read from here


@dataclass
class QuotaChange:
    request_id: str
    order_id: str
    account_id: str
    service_mail_id: str
    expected_address_limit: int
    new_address_limit: int
    amount_due: int
    currency: str
    requested_at: datetime
    state: ChangeState = ChangeState.RECEIVED
    reason: str | None = None
    detail: str | None = None
    expires_at: datetime | None = None
    payment_id: str | None = None
    transitions: list[Transition] = field(default_factory=list)

    @classmethod
    def requested(cls, cmd: commands.RequestQuotaChange) -> QuotaChange:
        return cls(
            request_id=cmd.request_id,
            order_id=cmd.order_id,
            account_id=cmd.account_id,
            service_mail_id=cmd.service_mail_id,
            expected_address_limit=cmd.expected_address_limit,
            new_address_limit=cmd.new_address_limit,
            amount_due=cmd.amount_due,
            currency=cmd.currency,
            requested_at=cmd.requested_at,
        )

    def same_request_as(self, other: QuotaChange) -> bool:
        return self.wire_fields() == other.wire_fields()

    def wire_fields(self) -> tuple[object, ...]:
        return (
            self.request_id,
            self.order_id,
            self.account_id,
            self.service_mail_id,
            self.expected_address_limit,
            self.new_address_limit,
            self.amount_due,
            self.currency,
            self.requested_at,
        )

    def receive(
        self,
        service_mail: ServiceMail | None,
        plans: PlanTable,
        *,
        other_change_awaiting: bool,
        now: datetime,
        payment_timeout: timedelta,
        provisioning_grace: timedelta = timedelta(0),
    ) -> list[DomainEvent]:
        """Check a request; apply it, await its payment, or refuse it. Without its Service
        Mail it waits in `received` (`expires_at` holds the end of the grace meanwhile)."""
        if service_mail is None:
            if self.expires_at is None:
                self.expires_at = now + provisioning_grace
            return [] if now < self.expires_at else [self._refuse_unknown_mail(now)]
        self.expires_at = None  # the end of a grace it waited for, if any
        try:
            service_mail.check_changeable_by(self.account_id)
            if other_change_awaiting:
                raise errors.ChangeInProgress(
                    "Another change of this Service Mail awaits payment; "
                    "complete or cancel it first."
                )
            plan = service_mail.check_change(
                self.account_id, self.expected_address_limit, self.new_address_limit, plans
            )
        except errors.Rejected as refusal:
            return [self.reject(refusal, now)]
        if self.amount_due == 0:
            return [self._apply(service_mail, plan, now)]
        self._move(ChangeState.AWAITING_PAYMENT, None, now)
        self.expires_at = now + payment_timeout
        return [
            ChangeAccepted(
                request_id=self.request_id,
                order_id=self.order_id,
                account_id=self.account_id,
                service_mail_id=self.service_mail_id,
                address_limit=service_mail.address_limit,
                new_address_limit=self.new_address_limit,
                amount_due=self.amount_due,
                currency=self.currency,
                expires_at=self.expires_at,
            )
        ]

    def provisioned(
        self,
        service_mail: ServiceMail,
        plans: PlanTable,
        *,
        other_change_awaiting: bool,
        now: datetime,
        payment_timeout: timedelta,
    ) -> list[DomainEvent]:
        """Its Service Mail was provisioned: decided as usual within the grace; past it,
        refused as the sweep would have refused it, whenever the sweep runs."""
        if self.state is not ChangeState.RECEIVED:
            return []
        if self.expires_at is not None and self.expires_at <= now:
            return [self._refuse_unknown_mail(now)]
        return self.receive(
            service_mail,
            plans,
            other_change_awaiting=other_change_awaiting,
            now=now,
            payment_timeout=payment_timeout,
        )

    @property
    def awaits_provisioning(self) -> bool:
        """Received for a Service Mail not provisioned yet: its payments and cancel wait."""
        return self.state is ChangeState.RECEIVED

    def pay(
        self,
        payment: Payment,
        service_mail: ServiceMail | None,
        plans: PlanTable,
        now: datetime,
        grace: timedelta = timedelta(0),
    ) -> list[DomainEvent]:
        """Use a payment for this change, or refund it with the contract's reason; while the
        change awaits its Service Mail the payment is held. One not made in time, or coming
        once the expiry's grace has passed, expires the change as the sweep would."""
        if self.awaits_provisioning:
            return []
        if self.state is not ChangeState.AWAITING_PAYMENT:
            reason = REFUND_FOR_STATE[self.state]
            if self.state is ChangeState.APPLIED and self.payment_id is None:
                reason = "payment_mismatch"  # nothing was due: the money was never owed
            return [payment.refund(reason, self.service_mail_id)]
        if not self.in_time(payment) or self.is_due(now, grace):
            self._move(ChangeState.EXPIRED, None, now)
            return [
                ChangeExpired(self.request_id, self.order_id, self.service_mail_id),
                payment.refund("change_expired", self.service_mail_id),
            ]
        if payment.amount != self.amount_due or payment.currency != self.currency:
            refusal = errors.PaymentMismatch(
                f"{payment.amount} {payment.currency} was paid but "
                f"{self.amount_due} {self.currency} was due; the payment will be refunded."
            )
            return [
                self.reject(refusal, now),
                payment.refund("payment_mismatch", self.service_mail_id),
            ]
        try:
            if service_mail is None:
                raise errors.UnknownServiceMail(f"No Service Mail {self.service_mail_id}.")
            plan = service_mail.check_change(
                self.account_id, self.expected_address_limit, self.new_address_limit, plans
            )
        except errors.Rejected as refusal:
            return [
                self.reject(refusal, now),
                payment.refund("change_rejected", self.service_mail_id),
            ]
        payment.use()
        self.payment_id = payment.payment_id
        return [self._apply(service_mail, plan, now)]

    def catch_up(
        self,
        early_cancel: str | None,
        held_payments: list[Payment],
        service_mail: ServiceMail | None,
        plans: PlanTable,
        now: datetime,
    ) -> list[DomainEvent]:
        """What came before this request: its order's cancel, then its payments, oldest
        first (each used or refunded as if it had come after). While the change awaits its
        Service Mail they wait with it."""
        if self.awaits_provisioning:
            return []
        events = [] if early_cancel is None else self.cancel(early_cancel, now)
        for payment in held_payments:
            events += self.pay(payment, service_mail, plans, now)
        return events

    def recheck_owner(
        self, service_mail: ServiceMail, now: datetime, grace: timedelta = timedelta(0)
    ) -> list[DomainEvent]:
        """A change awaiting payment whose Service Mail was provisioned to another owner or
        into a kSuite is refused at once (one already past its expiry's grace expires)."""
        if self.state is not ChangeState.AWAITING_PAYMENT or self.is_due(now, grace):
            return self.expire(now, grace=grace)
        try:
            service_mail.check_changeable_by(self.account_id)
        except errors.Rejected as refusal:
            return [self.reject(refusal, now)]
        return []

    def conflict_with(self, incoming: QuotaChange) -> errors.IdempotencyConflict:
        """The refusal of `incoming`, which reuses this change's request or order id."""
        if incoming.request_id == self.request_id:
            return errors.IdempotencyConflict(
                f"Request {incoming.request_id} was already received with other details."
            )
        return errors.IdempotencyConflict(
            f"Order {incoming.order_id} already holds change request {self.request_id}."
        )

    def cancel(
        self, reason: str, now: datetime, grace: timedelta = timedelta(0)
    ) -> list[DomainEvent]:
        """Cancel a change awaiting payment; anything else is left as it is (one already past
        its expiry's grace expires, whenever the sweep runs)."""
        if self.state is not ChangeState.AWAITING_PAYMENT or self.is_due(now, grace):
            return self.expire(now, grace=grace)
        self._move(ChangeState.CANCELLED, reason, now)
        return [ChangeCancelled(self.request_id, self.order_id, self.service_mail_id, reason)]

    def expire(
        self,
        now: datetime,
        *,
        grace: timedelta = timedelta(0),
        operator_reason: str | None = None,
    ) -> list[DomainEvent]:
        """Expire a change whose payment did not come in time, once `grace` after its
        deadline has passed without one (or an operator ends it now)."""
        if self.state is not ChangeState.AWAITING_PAYMENT:
            return []
        if operator_reason is None and not self.is_due(now, grace):
            return []
        self._move(ChangeState.EXPIRED, operator_reason, now)
        return [ChangeExpired(self.request_id, self.order_id, self.service_mail_id)]

    def is_due(self, now: datetime, grace: timedelta = timedelta(0)) -> bool:
        return self.expires_at is not None and self.expires_at + grace <= now

    def in_time(self, payment: Payment) -> bool:
        """Paid by the deadline: `paid_at` decides, not when the message arrives."""
        return self.expires_at is None or payment.paid_at <= self.expires_at

    def reject(self, refusal: errors.Rejected, now: datetime) -> ChangeRejected:
        self._move(ChangeState.REJECTED, refusal.reason, now)
        self.reason, self.detail = refusal.reason, refusal.detail
        return ChangeRejected(
            self.request_id, self.order_id, self.service_mail_id, refusal.reason, refusal.detail
        )

    def _refuse_unknown_mail(self, now: datetime) -> ChangeRejected:
        self.expires_at = None  # the grace's end: no payment deadline was ever set
        return self.reject(
            errors.UnknownServiceMail(f"No Service Mail {self.service_mail_id} is known."), now
        )

    def _apply(self, service_mail: ServiceMail, plan: Plan, now: datetime) -> QuotaChanged:
        self._move(ChangeState.APPLIED, None, now)
        return service_mail.apply_change(self, plan, now)

    def _move(self, to: ChangeState, reason: str | None, now: datetime) -> None:
        if to not in ALLOWED.get(self.state, set()):
            raise IllegalTransition(f"change {self.request_id}: {self.state} -> {to}")
        self.transitions.append(Transition(self.state, to, reason, now))
        self.state = to
