"""A producer as another team writes one: plain Celery, no import of this project."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

QUEUES = {
    "quota.request_change": "quota.orders",
    "quota.cancel_change": "quota.orders",
    "quota.payment_confirmed": "quota.payments",
    "mail.service_provisioned": "quota.mail",
    "mail.address_created": "quota.mail",
    "mail.address_deleted": "quota.mail",
    "mail.addresses_snapshot": "quota.mail",
}
NOW = "2026-11-24T10:00:00+01:00"


class Producer:
    def __init__(self, broker_url: str) -> None:
        self.app = Celery("checkout", broker=broker_url, set_as_current=False)
        self.app.conf.broker_connection_retry_on_startup = True

    def send(
        self, name: str, task_id: str | None = None, serializer: str = "json", **payload: Any
    ) -> str:
        task_id = task_id or str(uuid.uuid4())
        self.app.send_task(
            name,
            kwargs=payload,
            queue=QUEUES[name],
            task_id=task_id,
            serializer=serializer,
            # A checkout keeps trying while the broker restarts (about 30 s here).
            retry=True,
            retry_policy={"max_retries": 60, "interval_start": 0.1, "interval_step": 0.2,
                          "interval_max": 0.5},
        )  # fmt: skip
        return task_id

    def send_raw(self, name: str, body: bytes, content_type: str, task_id: str) -> None:
        """A task message whose body is in another serializer than JSON."""
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                body,
                exchange="",
                routing_key=QUEUES[name],
                content_type=content_type,
                content_encoding="binary",
                headers={"lang": "py", "task": name, "id": task_id, "root_id": task_id,
                         "parent_id": None, "group": None, "retries": 0, "eta": None},
                retry=True,
            )  # fmt: skip

    def send_args(self, name: str, *args: Any) -> str:
        task_id = str(uuid.uuid4())
        self.app.send_task(name, args=args, queue=QUEUES[name], task_id=task_id)
        return task_id

    def provision(
        self,
        mail: str,
        account: str,
        plan: str = "premium",
        limit: int = 10,
        ksuite_id: str | None = None,
    ) -> str:
        return self.send(
            "mail.service_provisioned",
            schema_version=1,
            service_mail_id=mail,
            account_id=account,
            plan=plan,
            address_limit=limit,
            ksuite_id=ksuite_id,
        )

    def request(
        self,
        *,
        request_id: str,
        order_id: str,
        account: str,
        mail: str,
        expected: int,
        new: int,
        amount: int = 1500,
        currency: str = "CHF",
        task_id: str | None = None,
    ) -> str:
        return self.send(
            "quota.request_change",
            task_id=task_id,
            schema_version=1,
            request_id=request_id,
            order_id=order_id,
            account_id=account,
            service_mail_id=mail,
            expected_address_limit=expected,
            new_address_limit=new,
            amount_due=amount,
            currency=currency,
            requested_at=NOW,
        )

    def pay(
        self,
        *,
        payment_id: str,
        order_id: str,
        amount: int = 1500,
        currency: str = "CHF",
        task_id: str | None = None,
        paid_at: str = NOW,
    ) -> str:
        return self.send(
            "quota.payment_confirmed",
            task_id=task_id,
            schema_version=1,
            payment_id=payment_id,
            order_id=order_id,
            amount=amount,
            currency=currency,
            paid_at=paid_at,
        )

    def cancel(self, order_id: str, reason: str = "customer left the cart") -> str:
        return self.send("quota.cancel_change", schema_version=1, order_id=order_id, reason=reason)

    def address(self, mail: str, address: str, deleted: bool = False) -> str:
        name = "mail.address_deleted" if deleted else "mail.address_created"
        return self.send(name, schema_version=1, service_mail_id=mail, address=address)

    def snapshot(self, mail: str, addresses: list[str], taken_at: str) -> str:
        return self.send(
            "mail.addresses_snapshot",
            schema_version=1,
            service_mail_id=mail,
            addresses=addresses,
            taken_at=taken_at,
        )
