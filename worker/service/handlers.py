"""One short story per command: get the aggregates, let the domain decide, add what is
new; the unit of work's commit saves what changed.

The repository's reads take the locks (an order's, then its Service Mail's row), so
every handler locks in the same order and two workers never wait on each other in a
cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import commands, errors
from domain.addresses import AddressSnapshot
from domain.events import ChangeRejected, DomainEvent
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment
from domain.plans import PlanTable
from domain.provisioning import recheck_open_changes
from worker.service.outcomes import DUPLICATE, Kind, Outcome
from worker.service.repository import RequestFacts
from worker.service.uow import UnitOfWork


@dataclass(frozen=True)
class Deps:
    plans: PlanTable
    payment_timeout: timedelta
    now: Callable[[], datetime]
    # How long after its deadline a change still waits for a payment made in time.
    expiry_grace: timedelta = timedelta(0)
    # How long a request for an unknown Service Mail waits for its provisioning.
    provisioning_grace: timedelta = timedelta(0)


def request_change(cmd: commands.RequestQuotaChange, uow: UnitOfWork, deps: Deps) -> Outcome:
    now, change = deps.now(), QuotaChange.requested(cmd)
    facts = uow.repo.request_facts(change)
    if facts.existing is not None:
        if facts.existing.same_request_as(change):
            return DUPLICATE
        uow.emit([change.reject(facts.existing.conflict_with(change), now)])  # not stored
        return Outcome(Kind.REJECTED, errors.IdempotencyConflict.reason)
    uow.repo.add(change)
    uow.emit(_decide(change, facts, deps, now))
    return Outcome.of_change(change)


def _decide(
    change: QuotaChange, facts: RequestFacts, deps: Deps, now: datetime
) -> list[DomainEvent]:
    """A request's decision, and then what its order held (on arrival, or by the sweep once
    it has waited for its Service Mail)."""
    mail, plans = facts.mail, deps.plans
    events = change.receive(
        mail,
        plans,
        other_change_awaiting=facts.other_change_awaiting,
        now=now,
        payment_timeout=deps.payment_timeout,
        provisioning_grace=deps.provisioning_grace,
    )
    return events + change.catch_up(facts.early_cancel, facts.held_payments, mail, plans, now)


def confirm_payment(cmd: commands.ConfirmPayment, uow: UnitOfWork, deps: Deps) -> Outcome:
    now, facts = deps.now(), uow.repo.payment_facts(cmd.payment_id, cmd.order_id)
    payment = Payment.received(cmd, now)
    if facts.existing is not None:
        if facts.existing.same_payment_as(payment):
            return DUPLICATE
        raise facts.existing.conflict_with(payment)  # the task keeps it as a dead letter
    uow.repo.add(payment)
    if facts.change is None:
        return Outcome(Kind.PAYMENT_HELD)  # the request may still come; else the sweep refunds
    uow.emit(facts.change.pay(payment, facts.mail, deps.plans, now, deps.expiry_grace))
    return Outcome.of_payment(facts.change, payment)


def cancel_change(cmd: commands.CancelQuotaChange, uow: UnitOfWork, deps: Deps) -> Outcome:
    now, change = deps.now(), uow.repo.change_of_order(cmd.order_id)
    if change is None or change.awaits_provisioning:
        uow.repo.hold_early_cancel(cmd.order_id, cmd.reason, now)
        return Outcome(Kind.CANCEL_HELD)
    events = change.cancel(cmd.reason, now, deps.expiry_grace)
    uow.emit(events)
    if events and change.state is ChangeState.CANCELLED:
        return Outcome(Kind.CANCELLED)
    return Outcome(Kind.IGNORED, change.state.value)  # an expiry it met counts as expired


def provision(cmd: commands.ProvisionServiceMail, uow: UnitOfWork, deps: Deps) -> Outcome:
    if cmd.plan not in deps.plans:
        raise errors.InvalidMessage(
            f"plan {cmd.plan!r} is not in the plan table ({', '.join(deps.plans.names())})"
        )
    now, facts = deps.now(), uow.repo.provisioning_facts(cmd.service_mail_id)
    created = facts.mail is None and uow.repo.add_service_mail_if_absent(
        ServiceMail.provisioned(cmd, deps.plans), now
    )
    mail = facts.mail or uow.repo.service_mail(cmd.service_mail_id)
    assert mail is not None  # Service Mails are never deleted
    if not created:
        mail.provision_again(cmd, deps.plans)
    uow.emit(
        recheck_open_changes(
            mail,
            facts.open_changes,
            deps.plans,
            now=now,
            payment_timeout=deps.payment_timeout,
            expiry_grace=deps.expiry_grace,
        )
    )
    return Outcome(Kind.CREATED if created else Kind.UPDATED)


def address_created(cmd: commands.RecordAddressCreated, uow: UnitOfWork, deps: Deps) -> Outcome:
    counted = uow.repo.add_address(cmd.service_mail_id, cmd.address, deps.now())
    return Outcome(Kind.COUNTED if counted else Kind.KNOWN)


def address_deleted(cmd: commands.RecordAddressDeleted, uow: UnitOfWork, deps: Deps) -> Outcome:
    removed = uow.repo.delete_address(cmd.service_mail_id, cmd.address)
    return Outcome(Kind.REMOVED if removed else Kind.UNKNOWN)


def addresses_snapshot(
    cmd: commands.RecordAddressesSnapshot, uow: UnitOfWork, deps: Deps
) -> Outcome:
    snapshot = AddressSnapshot(cmd.service_mail_id, cmd.addresses, cmd.taken_at)
    snapshot.check_taken_by(deps.now())
    facts = uow.repo.snapshot_facts(cmd.service_mail_id)
    if not snapshot.is_newer_than(facts.last_taken_at):
        return Outcome(Kind.STALE)
    changes = snapshot.changes_from(facts.addresses)
    uow.repo.apply_snapshot(snapshot, changes, deps.now())
    return Outcome(Kind.SNAPSHOT_APPLIED, str(changes))


def reject_invalid(cmd: commands.RejectInvalidMessage, uow: UnitOfWork, deps: Deps) -> Outcome:
    reason = errors.InvalidMessage.reason
    uow.emit(
        [ChangeRejected(cmd.request_id, cmd.order_id, cmd.service_mail_id, reason, cmd.detail)]
    )
    return Outcome(Kind.REJECTED, reason)


def expire_change(
    request_id: str,
    order_id: str,
    uow: UnitOfWork,
    deps: Deps,
    operator_reason: str | None = None,
) -> bool:
    change = uow.repo.change_of_order(order_id)
    if change is None or change.request_id != request_id:
        return False
    events = change.expire(deps.now(), grace=deps.expiry_grace, operator_reason=operator_reason)
    uow.emit(events)
    return bool(events)


def decide_received(request_id: str, order_id: str, uow: UnitOfWork, deps: Deps) -> bool:
    """The sweep's: a change still waiting for its Service Mail, past its grace (refused,
    its payments refunded) or whose Service Mail was provisioned meanwhile (decided)."""
    change = uow.repo.change_of_order(order_id)
    if change is None or change.request_id != request_id or not change.awaits_provisioning:
        return False
    uow.emit(_decide(change, uow.repo.request_facts(change), deps, deps.now()))
    return not change.awaits_provisioning


def refund_unmatched_payment(payment_id: str, order_id: str, uow: UnitOfWork, deps: Deps) -> bool:
    payment = uow.repo.payment(payment_id, order_id)
    if payment is None or not payment.unmatched_past(deps.now(), deps.payment_timeout):
        return False
    if uow.repo.change_of_order(order_id) is not None:
        return False  # matched meanwhile: the change's own path settles it
    uow.emit([payment.refund("unknown_order", None)])
    return True


HANDLERS: dict[type[commands.Command], Callable[..., Outcome]] = {
    commands.RequestQuotaChange: request_change,
    commands.ConfirmPayment: confirm_payment,
    commands.CancelQuotaChange: cancel_change,
    commands.ProvisionServiceMail: provision,
    commands.RecordAddressCreated: address_created,
    commands.RecordAddressDeleted: address_deleted,
    commands.RecordAddressesSnapshot: addresses_snapshot,
    commands.RejectInvalidMessage: reject_invalid,
}
