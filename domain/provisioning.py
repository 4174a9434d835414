"""What a provisioning of a Service Mail does to its open changes: the one awaiting
payment is refused at once if the Service Mail now has another owner or is in a kSuite
(a payment that comes later is refunded `change_rejected`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.events import DomainEvent
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment


@dataclass
class OpenChange:
    """A change still open on a Service Mail, with what its order holds."""

    change: QuotaChange
    early_cancel: str | None = None
    held_payments: list[Payment] = field(default_factory=list)


def recheck_open_changes(
    mail: ServiceMail, open_changes: list[OpenChange], now: datetime
) -> list[DomainEvent]:
    """Recheck, in order, the changes open on `mail` after its provisioning."""
    events: list[DomainEvent] = []
    for item in open_changes:
        if item.change.state is ChangeState.AWAITING_PAYMENT:
            events += item.change.recheck_owner(mail, now)
    return events
