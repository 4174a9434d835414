"""What a provisioning of a Service Mail does to its open changes: the one awaiting
payment is refused at once if the Service Mail now has another owner or is in a kSuite
(a payment that comes later is refunded `change_rejected`); those received before it,
waiting for it, are decided now, oldest first, with their orders' held payments and
cancels."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.events import DomainEvent
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment
from domain.plans import PlanTable


@dataclass
class OpenChange:
    """A change still open on a Service Mail, with what its order holds."""

    change: QuotaChange
    early_cancel: str | None = None
    held_payments: list[Payment] = field(default_factory=list)


def recheck_open_changes(
    mail: ServiceMail,
    open_changes: list[OpenChange],
    plans: PlanTable,
    *,
    now: datetime,
    payment_timeout: timedelta,
    expiry_grace: timedelta = timedelta(0),
) -> list[DomainEvent]:
    """Recheck, in order, the changes open on `mail` after its provisioning."""
    events: list[DomainEvent] = []
    for item in open_changes:
        change = item.change
        if change.state is ChangeState.AWAITING_PAYMENT:
            events += change.recheck_owner(mail, now, expiry_grace)
            continue
        awaiting = any(o.change.state is ChangeState.AWAITING_PAYMENT for o in open_changes)
        events += change.provisioned(
            mail, plans, other_change_awaiting=awaiting, now=now, payment_timeout=payment_timeout
        )
        events += change.catch_up(item.early_cancel, item.held_payments, mail, plans, now)
    return events
