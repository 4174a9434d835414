"""The producer client: how a Python checkout, payment service or mail platform talks to us.

    with QuotaClient("redis://broker:6379/0") as quota:
        quota.request_change(request_id="req-1", order_id="ord-1", account_id="acc-1",
                             service_mail_id="sm-1", expected_address_limit=10,
                             new_address_limit=20, amount_due=1500, currency="CHF")
        quota.confirm_payment(payment_id="pay-1", order_id="ord-1", amount=1500, currency="CHF")

Every message is validated with the worker's own models before it is sent,
so a malformed one raises `InvalidMessageError` here and never reaches a queue.
Each call returns the Celery task id of the message sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from celery import Celery
from pydantic import ValidationError

from events.inbound import INBOUND, describe

SCHEMA_VERSION = 1


class InvalidMessageError(ValueError):
    """The message breaks the contract; nothing was sent."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


def _wire_time(value: datetime | str | None) -> str:
    if value is None:
        return datetime.now(UTC).isoformat()
    return value.isoformat() if isinstance(value, datetime) else value


class QuotaClient:
    """Sends the contract's messages to the broker (Redis or RabbitMQ), validated first."""

    def __init__(self, broker_url: str, *, publish_retries: int = 30) -> None:
        self.app = Celery("quota-client", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
            # RabbitMQ confirms each publish: send() returns once the broker has it.
            broker_transport_options={"confirm_publish": True}
            if broker_url.startswith(("amqp", "pyamqp"))
            else {},
        )
        self.retry_policy = {
            "max_retries": publish_retries,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 1.0,
        }

    def send(self, name: str, payload: dict[str, Any], task_id: str | None = None) -> str:
        """Validate `payload` as message `name` and send it to its queue; returns the task id."""
        if name not in INBOUND:
            raise InvalidMessageError(name, f"no such message; known: {', '.join(INBOUND)}")
        queue, model = INBOUND[name]
        try:
            model.model_validate(payload)
        except ValidationError as exc:
            raise InvalidMessageError(name, describe(exc)) from None
        task_id = task_id or str(uuid.uuid4())
        self.app.send_task(
            name,
            kwargs=payload,
            queue=queue,
            task_id=task_id,
            serializer="json",
            retry=True,
            retry_policy=self.retry_policy,
        )
        return task_id

    def request_change(
        self,
        *,
        request_id: str,
        order_id: str,
        account_id: str,
        service_mail_id: str,
        expected_address_limit: int,
        new_address_limit: int,
        amount_due: int,
        currency: str,
        requested_at: datetime | str | None = None,
    ) -> str:
        """Ask for a new limit; `requested_at` defaults to now."""
        return self.send(
            "quota.request_change",
            {
                "schema_version": SCHEMA_VERSION,
                "request_id": request_id,
                "order_id": order_id,
                "account_id": account_id,
                "service_mail_id": service_mail_id,
                "expected_address_limit": expected_address_limit,
                "new_address_limit": new_address_limit,
                "amount_due": amount_due,
                "currency": currency,
                "requested_at": _wire_time(requested_at),
            },
        )

    def cancel_change(self, *, order_id: str, reason: str) -> str:
        payload = {"schema_version": SCHEMA_VERSION, "order_id": order_id, "reason": reason}
        return self.send("quota.cancel_change", payload)

    def confirm_payment(
        self,
        *,
        payment_id: str,
        order_id: str,
        amount: int,
        currency: str,
        paid_at: datetime | str | None = None,
    ) -> str:
        """A payment for an order; `paid_at` defaults to now."""
        return self.send(
            "quota.payment_confirmed",
            {
                "schema_version": SCHEMA_VERSION,
                "payment_id": payment_id,
                "order_id": order_id,
                "amount": amount,
                "currency": currency,
                "paid_at": _wire_time(paid_at),
            },
        )

    def provision(
        self,
        *,
        service_mail_id: str,
        account_id: str,
        plan: str,
        address_limit: int,
        ksuite_id: str | None = None,
    ) -> str:
        return self.send(
            "mail.service_provisioned",
            {
                "schema_version": SCHEMA_VERSION,
                "service_mail_id": service_mail_id,
                "account_id": account_id,
                "plan": plan,
                "address_limit": address_limit,
                "ksuite_id": ksuite_id,
            },
        )

    def address_created(self, *, service_mail_id: str, address: str) -> str:
        return self._address("mail.address_created", service_mail_id, address)

    def address_deleted(self, *, service_mail_id: str, address: str) -> str:
        return self._address("mail.address_deleted", service_mail_id, address)

    def addresses_snapshot(
        self,
        *,
        service_mail_id: str,
        addresses: Iterable[str],
        taken_at: datetime | str | None = None,
    ) -> str:
        """The full list of a Service Mail's addresses (at most 10,000); `taken_at`, when the
        list was read, defaults to now."""
        return self.send(
            "mail.addresses_snapshot",
            {
                "schema_version": SCHEMA_VERSION,
                "service_mail_id": service_mail_id,
                "addresses": list(addresses),
                "taken_at": _wire_time(taken_at),
            },
        )

    def _address(self, name: str, service_mail_id: str, address: str) -> str:
        payload = {
            "schema_version": SCHEMA_VERSION,
            "service_mail_id": service_mail_id,
            "address": address,
        }
        return self.send(name, payload)

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> QuotaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
