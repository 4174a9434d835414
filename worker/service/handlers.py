"""One small function per command, each inside the unit of work it is given.

Locks are always taken in the same order, order then Service Mail, so two
workers never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from domain import commands, errors
from domain.events import ChangeRejected
from domain.model import ChangeState, Payment, PaymentStatus, QuotaChange, ServiceMail
from domain.plans import PlanTable
from worker.ops.metrics import PAYMENT_TO_APPLIED
from worker.service.uow import UnitOfWork

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Deps:
    plans: PlanTable
    payment_timeout: timedelta
    now: Callable[[], datetime]


def request_change(cmd: commands.RequestQuotaChange, uow: UnitOfWork, deps: Deps) -> str:
    repo, now = uow.repo, deps.now()
    repo.lock_order(cmd.order_id)
    change = QuotaChange(**vars(cmd))
    facts = repo.request_facts(cmd.request_id, cmd.order_id, cmd.service_mail_id)
    if facts.existing is not None:
        if facts.existing.same_request_as(change):
            return "duplicate"
        uow.emit([change.reject(_conflict(facts.existing, change), now)])
        return "rejected:idempotency_conflict"
    mail = facts.mail
    events = change.receive(
        mail,
        deps.plans,
        other_change_awaiting=facts.other_change_awaiting,
        now=now,
        payment_timeout=deps.payment_timeout,
    )
    if facts.early_cancel is not None:
        events += change.cancel(facts.early_cancel, now)
    for payment in facts.held_payments:
        events += change.pay(payment, mail, deps.plans, now)
        repo.save_payment(payment)
        _observe_payment(payment, now)
    repo.add_change(change, now, uow.message_id)
    _save_mail(uow, mail, now)
    uow.emit(events)
    return _outcome(change)


def confirm_payment(cmd: commands.ConfirmPayment, uow: UnitOfWork, deps: Deps) -> str:
    repo, now = uow.repo, deps.now()
    repo.lock_order(cmd.order_id)
    facts = repo.payment_facts(cmd.payment_id, cmd.order_id)
    if facts.known:
        return "duplicate"
    payment = Payment(**vars(cmd), received_at=now)
    change, mail = facts.change, facts.mail  # mail: only while the change awaits payment
    if change is None:
        repo.add_payment(payment)
        return "payment_held"  # the request may still come; the sweep refunds it otherwise
    uow.emit(change.pay(payment, mail, deps.plans, now))
    repo.add_payment(payment)  # as decided: used, or to be refunded
    _observe_payment(payment, now)
    repo.save_change(change, now, uow.message_id)
    _save_mail(uow, mail, now)
    return _outcome(change) if payment.refund_reason is None else f"refund:{payment.refund_reason}"


def cancel_change(cmd: commands.CancelQuotaChange, uow: UnitOfWork, deps: Deps) -> str:
    repo, now = uow.repo, deps.now()
    repo.lock_order(cmd.order_id)
    change = repo.change_by_order(cmd.order_id)
    if change is None:
        repo.add_early_cancel(cmd.order_id, cmd.reason, now)
        return "cancel_held"
    events = change.cancel(cmd.reason, now)
    repo.save_change(change, now, uow.message_id)
    uow.emit(events)
    return "cancelled" if events else f"ignored:{change.state.value}"


def provision(cmd: commands.ProvisionServiceMail, uow: UnitOfWork, deps: Deps) -> str:
    if cmd.plan not in deps.plans:
        raise errors.InvalidMessage(
            f"plan {cmd.plan!r} is not in the plan table ({', '.join(deps.plans.names())})"
        )
    repo, now = uow.repo, deps.now()
    fresh = ServiceMail(
        cmd.service_mail_id, cmd.account_id, cmd.plan, cmd.address_limit, cmd.ksuite_id
    )
    if repo.add_service_mail_if_absent(fresh, now):
        return "created"
    mail = repo.service_mail_for_update(cmd.service_mail_id)
    assert mail is not None
    # The limit only ever changes through a change request.
    mail.account_id, mail.plan, mail.ksuite_id = cmd.account_id, cmd.plan, cmd.ksuite_id
    repo.save_service_mail(mail, now)
    return "updated"


def address_created(cmd: commands.RecordAddressCreated, uow: UnitOfWork, deps: Deps) -> str:
    repo = uow.repo
    # Lock the Service Mail so a decrease being applied sees this address or waits.
    repo.service_mail_for_update(cmd.service_mail_id)
    return "counted" if repo.add_address(cmd.service_mail_id, cmd.address, deps.now()) else "known"


def address_deleted(cmd: commands.RecordAddressDeleted, uow: UnitOfWork, deps: Deps) -> str:
    repo = uow.repo
    repo.service_mail_for_update(cmd.service_mail_id)
    return "removed" if repo.delete_address(cmd.service_mail_id, cmd.address) else "unknown"


def reject_invalid(cmd: commands.RejectInvalidMessage, uow: UnitOfWork, deps: Deps) -> str:
    uow.emit(
        [
            ChangeRejected(
                request_id=cmd.request_id,
                order_id=cmd.order_id,
                service_mail_id=cmd.service_mail_id,
                reason=errors.InvalidMessage.reason,
                detail=cmd.detail,
            )
        ]
    )
    return "rejected:invalid_message"


def expire_change(
    request_id: str,
    order_id: str,
    uow: UnitOfWork,
    deps: Deps,
    operator_reason: str | None = None,
) -> bool:
    repo, now = uow.repo, deps.now()
    repo.lock_order(order_id)
    change = repo.change_by_request(request_id)
    if change is None:
        return False
    events = change.expire(now, operator_reason=operator_reason)
    repo.save_change(change, now, None)
    uow.emit(events)
    return bool(events)


def refund_unmatched_payment(payment_id: str, order_id: str, uow: UnitOfWork, deps: Deps) -> bool:
    repo, now = uow.repo, deps.now()
    repo.lock_order(order_id)
    payment = repo.payment(payment_id)
    if payment is None or not payment.unmatched_past(now, deps.payment_timeout):
        return False
    if repo.change_by_order(order_id) is not None:
        return False  # matched meanwhile: the change's own path settles it
    uow.emit([payment.refund("unknown_order", None)])
    repo.save_payment(payment)
    return True


HANDLERS: dict[type[commands.Command], Callable[..., str]] = {
    commands.RequestQuotaChange: request_change,
    commands.ConfirmPayment: confirm_payment,
    commands.CancelQuotaChange: cancel_change,
    commands.ProvisionServiceMail: provision,
    commands.RecordAddressCreated: address_created,
    commands.RecordAddressDeleted: address_deleted,
    commands.RejectInvalidMessage: reject_invalid,
}


def _conflict(existing: QuotaChange, incoming: QuotaChange) -> errors.IdempotencyConflict:
    if existing.request_id == incoming.request_id:
        return errors.IdempotencyConflict(
            f"Request {incoming.request_id} was already received with other details."
        )
    return errors.IdempotencyConflict(
        f"Order {incoming.order_id} already holds change request {existing.request_id}."
    )


def _observe_payment(payment: Payment, now: datetime) -> None:
    if payment.status is PaymentStatus.USED:
        PAYMENT_TO_APPLIED.observe(max(0.0, (now - payment.paid_at).total_seconds()))


def _save_mail(uow: UnitOfWork, mail: ServiceMail | None, now: datetime) -> None:
    if mail is not None:
        uow.repo.save_service_mail(mail, now)


def _outcome(change: QuotaChange) -> str:
    if change.state is ChangeState.REJECTED:
        return f"rejected:{change.reason}"
    return change.state.value
