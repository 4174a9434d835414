"""A quote: the domain's own decision on a change, made on copies and never kept.

The change is received exactly as `quota.request_change` would be (QuotaChange.receive:
owner, kSuite, another change awaiting payment, then ServiceMail.check_change), for the
limit the Service Mail has now, so a quote cannot disagree with what the worker decides
for the same request at the same moment.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from domain.events import ChangeRejected, QuotaChanged
from domain.model import QuotaChange
from domain.plans import PlanTable
from worker.api.models import Quote
from worker.api.reads import MailRead

_NOTHING_DUE = 0  # applied at once in the throwaway copy: its event names the plan after


def quote(
    read: MailRead, account_id: str, new_limit: int, plans: PlanTable, now: datetime
) -> Quote:
    mail = dataclasses.replace(read.mail)  # receive() may apply the change to it
    change = QuotaChange(
        request_id="quote",
        order_id="quote",
        account_id=account_id,
        service_mail_id=mail.id,
        expected_address_limit=mail.address_limit,
        new_address_limit=new_limit,
        amount_due=_NOTHING_DUE,
        currency="XXX",  # ISO 4217's "no currency": nothing is paid
        requested_at=now,
    )
    (event,) = change.receive(
        mail,
        plans,
        other_change_awaiting=read.pending is not None,
        now=now,
        payment_timeout=timedelta(0),
    )
    # The plan whose bounds were checked: the one the Service Mail would be on after.
    plan = plans.target_for(read.mail.plan, new_limit).name
    reason: str | None
    match event:
        case ChangeRejected():
            reason, detail = event.reason, event.detail
        case QuotaChanged():
            reason, plan = None, event.plan
            detail = _accepted(read.mail.plan, read.mail.address_limit, event)
        case _:  # with nothing due a valid change is applied at once, never awaits payment
            raise AssertionError(f"a quote met {type(event).__name__}")
    return Quote(
        allowed=reason is None,
        reason=reason,
        detail=detail,
        plan=plan,
        address_limit=read.mail.address_limit,
        new_address_limit=new_limit,
        addresses_in_use=read.mail.addresses_in_use,
    )


def _accepted(plan_before: str, limit_before: int, changed: QuotaChanged) -> str:
    move = "raised" if changed.address_limit > limit_before else "lowered"
    sentence = f"The address limit can be {move} from {limit_before} to {changed.address_limit}"
    if changed.plan != plan_before:
        return f"{sentence}, moving to the {changed.plan} offer."
    return f"{sentence}."
