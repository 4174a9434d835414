"""The one place where wire schemas become domain commands."""

from __future__ import annotations

from datetime import UTC

from domain import commands
from events import inbound


def to_command(message: inbound.Message) -> commands.Command:
    match message:
        case inbound.RequestChange():
            return commands.RequestQuotaChange(
                request_id=message.request_id,
                order_id=message.order_id,
                account_id=message.account_id,
                service_mail_id=message.service_mail_id,
                expected_address_limit=message.expected_address_limit,
                new_address_limit=message.new_address_limit,
                amount_due=message.amount_due,
                currency=message.currency,
                requested_at=message.requested_at.astimezone(UTC),
            )
        case inbound.CancelChange():
            return commands.CancelQuotaChange(order_id=message.order_id, reason=message.reason)
        case inbound.PaymentConfirmed():
            return commands.ConfirmPayment(
                payment_id=message.payment_id,
                order_id=message.order_id,
                amount=message.amount,
                currency=message.currency,
                paid_at=message.paid_at.astimezone(UTC),
            )
        case inbound.ServiceProvisioned():
            return commands.ProvisionServiceMail(
                service_mail_id=message.service_mail_id,
                account_id=message.account_id,
                plan=message.plan,
                address_limit=message.address_limit,
                ksuite_id=message.ksuite_id,
            )
        case inbound.AddressCreated():
            return commands.RecordAddressCreated(message.service_mail_id, message.address.lower())
        case inbound.AddressDeleted():
            return commands.RecordAddressDeleted(message.service_mail_id, message.address.lower())
        case inbound.AddressesSnapshot():
            return commands.RecordAddressesSnapshot(
                message.service_mail_id,
                frozenset(address.lower() for address in message.addresses),
                message.taken_at.astimezone(UTC),
            )
    raise TypeError(f"no command for {type(message).__name__}")
