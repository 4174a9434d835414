"""Rows to aggregates and back: the one place that knows both shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.events import DomainEvent, QuotaChanged
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from domain.payment import Payment, PaymentStatus
from events.outbound import OutboundEvent


def mail(rows: list[Any], counted: list[Any]) -> tuple[ServiceMail | None, bool]:
    if not rows:
        return None, False
    row, facts = rows[0], counted[0]
    mail = ServiceMail(
        id=row.id,
        account_id=row.account_id,
        plan=row.plan,
        address_limit=row.address_limit,
        ksuite_id=row.ksuite_id,
        version=row.version,
        addresses_in_use=facts.in_use,
        outside_plan=row.outside_plan,
    )
    return mail, bool(facts.awaiting)


def snapshot(last: list[Any], counted: list[Any]) -> tuple[datetime | None, frozenset[str]]:
    """The last snapshot's `taken_at` (None if none) and the addresses counted."""
    return (last[0].taken_at if last else None), frozenset(r.address for r in counted)


def mail_row(mail: ServiceMail) -> dict[str, Any]:
    return {
        "id": mail.id,
        "account_id": mail.account_id,
        "plan": mail.plan,
        "address_limit": mail.address_limit,
        "ksuite_id": mail.ksuite_id,
        "version": mail.version,
        "outside_plan": mail.outside_plan,
    }


def change_row(change: QuotaChange) -> dict[str, Any]:
    return {
        "request_id": change.request_id,
        "order_id": change.order_id,
        "account_id": change.account_id,
        "service_mail_id": change.service_mail_id,
        "expected_address_limit": change.expected_address_limit,
        "new_address_limit": change.new_address_limit,
        "amount_due": change.amount_due,
        "currency": change.currency,
        "requested_at": change.requested_at,
        "state": change.state.value,
        "reason": change.reason,
        "detail": change.detail,
        "expires_at": change.expires_at,
        "payment_id": change.payment_id,
    }


def payment_row(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "order_id": payment.order_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "paid_at": payment.paid_at,
        "received_at": payment.received_at,
        "status": payment.status.value,
        "refund_reason": payment.refund_reason,
    }


def change(row: Any) -> QuotaChange:
    return QuotaChange(
        request_id=row.request_id,
        order_id=row.order_id,
        account_id=row.account_id,
        service_mail_id=row.service_mail_id,
        expected_address_limit=row.expected_address_limit,
        new_address_limit=row.new_address_limit,
        amount_due=row.amount_due,
        currency=row.currency,
        requested_at=row.requested_at,
        state=ChangeState(row.state),
        reason=row.reason,
        detail=row.detail,
        expires_at=row.expires_at,
        payment_id=row.payment_id,
    )


def payment(row: Any) -> Payment:
    return Payment(
        payment_id=row.payment_id,
        order_id=row.order_id,
        amount=row.amount,
        currency=row.currency,
        paid_at=row.paid_at,
        received_at=row.received_at,
        status=PaymentStatus(row.status),
        refund_reason=row.refund_reason,
    )


def transition_rows(change: QuotaChange, message_id: str | None) -> list[dict[str, Any]]:
    return [
        {
            "request_id": change.request_id,
            "from_state": tr.from_state.value,
            "to_state": tr.to_state.value,
            "reason": tr.reason,
            "message_id": message_id,
            "at": tr.at,
        }
        for tr in change.transitions
    ]


def outbox_row(event: DomainEvent, out: OutboundEvent, now: datetime) -> dict[str, Any]:
    return {
        "event_id": out.id,
        "type": out.type,
        "subject": out.subject,
        "body": out.body,
        "order_id": event.order_id,
        "created_at": now,
    }


def history_row(change: QuotaChanged) -> dict[str, Any]:
    return {
        "service_mail_id": change.service_mail_id,
        "version": change.version,
        "request_id": change.request_id,
        "previous_address_limit": change.previous_address_limit,
        "address_limit": change.address_limit,
        "addresses_in_use": change.addresses_in_use,
        "plan": change.plan,
        "applied_at": change.applied_at,
    }
